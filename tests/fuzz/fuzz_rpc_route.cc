// Fuzzes what a registry holds, which anyone who may write to the NATS bucket controls: route
// texts (src/rpc/registry.cc) and the tunnel subjects they name (src/net/nats_tunnel.cc). A
// route either parses, and then encodes back to the same text and keys under the same key as
// its fields say, or is refused with kCorrupt.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "rpc/internal/registry.h"
#include "weft/net/nats_tunnel.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)weft::net::ValidTunnelSubject(text);
  auto r = weft::rpc::internal::ParseRoute(text);
  if (!r.ok()) {
    if (r.status().code() != weft::Code::kCorrupt) std::abort();
    return 0;
  }
  if (weft::rpc::internal::EncodeRoute(*r) != text) std::abort();  // one spelling per route
  if (!r->relay.empty() && !weft::net::ValidTunnelSubject(r->relay)) std::abort();
  auto again = weft::rpc::internal::ParseRoute(weft::rpc::internal::EncodeRoute(*r));
  if (!again.ok() || weft::rpc::internal::RouteKey(*again) != weft::rpc::internal::RouteKey(*r)) std::abort();
  return 0;
}
