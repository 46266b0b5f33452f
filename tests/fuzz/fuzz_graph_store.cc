// Fuzzes a FileStore's readers (src/graph/internal/store_format.h): its journal's batch records
// and its CURRENT file. Either is refused, or decodes to what encodes back to exactly the same
// bytes; nothing is read past the input.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "graph/internal/store_format.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::vector<uint8_t> bytes(data + 1, data + size);  // exact size: overreads are caught
  std::string again;
  if (data[0] & 1) {
    auto g = weft::graph::internal::DecodeStoreCurrent(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
    if (!g.ok()) return 0;
    again = weft::graph::internal::EncodeStoreCurrent(*g);
  } else {
    auto ops = weft::graph::internal::DecodeStoreBatch(weft::ByteView(bytes.data(), bytes.size()));
    if (!ops.ok()) return 0;
    again = weft::graph::internal::EncodeStoreBatch(*ops);
  }
  if (again.size() != bytes.size() || std::memcmp(again.data(), bytes.data(), bytes.size()) != 0) __builtin_trap();
  return 0;
}
