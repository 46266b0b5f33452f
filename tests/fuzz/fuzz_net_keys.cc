// Fuzzes what a host key file and a pinned key id may hold (files and configuration a user
// may have got wrong): the PEM reader takes only an Ed25519 private key, and a key id parses
// only in its one form, back to the same text.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "weft/net/keys.h"

using namespace weft::net;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<uint8_t> bytes(data, data + size);  // exact size: overreads are caught
  auto k = KeyPair::FromPem(weft::ByteView(bytes.data(), bytes.size()));
  if (k.ok() && KeyId(k->public_key()).size() != 72) __builtin_trap();
  const std::string text(bytes.begin(), bytes.end());
  auto id = ParseKeyId(text);
  if (id.ok()) {
    auto again = ParseKeyId(KeyId(*id));
    if (!again.ok() || *again != *id) __builtin_trap();
  }
  return 0;
}
