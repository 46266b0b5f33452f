// Routes across hosts, over NATS subjects (weft/graph/placement.h). A value published here is
// sent as a graph record on the route's subject; the server does not send a connection its own
// messages (no echo), so what arrives is always another placement's, and is injected.
#include <nats/nats.h>

#include <atomic>
#include <string>
#include <thread>

#include "internal/record.h"
#include "internal/wiring.h"
#include "weft/graph/placement.h"
#include "weft/net/nats.h"

namespace weft::graph {
namespace {

constexpr int64_t kWaitSliceMs = 100;  // the receiver looks at `stopping` this often

}  // namespace

struct NatsPlacement::State {
  Route route;
  std::string subject;
  std::unique_ptr<net::NatsConnection> conn;
  natsSubscription* sub = nullptr;
  Subscription observing;
  std::thread receiver;
  std::atomic<bool> stopping{false};
  std::atomic<uint64_t> sent{0}, received{0}, send_errors{0}, refused{0};
  std::atomic<int64_t> lost_at_close{-1};

  ~State() {
    if (sub != nullptr) natsSubscription_Destroy(sub);
  }

  void Send(const SampleRef& v) {
    if (v->origin() == this) return;
    auto bytes = v->bytes();
    if (!bytes.ok()) {
      ++send_errors;
      return;
    }
    thread_local std::string buf;
    buf.resize(internal::kRecordHeader + bytes->size());
    internal::EncodeRecordInto(reinterpret_cast<uint8_t*>(buf.data()), v->envelope(), route.schema().id(), *bytes);
    const natsStatus s = natsConnection_Publish(conn->raw(), subject.c_str(), buf.data(), static_cast<int>(buf.size()));
    ++(s == NATS_OK ? sent : send_errors);
  }

  void Receive() {
    while (!stopping.load()) {
      natsMsg* m = nullptr;
      const natsStatus s = natsSubscription_NextMsg(&m, sub, kWaitSliceMs);
      if (s == NATS_TIMEOUT || s == NATS_SLOW_CONSUMER) continue;  // drops are counted by the subscription
      if (s != NATS_OK) return;  // unsubscribed, or the connection closed
      const auto* data = reinterpret_cast<const uint8_t*>(natsMsg_GetData(m));
      const auto size = static_cast<size_t>(natsMsg_GetDataLength(m));
      ++(internal::InjectRecord(route, ByteView(data, size), this) ? received : refused);
      natsMsg_Destroy(m);
    }
  }
};

std::string NatsPlacement::SubjectFor(const RouteName& name, std::string_view name_space) {
  std::string out = "weft.graph.";
  for (char c : name_space) out += c == '/' ? '.' : c;
  if (!name_space.empty()) out += '.';
  return out + name.owner + "." + name.family + "." + name.stream + "." + name.variant + "." + name.plane + "." + name.layer;
}

Result<std::shared_ptr<NatsPlacement>> NatsPlacement::Create(Route route, std::string_view url, NatsPlacementOptions o) {
  auto parsed = net::ParseNatsUrl(url);
  if (!parsed.ok()) return parsed.status();
  // The path is the namespace: tokens separated by '/'.
  std::string_view ns = parsed->path;
  while (!ns.empty() && ns.front() == '/') ns.remove_prefix(1);
  for (size_t at = 0; !ns.empty() && at <= ns.size();) {
    const size_t slash = std::min(ns.find('/', at), ns.size());
    WEFT_RETURN_IF_ERROR(RouteName::ValidateToken("namespace", ns.substr(at, slash - at)));
    at = slash + 1;
  }
  std::string subject = o.subject.empty() ? SubjectFor(route.name(), ns) : o.subject;
  for (char c : subject) {
    if (c <= ' ' || c == '*' || c == '>' || static_cast<unsigned char>(c) >= 0x7f) {
      return InvalidArgument("a placement's NATS subject '" + subject + "' may not hold spaces, wildcards or control characters");
    }
  }
  if (subject.empty() || subject.front() == '.' || subject.back() == '.' || subject.find("..") != std::string::npos) {
    return InvalidArgument("a placement's NATS subject '" + subject + "' has an empty token");
  }
  net::NatsOptions no = parsed->options;
  no.no_echo = true;
  no.send_asap = o.low_latency;
  auto conn = net::NatsConnection::Connect(no);
  if (!conn.ok()) return conn.status();

  std::shared_ptr<NatsPlacement> p(new NatsPlacement());
  p->s_ = std::make_shared<State>();
  State& s = *p->s_;
  s.route = route;
  s.subject = std::move(subject);
  s.conn = std::move(*conn);
  natsStatus st = natsConnection_SubscribeSync(&s.sub, s.conn->raw(), s.subject.c_str());
  // The subscription is known to the server once the connection is flushed: a value published
  // elsewhere after Create returns reaches it.
  if (st == NATS_OK) st = natsConnection_FlushTimeout(s.conn->raw(), no.connect_timeout_ms);
  if (st != NATS_OK) return net::NatsStatus(st, 0, "placing route " + route.name().ToString() + " on subject " + s.subject);
  internal::WirePlacement(p->s_, route);
  return p;
}

NatsPlacement::~NatsPlacement() { Close(); }

void NatsPlacement::Close() {
  if (s_ == nullptr || s_->stopping.exchange(true)) return;
  s_->observing.Cancel();
  int64_t lost = 0;
  natsSubscription_GetDropped(s_->sub, &lost);
  s_->lost_at_close.store(lost);
  natsSubscription_Unsubscribe(s_->sub);  // wakes the receiver
  if (s_->receiver.joinable()) s_->receiver.join();
  // What was published here reaches the server before the connection goes.
  natsConnection_FlushTimeout(s_->conn->raw(), 1000);
}

PlacementStats NatsPlacement::stats() const {
  int64_t lost = s_->lost_at_close.load();
  if (lost < 0 && natsSubscription_GetDropped(s_->sub, &lost) != NATS_OK) lost = 0;
  return {s_->sent.load(), s_->received.load(), s_->send_errors.load(), s_->refused.load(), static_cast<uint64_t>(lost)};
}

const std::string& NatsPlacement::where() const { return s_->subject; }

}  // namespace weft::graph
