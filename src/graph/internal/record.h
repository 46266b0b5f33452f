// A value with its envelope as bytes: what a route's durable retention appends to its log (and
// what crosses processes next). Format: docs/formats/graph-record.md. Fuzzed:
// tests/fuzz/fuzz_graph_record.cc.
#pragma once

#include <cstdint>
#include <string>

#include "weft/core/bytes.h"
#include "weft/core/status.h"
#include "weft/graph/graph.h"

namespace weft::graph::internal {

constexpr uint32_t kRecordMagic = 0x31524757;  // "WGR1"
constexpr size_t kRecordHeader = 88;

// The header, then the value's bytes.
std::string EncodeRecord(const Envelope& env, uint64_t schema_id, ByteView value);
// The same into `out` (kRecordHeader + value.size() bytes).
void EncodeRecordInto(uint8_t* out, const Envelope& env, uint64_t schema_id, ByteView value);

struct DecodedRecord {
  Envelope env;
  uint64_t schema_id = 0;
  ByteView value;  // inside the bytes given to DecodeRecord
};
// kCorrupt naming what is wrong (magic, header size, flags, sizes); never reads past `bytes`.
Result<DecodedRecord> DecodeRecord(ByteView bytes);

// A record that arrived from another process, published on `route` (Route::Inject, marked with
// `origin`): false if it is malformed or of another schema (the caller counts the refusal).
bool InjectRecord(const Route& route, ByteView record, const void* origin);

}  // namespace weft::graph::internal
