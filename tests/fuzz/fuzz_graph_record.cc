// Fuzzes the graph's record reader (src/graph/internal/record.h): what a route's log holds and
// what crosses processes. A record either is refused or decodes to fields that encode back to
// exactly the same bytes; nothing is read past the input.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "graph/internal/record.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<uint8_t> bytes(data, data + size);  // exact size: overreads are caught
  auto r = weft::graph::internal::DecodeRecord(weft::ByteView(bytes.data(), bytes.size()));
  if (!r.ok()) return 0;
  const std::string again = weft::graph::internal::EncodeRecord(r->env, r->schema_id, r->value);
  if (again.size() != size || std::memcmp(again.data(), data, size) != 0) __builtin_trap();
  return 0;
}
