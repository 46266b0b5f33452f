// TLS 1.3 over TCP through OpenSSL, mutually authenticated: each side proves it holds its host
// key (weft/net/keys.h; a self-signed certificate is made from it, or a CA-signed one is
// given), and accepts the other by its key id (pinning) or because a CA it trusts signed the
// other's certificate. Nothing older than TLS 1.3 is spoken; no peer is accepted without a
// certificate.
//
//   net::TlsConfig c{.key_file = "host.key", .trusted_keys = {"ed25519:3b6a..."}};
//   auto ctx = net::TlsContext::Create(c, /*server=*/false).value();
//   auto stream = ctx->Connect(net::Dial(addr, deadline).value(), deadline).value();
//   stream->peer_identity();  // "ed25519:3b6a..."
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "weft/net/tcp.h"

namespace weft::net {

struct TlsConfig {
  std::string key_file;                   // this side's private key (PEM, 0600; Ed25519 from weft keygen)
  std::vector<std::string> trusted_keys;  // peers accepted by key id
  std::string ca_file;                    // peers accepted by a CA's signature (PEM)
  std::string cert_file;                  // this side's certificate chain (PEM); none: self-signed from the key
};

// The self-signed certificate (PEM) Weft presents for the host key in `key_file` when no CA is
// used: for another TLS stack speaking to Weft with that key (the TypeScript client).
Result<std::string> SelfSignedCertificate(const std::string& key_file);

class TlsContext {
 public:
  ~TlsContext();
  // kInvalidArgument if nothing is trusted (no trusted_keys, no ca_file) or no key is given;
  // the key file's own errors (kPermissionDenied for a loose file, kCorrupt).
  static Result<std::unique_ptr<TlsContext>> Create(const TlsConfig& config, bool server);
  // The TLS handshake on a connected socket, owned from here (closed on failure). A peer
  // that proves no trusted identity is kUnauthenticated; a broken connection kUnavailable.
  Result<std::unique_ptr<Stream>> Accept(int fd, Deadline deadline);
  Result<std::unique_ptr<Stream>> Connect(int fd, Deadline deadline);
  // This side's key id.
  const std::string& identity() const { return identity_; }

 private:
  TlsContext() = default;
  Result<std::unique_ptr<Stream>> Handshake(int fd, Deadline deadline, bool server);
  void* ctx_ = nullptr;  // SSL_CTX
  std::string identity_;
  std::vector<std::string> trusted_;
  bool has_ca_ = false;

  friend int TlsVerify(int, void*);
};

}  // namespace weft::net
