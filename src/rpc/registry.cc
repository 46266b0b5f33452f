#include "internal/registry.h"

#include <nats/nats.h>
#include <sys/random.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <optional>

#include "weft/net/nats_tunnel.h"
#include "weft/net/tcp.h"

namespace weft::rpc::internal {

namespace {

constexpr std::string_view kMagic = "weft-route 1";
constexpr char kHex[] = "0123456789abcdef";

bool IsHex(std::string_view s, size_t n) {
  return s.size() == n && std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

bool TokenChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

// The name a token stands for, or nullopt if it is not one NameToken makes.
std::optional<std::string> FromToken(std::string_view t) {
  std::string out;
  for (size_t i = 0; i < t.size(); ++i) {
    if (TokenChar(t[i])) {
      out.push_back(t[i]);
      continue;
    }
    if (t[i] != '=' || i + 2 >= t.size() || !IsHex(t.substr(i + 1, 2), 2)) return std::nullopt;
    const auto nib = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
    const char c = static_cast<char>(nib(t[i + 1]) * 16 + nib(t[i + 2]));
    if (TokenChar(c)) return std::nullopt;  // one spelling per name
    out.push_back(c);
    i += 2;
  }
  if (out.empty() || out.size() > 128) return std::nullopt;
  return out;
}

}  // namespace

std::string NameToken(std::string_view name) {
  std::string out;
  for (char c : name) {
    if (TokenChar(c)) {
      out.push_back(c);
    } else {
      const auto b = static_cast<unsigned char>(c);
      out += {'=', kHex[b >> 4], kHex[b & 15]};
    }
  }
  return out;
}

std::string RouteKey(const Route& r) { return NameToken(r.name) + "." + r.contract + "." + r.instance; }

std::string NewInstanceId() {
  unsigned char b[8] = {0};
  if (::getrandom(b, sizeof(b), 0) != static_cast<ssize_t>(sizeof(b))) {
    const uint64_t t = static_cast<uint64_t>(MonotonicNs()) ^ static_cast<uint64_t>(::getpid()) << 40;
    std::memcpy(b, &t, 8);
  }
  std::string s;
  for (unsigned char c : b) s += {kHex[c >> 4], kHex[c & 15]};
  return s;
}

std::string EncodeRoute(const Route& r) {
  std::string s(kMagic);
  s += "\nname " + NameToken(r.name);
  s += "\ncontract " + r.contract;
  s += "\ninstance " + r.instance;
  s += "\nidentity " + (r.identity.empty() ? std::string("-") : r.identity);
  for (const std::string& a : r.addresses) s += "\naddress " + a;
  s += "\nrelay " + (r.relay.empty() ? std::string("-") : r.relay);
  s += "\n";
  return s;
}

Result<Route> ParseRoute(std::string_view text) {
  auto bad = [](const std::string& why) { return Status(Code::kCorrupt, "registry route: " + why); };
  if (text.size() > kMaxRouteBytes) return bad("longer than " + std::to_string(kMaxRouteBytes) + " bytes");
  if (text.empty() || text.back() != '\n') return bad("does not end with a newline");
  std::vector<std::string_view> lines;
  for (size_t at = 0; at < text.size();) {
    const size_t nl = text.find('\n', at);
    lines.push_back(text.substr(at, nl - at));
    at = nl + 1;
  }
  size_t i = 0;
  auto field = [&](std::string_view key) -> std::optional<std::string_view> {
    if (i >= lines.size()) return std::nullopt;
    const std::string_view l = lines[i];
    if (l.size() <= key.size() + 1 || l.substr(0, key.size()) != key || l[key.size()] != ' ') return std::nullopt;
    ++i;
    return l.substr(key.size() + 1);
  };
  if (lines.empty() || lines[0] != kMagic) return bad("not a '" + std::string(kMagic) + "' record");
  i = 1;
  Route r;
  auto name = field("name");
  if (!name) return bad("no name");
  auto decoded = FromToken(*name);
  if (!decoded) return bad("the name is not a 1 to 128 byte name token");
  r.name = *decoded;
  auto contract = field("contract");
  if (!contract || !IsHex(*contract, 32)) return bad("no contract hash of 32 hex digits");
  r.contract = std::string(*contract);
  auto instance = field("instance");
  if (!instance || !IsHex(*instance, 16)) return bad("no instance id of 16 hex digits");
  r.instance = std::string(*instance);
  auto identity = field("identity");
  if (!identity || identity->size() > 512 ||
      std::any_of(identity->begin(), identity->end(), [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; })) {
    return bad("no identity");
  }
  if (*identity != "-") r.identity = std::string(*identity);
  while (auto a = field("address")) {
    if (r.addresses.size() >= kMaxRouteAddresses) return bad("more than " + std::to_string(kMaxRouteAddresses) + " addresses");
    if (a->substr(0, 6) != "tcp://" || !net::ParseHostPort(a->substr(6)).ok()) {
      return bad("address '" + std::string(a->substr(0, 80)) + "' is not tcp://host:port");
    }
    r.addresses.emplace_back(*a);
  }
  auto relay = field("relay");
  if (!relay) return bad("no relay");
  if (*relay != "-") {
    if (!net::ValidTunnelSubject(*relay)) return bad("the relay is not a plain subject");
    r.relay = std::string(*relay);
  }
  if (i != lines.size()) return bad("unexpected line '" + std::string(lines[i].substr(0, 80)) + "'");
  return r;
}

namespace {

std::string BucketOf(const std::string& path) { return path.empty() ? "weft_rpc" : path; }

bool ValidBucket(const std::string& b) {
  return !b.empty() && b.size() <= 64 && std::all_of(b.begin(), b.end(), TokenChar);
}

}  // namespace

Registry::~Registry() {
  if (kv_ != nullptr) kvStore_Destroy(static_cast<kvStore*>(kv_));
  if (js_ != nullptr) jsCtx_Destroy(static_cast<jsCtx*>(js_));
}

Result<std::unique_ptr<Registry>> Registry::Open(const std::string& url, bool create, int64_t ttl_ms) {
  auto parsed = net::ParseNatsUrl(url);
  if (!parsed.ok()) return parsed.status();
  const std::string bucket = BucketOf(parsed->path);
  if (!ValidBucket(bucket)) return InvalidArgument("registry bucket '" + bucket + "': 1 to 64 letters, digits, _ -");
  if (create && ttl_ms < 1000) return InvalidArgument("registry ttl: at least 1000 ms");
  auto nc = net::NatsConnection::Connect(parsed->options);
  if (!nc.ok()) return nc.status();
  std::unique_ptr<Registry> r(new Registry());
  r->url_ = url;
  r->nats_ = std::shared_ptr<net::NatsConnection>(std::move(nc).value());
  jsOptions o;
  jsOptions_Init(&o);
  o.Wait = 5000;
  jsCtx* js = nullptr;
  natsStatus s = natsConnection_JetStream(&js, r->nats_->raw(), &o);
  if (s != NATS_OK) return net::NatsStatus(s, 0, "registry " + url + ": JetStream");
  r->js_ = js;
  kvStore* kv = nullptr;
  s = js_KeyValue(&kv, js, bucket.c_str());
  if (s == NATS_NOT_FOUND && create) {
    kvConfig c;
    kvConfig_Init(&c);
    c.Bucket = bucket.c_str();
    c.History = 1;
    c.TTL = ttl_ms * 1'000'000;  // (nanoseconds)
    c.StorageType = js_MemoryStorage;  // routes are worth nothing once their servers are gone
    s = js_CreateKeyValue(&kv, js, &c);
    if (s != NATS_OK) {
      Status made = net::NatsStatus(s, 0, "registry " + url + ": making bucket " + bucket);
      s = js_KeyValue(&kv, js, bucket.c_str());  // another server made it meanwhile?
      if (s != NATS_OK) return made;
    }
  }
  if (s == NATS_NOT_FOUND) {
    return NotFound("registry " + url + ": no bucket '" + bucket + "' (no server has registered there)");
  }
  if (s != NATS_OK) return net::NatsStatus(s, 0, "registry " + url + ": bucket " + bucket);
  r->kv_ = kv;
  kvStatus* st = nullptr;
  if (kvStore_Status(&st, kv) == NATS_OK) {
    r->ttl_ms_ = kvStatus_TTL(st) / 1'000'000;
    kvStatus_Destroy(st);
  }
  if (create && r->ttl_ms_ <= 0) {
    return Status(Code::kInvalidArgument, "registry " + url + ": bucket '" + bucket +
                                                 "' keeps entries for ever: a dead server's routes would stay (make it with a ttl)");
  }
  return r;
}

Status Registry::Put(const Route& r) {
  const std::string text = EncodeRoute(r);
  uint64_t rev = 0;
  const natsStatus s = kvStore_Put(&rev, static_cast<kvStore*>(kv_), RouteKey(r).c_str(), text.data(), static_cast<int>(text.size()));
  return s == NATS_OK ? Status::Ok() : net::NatsStatus(s, 0, "registry " + url_ + ": announcing '" + r.name + "'");
}

Status Registry::Remove(const Route& r) {
  kvPurgeOptions o;
  kvPurgeOptions_Init(&o);
  o.Timeout = 2000;
  const natsStatus s = kvStore_Purge(static_cast<kvStore*>(kv_), RouteKey(r).c_str(), &o);
  return s == NATS_OK ? Status::Ok() : net::NatsStatus(s, 0, "registry " + url_ + ": withdrawing '" + r.name + "'");
}

Result<std::vector<std::pair<std::string, std::string>>> Registry::Scan(const std::string& filter, Deadline deadline) {
  kvWatchOptions o;
  kvWatchOptions_Init(&o);
  o.IgnoreDeletes = true;
  kvWatcher* w = nullptr;
  natsStatus s = kvStore_Watch(&w, static_cast<kvStore*>(kv_), filter.c_str(), &o);
  if (s != NATS_OK) return net::NatsStatus(s, 0, "registry " + url_ + ": watching " + filter);
  std::vector<std::pair<std::string, std::string>> out;
  Status status;
  for (;;) {
    const int64_t ms = deadline.is_never() ? 5000 : std::max<int64_t>(1, deadline.RemainingNs() / 1'000'000);
    kvEntry* e = nullptr;
    s = kvWatcher_Next(&e, w, ms);
    if (s != NATS_OK) {
      status = s == NATS_TIMEOUT ? Status(Code::kTimeout, "registry " + url_ + ": no answer before the deadline")
                                 : net::NatsStatus(s, 0, "registry " + url_);
      break;
    }
    if (e == nullptr) break;  // the initial values are done
    if (kvEntry_Operation(e) == kvOp_Put && out.size() < 4096) {
      out.emplace_back(kvEntry_Key(e), std::string(static_cast<const char*>(kvEntry_Value(e)),
                                                   static_cast<size_t>(kvEntry_ValueLen(e))));
    }
    kvEntry_Destroy(e);
  }
  kvWatcher_Destroy(w);
  if (!status.ok()) return status;
  return out;
}

Result<std::vector<Route>> Registry::Resolve(const std::string& name, const Contract& contract, Deadline deadline) {
  const std::string token = NameToken(name);
  const std::string hash = contract.Hash();
  auto entries = Scan(token + "." + hash + ".*", deadline);
  if (!entries.ok()) return entries.status();
  std::vector<Route> routes;
  for (const auto& [key, value] : *entries) {
    auto r = ParseRoute(value);
    // A route is believed only under its own key: an entry cannot redirect another name.
    if (r.ok() && r->name == name && r->contract == hash && RouteKey(*r) == key) routes.push_back(std::move(r).value());
  }
  if (!routes.empty()) return routes;
  auto others = Scan(token + ".*.*", deadline);
  if (!others.ok()) return others.status();
  std::map<std::string, int> hashes;
  for (const auto& [key, value] : *others) {
    auto r = ParseRoute(value);
    if (r.ok() && r->name == name && RouteKey(*r) == key) ++hashes[r->contract];
  }
  if (hashes.empty()) return NotFound("no live server of '" + name + "' is registered at " + url_);
  std::string list;
  for (const auto& [h, n] : hashes) list += (list.empty() ? "" : ", ") + h + " (" + std::to_string(n) + (n == 1 ? " server)" : " servers)");
  return Status(Code::kContractMismatch, "'" + name + "' is registered at " + url_ + " with contract hash " + list +
                                             ", not " + hash + " (" + contract.ns + "." + contract.name + " " +
                                             contract.version + "): a name alone is not enough");
}

}  // namespace weft::rpc::internal
