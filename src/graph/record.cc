// Values with their envelopes as bytes (internal/record.h, docs/formats/graph-record.md).
#include "internal/record.h"

#include <cstring>

namespace weft::graph::internal {
namespace {

void Put64(uint8_t* p, uint64_t v) { std::memcpy(p, &v, 8); }  // little-endian hosts only (as the rest of Weft)
uint64_t Get64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

}  // namespace

std::string EncodeRecord(const Envelope& env, uint64_t schema_id, ByteView value) {
  std::string out(kRecordHeader + value.size(), '\0');
  EncodeRecordInto(reinterpret_cast<uint8_t*>(out.data()), env, schema_id, value);
  return out;
}

void EncodeRecordInto(uint8_t* p, const Envelope& env, uint64_t schema_id, ByteView value) {
  const uint32_t magic = kRecordMagic;
  const uint16_t header = kRecordHeader;
  std::memcpy(p, &magic, 4);
  std::memcpy(p + 4, &header, 2);
  // p[6], p[7]: flags and reserved, zero.
  Put64(p + 8, schema_id);
  Put64(p + 16, env.seq);
  Put64(p + 24, env.id);
  Put64(p + 32, env.producer);
  Put64(p + 40, static_cast<uint64_t>(env.event_ns));
  Put64(p + 48, static_cast<uint64_t>(env.ingest_ns));
  Put64(p + 56, env.trace);
  Put64(p + 64, env.causality);
  Put64(p + 72, env.correlation);
  Put64(p + 80, value.size());
  p[6] = env.taints & kAllTaints;  // flags: the taint bits
  p[7] = 0;
  if (!value.empty()) std::memcpy(p + kRecordHeader, value.data(), value.size());
}

Result<DecodedRecord> DecodeRecord(ByteView b) {
  if (b.size() < kRecordHeader) {
    return Corrupt("a graph record of " + std::to_string(b.size()) + " bytes (its header alone is " +
                   std::to_string(kRecordHeader) + ")");
  }
  uint32_t magic;
  uint16_t header;
  std::memcpy(&magic, b.data(), 4);
  std::memcpy(&header, b.data() + 4, 2);
  if (magic != kRecordMagic) return Corrupt("not a graph record (magic " + std::to_string(magic) + ")");
  if (header != kRecordHeader) return Corrupt("a graph record header of " + std::to_string(header) + " bytes");
  if ((b[6] & ~kAllTaints) != 0 || b[7] != 0) return Corrupt("a graph record with unknown flags");
  const uint64_t size = Get64(b.data() + 80);
  if (size != b.size() - kRecordHeader) {
    return Corrupt("a graph record says " + std::to_string(size) + " value bytes, and holds " +
                   std::to_string(b.size() - kRecordHeader));
  }
  DecodedRecord r;
  r.schema_id = Get64(b.data() + 8);
  r.env.seq = Get64(b.data() + 16);
  r.env.id = Get64(b.data() + 24);
  r.env.producer = Get64(b.data() + 32);
  r.env.event_ns = static_cast<int64_t>(Get64(b.data() + 40));
  r.env.ingest_ns = static_cast<int64_t>(Get64(b.data() + 48));
  r.env.trace = Get64(b.data() + 56);
  r.env.causality = Get64(b.data() + 64);
  r.env.correlation = Get64(b.data() + 72);
  r.env.taints = b[6];
  if (r.env.seq == 0 || r.env.id == 0) return Corrupt("a graph record without a sequence number or id");
  r.value = b.subspan(kRecordHeader);
  return r;
}

bool InjectRecord(const Route& route, ByteView record, const void* origin) {
  auto d = DecodeRecord(record);
  return d.ok() && d->schema_id == route.schema().id() &&
         route.Inject(d->env, std::string(d->value.begin(), d->value.end()), origin).ok();
}

}  // namespace weft::graph::internal
