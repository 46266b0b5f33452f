// Fuzzes the ipc:// handshake parsers with arbitrary bytes (what a connecting peer, or a server,
// sends first): they must reject or accept without crashing, and what ParseHello accepts must
// encode back to the same bytes.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "rpc/internal/handshake.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view msg(reinterpret_cast<const char*>(data), size);
  auto h = weft::rpc::internal::ParseHello(msg);
  if (h.ok()) {
    if (h->pool_slot < weft::rpc::internal::kNoSlot || h->pool_slot >= 64) __builtin_trap();
    // What this build encodes (its own wire versions) reads back the same.
    if (h->wire_min > h->wire_max || h->wire_min == 0) __builtin_trap();
    const std::string again = weft::rpc::internal::EncodeHello(h->resource, h->pool_slot, h->contract);
    auto h2 = weft::rpc::internal::ParseHello(again);
    if (!h2.ok() || h2->resource != h->resource || h2->pool_slot != h->pool_slot || h2->contract != h->contract) {
      __builtin_trap();
    }
  }
  auto a = weft::rpc::internal::ParseAnswer(msg);
  if (a.ok() && a->resource == 0) __builtin_trap();
  return 0;
}
