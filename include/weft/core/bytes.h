// Byte views. A ByteView borrows read-only bytes, MutableBytes borrows writable bytes; the
// owner of the memory says for how long a view stays valid.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace weft {

using ByteView = std::span<const uint8_t>;
using MutableBytes = std::span<uint8_t>;

inline ByteView AsBytes(std::string_view s) {
  return ByteView(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

}  // namespace weft
