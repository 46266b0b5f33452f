// Connections to NATS through nats.c (Debian's libnats): one or more servers (a cluster),
// reconnection with backoff and a bounded reconnect buffer, authentication by user and
// password, token, NKey seed file or credentials file, and TLS, all by nats.c. JetStream is
// used through the connection's raw handle (nats/nats.h) by the modules above.
//
//   auto url = weft::net::ParseNatsUrl("nats://127.0.0.1:4222,127.0.0.1:4223/steps").value();
//   auto c = weft::net::NatsConnection::Connect(url.options).value();
//
// Thread rule: a connection may be used from any thread (nats.c's own rule).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "weft/core/status.h"

struct __natsConnection;  // nats.c's natsConnection

namespace weft::net {

struct NatsOptions {
  std::vector<std::string> servers = {"nats://127.0.0.1:4222"};
  std::string user, password;  // user and password
  std::string token;           // or a token
  std::string creds_file;      // or a credentials file (user JWT and NKey seed)
  std::string nkey;            // or an NKey: the user's public key ("U...")
  std::string nkey_seed_file;  //   and the file holding its seed ("SU...")
  bool tls = false;            // TLS (also implied by tls:// server urls)
  std::string ca_file, cert_file, key_file;
  int64_t connect_timeout_ms = 2000;
  int max_reconnect = -1;             // reconnect attempts per server (-1: for ever)
  int64_t reconnect_wait_ms = 100;    // between attempts (nats.c adds jitter)
  int reconnect_buffer_bytes = 8 << 20;  // published while disconnected, sent on reconnect
  bool no_echo = false;    // the server never sends this connection its own messages back
  bool send_asap = false;  // each publish is written at once (lower latency, more writes)
};

// Parses "nats://[user:password@|token@]host[:port][,host[:port]...][/path][?k=v&...]" with
// the query keys creds (a credentials file), nkey (a public key) and seed (its seed file),
// tls (1), ca, cert and key. "tls://" is nats:// with tls=1.
struct NatsUrl {
  NatsOptions options;
  std::string path;
};
Result<NatsUrl> ParseNatsUrl(std::string_view url);

class NatsConnection {
 public:
  ~NatsConnection();
  NatsConnection(const NatsConnection&) = delete;
  NatsConnection& operator=(const NatsConnection&) = delete;

  // Connects to the first server that answers within connect_timeout_ms: kUnavailable when
  // none does, kUnauthenticated when credentials are refused, kInvalidArgument for options
  // nats.c refuses (a missing credentials file, a bad TLS file).
  static Result<std::unique_ptr<NatsConnection>> Connect(const NatsOptions& options);
  __natsConnection* raw() const { return nc_; }
  const NatsOptions& options() const { return options_; }

 private:
  NatsConnection(__natsConnection* nc, NatsOptions o) : nc_(nc), options_(std::move(o)) {}
  __natsConnection* nc_;
  NatsOptions options_;
};

// The Status for a nats.c status code (and a JetStream error code, or 0), with nats.c's last
// error text, prefixed with `what`.
Status NatsStatus(int nats_status, int js_error, std::string_view what);

}  // namespace weft::net
