// A host's identity for connections across machines: an Ed25519 key pair (OpenSSL), kept in a
// PEM file made by `weft keygen`, named by its public key ("ed25519:" and 64 hex digits) so
// that peers can pin it. The private key file must belong to this user and be readable by
// nobody else (0600), as ssh asks of its keys.
//
//   auto key = weft::net::KeyPair::Generate().value();
//   key.Save("/etc/app/host.key");                 // 0600, never over an existing file
//   auto again = weft::net::KeyPair::Load("/etc/app/host.key").value();
//   again.id();                                    // "ed25519:3b6a27bc..."
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "weft/core/bytes.h"
#include "weft/core/status.h"

namespace weft::net {

using PublicKey = std::array<uint8_t, 32>;

// "ed25519:<64 lower-case hex digits>".
std::string KeyId(const PublicKey& key);
// The public key a key id names: exactly "ed25519:" and 64 hex digits (either case);
// kInvalidArgument otherwise.
Result<PublicKey> ParseKeyId(std::string_view id);

class KeyPair {
 public:
  KeyPair();
  ~KeyPair();
  KeyPair(KeyPair&&) noexcept;
  KeyPair& operator=(KeyPair&&) noexcept;
  KeyPair(const KeyPair&) = delete;
  KeyPair& operator=(const KeyPair&) = delete;

  static Result<KeyPair> Generate();
  // Reads a private key file: kPermissionDenied if it belongs to another user or others may
  // read or write it; kCorrupt if it is not an Ed25519 private key in PEM.
  static Result<KeyPair> Load(const std::string& path);
  // The same from bytes (PEM); kCorrupt for anything else. Fuzzed.
  static Result<KeyPair> FromPem(ByteView pem);
  // Writes the private key as PEM to a new file of mode 0600 (kAlreadyExists if `path` exists:
  // a key is never overwritten), synced.
  Status Save(const std::string& path) const;

  const PublicKey& public_key() const { return public_key_; }
  std::string id() const { return KeyId(public_key_); }
  // Ed25519 signature of `message` (64 bytes); and its check against a public key.
  Result<std::vector<uint8_t>> Sign(ByteView message) const;
  static bool Verify(const PublicKey& key, ByteView message, ByteView signature);
  // OpenSSL's EVP_PKEY, for the TLS layer.
  void* native() const { return pkey_; }

 private:
  void* pkey_ = nullptr;  // EVP_PKEY
  PublicKey public_key_{};
};

}  // namespace weft::net
