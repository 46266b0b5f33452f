// Discovery through NATS (docs/formats/rpc-registry.md): each server announces each resource as
// a route in a JetStream key-value bucket whose entries expire unless refreshed; clients resolve
// a name and a contract hash to the routes of every live server of it. Internal to rpc.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "weft/core/clock.h"
#include "weft/core/status.h"
#include "weft/net/nats.h"
#include "weft/rpc/contract.h"

namespace weft::rpc::internal {

inline constexpr size_t kMaxRouteBytes = 16 << 10;
inline constexpr size_t kMaxRouteAddresses = 32;

// Where one server serves one resource.
struct Route {
  std::string name;      // the resource
  std::string contract;  // its contract's hash (32 hex digits)
  std::string instance;  // the server's instance id (16 hex digits, new at each start)
  std::string identity;  // the server's key id, or empty (plaintext)
  std::vector<std::string> addresses;  // tcp://host:port, best first
  std::string relay;     // the NATS subject of its tunnels (weft/net/nats_tunnel.h), or empty
};

std::string EncodeRoute(const Route& r);
// Strict (every field once and in order, addresses parsed as host:port, at most
// kMaxRouteAddresses of them, kMaxRouteBytes in all); kCorrupt otherwise. Fuzzed
// (tests/fuzz/fuzz_rpc_route.cc).
Result<Route> ParseRoute(std::string_view text);
// A resource name as one key token: letters, digits, '_' and '-' kept, any other byte "=XX".
std::string NameToken(std::string_view name);
// "<name token>.<contract hash>.<instance>"
std::string RouteKey(const Route& r);
// 16 random hex digits.
std::string NewInstanceId();

class Registry {
 public:
  ~Registry();
  // "nats://<servers>[/<bucket>]" (weft/net/nats.h's url; bucket "weft_rpc" by default). A
  // server (`create`) makes the bucket with entries kept for ttl_ms; a client binds to it.
  static Result<std::unique_ptr<Registry>> Open(const std::string& url, bool create, int64_t ttl_ms);
  // Announces (again) a route: its entry lives another ttl.
  Status Put(const Route& r);
  // Withdraws it (a server's shutdown).
  Status Remove(const Route& r);
  // The routes of `name` with `contract`'s hash: kNotFound if none, kContractMismatch naming
  // the hashes it is served with if only other contracts serve that name.
  Result<std::vector<Route>> Resolve(const std::string& name, const Contract& contract, Deadline deadline);
  const std::shared_ptr<net::NatsConnection>& nats() const { return nats_; }
  const std::string& url() const { return url_; }
  int64_t ttl_ms() const { return ttl_ms_; }

 private:
  Registry() = default;
  // The entries under a key filter, until the watcher says the initial values are done.
  Result<std::vector<std::pair<std::string, std::string>>> Scan(const std::string& filter, Deadline deadline);
  std::string url_;
  std::shared_ptr<net::NatsConnection> nats_;
  void* js_ = nullptr;  // jsCtx
  void* kv_ = nullptr;  // kvStore
  int64_t ttl_ms_ = 0;
};

}  // namespace weft::rpc::internal
