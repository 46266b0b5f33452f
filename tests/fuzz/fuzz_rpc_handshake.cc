// Fuzzes the ipc:// handshake parsers with arbitrary bytes (what a connecting peer, or a server,
// sends first): they must reject or accept without crashing, and what ParseHello accepts must
// encode back to the same bytes.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "rpc/internal/handshake.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view msg(reinterpret_cast<const char*>(data), size);
  auto h = weft::rpc::internal::ParseHello(msg);
  if (h.ok()) {
    if (h->pool_slot < weft::rpc::internal::kNoSlot || h->pool_slot >= 64) __builtin_trap();
    if (weft::rpc::internal::EncodeHello(h->resource, h->pool_slot, h->contract) != msg) __builtin_trap();
  }
  auto a = weft::rpc::internal::ParseAnswer(msg);
  if (a.ok() && *a == 0) __builtin_trap();
  return 0;
}
