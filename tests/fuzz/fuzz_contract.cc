// Fuzzes the contract parser with arbitrary text (what a peer sends before the first call): it
// must reject or accept without crashing, and whatever it accepts must be canonical and compare
// equal to itself.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "weft/rpc/contract.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto c = weft::rpc::Contract::Parse(text);
  if (!c.ok()) return 0;
  if (c->Canonical() != text) __builtin_trap();
  if (!weft::rpc::Compare(*c, *c).ok()) __builtin_trap();
  if (c->Hash().size() != 32) __builtin_trap();
  for (const auto& m : c->methods) {
    if (c->Find(m.name) < 0) __builtin_trap();
  }
  return 0;
}
