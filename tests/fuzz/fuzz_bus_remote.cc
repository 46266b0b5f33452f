// Fuzzes what the remote bus backends parse from a server (anyone with access to the Redis or
// NATS server may have written it): the bus's shape text and Redis entry ids. Each accepts
// only what a writer could have written, and a written shape parses back to itself.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "bus/internal/remote.h"

using namespace weft::bus::internal;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);  // exact size: overreads are caught
  auto shape = ParseShape(text, 1u << 29, "fuzz");
  if (shape.ok() && (shape->shards == 0 || shape->shards > 256 || shape->max_event == 0 || shape->max_event > (1u << 29))) {
    __builtin_trap();
  }
  auto id = ParseEntryId(text);
  if (id.ok()) {  // a position that names the same entry again
    const std::string again = std::to_string(*id >> kEntrySeqBits) + "-" + std::to_string(*id & ((1u << kEntrySeqBits) - 1));
    auto back = ParseEntryId(again);
    if (!back.ok() || *back != *id) __builtin_trap();
  }
  // A shape written by FormatShape always parses back.
  uint32_t v[2] = {1, 1};
  std::memcpy(v, data, std::min(size, sizeof(v)));
  const RemoteShape s{v[0] % 256 + 1, v[1] % (1u << 29) + 1, (size & 1) != 0};
  auto round = ParseShape(FormatShape(s), 1u << 29, "fuzz");
  if (!round.ok() || round->shards != s.shards || round->max_event != s.max_event || round->timestamps != s.timestamps) {
    __builtin_trap();
  }
  return 0;
}
