// The client: connects by address (inproc://, ipc://, tcp://), checks contracts, and calls
// and streams over a Conn, the same code for every transport; in-process, the handler runs on
// the caller's thread (streams on a thread of their own under the same credit).
#include <cstring>
#include <deque>
#include <random>
#include <thread>

#include "internal/hosted.h"
#include "internal/registry.h"
#include "internal/transports.h"
#include "weft/net/nats_tunnel.h"
#include "weft/core/mutex.h"

namespace weft::rpc {

using internal::Blocks;
using internal::Conn;
using internal::FrameOut;
using internal::FrameType;
using internal::Hosted;
using internal::kCreditBatch;
using internal::kInitialCredit;
using internal::Value;

namespace {

const Caller& InprocCaller() {
  static const Caller c{"inproc", "", "this process"};
  return c;
}

// A call made in this process: the handler runs on the caller's thread.
class InprocCall final : public CallContext {
 public:
  // `blocks` must outlive the call (the caller's reference keeps it).
  InprocCall(Blocks* blocks, const CancelToken* cancel) : blocks_(blocks), cancel_(cancel) {}
  const Caller& caller() const override { return InprocCaller(); }
  bool Cancelled() override { return cancel_ != nullptr && cancel_->cancelled(); }
  Status Yield(ByteView chunk) override {
    if (!sink_) return InvalidArgument("Yield from a method that does not stream");
    return sink_(chunk);
  }
  Result<std::shared_ptr<Held>> Loan(size_t n) override {
    if (blocks_ == nullptr) return Status(Code::kClosed, "the server is shut down");
    return blocks_->Loan(n);
  }
  Status ReturnHeld(ByteView bytes) override {
    held_ = blocks_ == nullptr ? nullptr : blocks_->Find(bytes.data(), bytes.size());
    if (held_ == nullptr) return NotFound("ReturnHeld: the bytes do not start a block held by this server");
    view_ = bytes;
    return Status::Ok();
  }
  std::shared_ptr<Held> ArgumentHold(size_t) override { return nullptr; }

  std::function<Status(ByteView)> sink_;  // streams: takes each chunk
  std::shared_ptr<Held> held_;
  ByteView view_;

 private:
  Blocks* blocks_;
  const CancelToken* cancel_;
};

Status SendControl(Conn& c, FrameType type, uint64_t call, uint32_t count, Deadline d) {
  uint8_t payload[8] = {0};
  std::memcpy(payload, &count, 4);
  FrameOut o;
  o.type = type;
  o.call = call;
  return c.SendPayload(o, ByteView(payload, 8), d);
}

bool Broken(Code c) { return c == Code::kPeerDead || c == Code::kClosed || c == Code::kUnavailable || c == Code::kCorrupt; }

}  // namespace

struct Client::Impl {
  Contract contract;
  std::string name;     // the resource
  std::string address;  // where it is
  ConnectOptions options;
  std::unique_ptr<net::TlsContext> tls;  // tcp:// with TLS
  std::shared_ptr<Blocks> blocks;        // the server's pool (ipc, inproc), for large values
  Mutex mu;                              // one call at a time on this connection
  bool stream_open WEFT_GUARDED_BY(mu) = false;  // a Stream owns the connection until it ends
  // ipc://, tcp://
  uint32_t resource = 0;
  std::unique_ptr<Conn> conn;  // used under mu; null once broken (the next call dials again)
  std::vector<uint32_t> methods;  // the server's index of each of our methods
  uint64_t next_call WEFT_GUARDED_BY(mu) = 1;
  std::map<uint64_t, std::vector<std::shared_ptr<Held>>> arg_holds WEFT_GUARDED_BY(mu);  // by call, until its answer
  bool closed = false;
  // inproc://
  std::shared_ptr<Hosted> local;
  std::string where;  // "resource 'counter' at ipc://calc"
  // nats:// (a registry): the routes resolved at each dial; tunnels made at the first relay;
  // the server instance connected to, and the one that failed last (tried last next time).
  std::unique_ptr<internal::Registry> registry;
  std::unique_ptr<net::NatsTunnels> tunnels;
  std::string instance, failed_instance;

  Result<int> Method(std::string_view method, bool stream) const {
    const int idx = contract.Find(method);
    if (idx < 0) return InvalidArgument("contract " + contract.name + " has no method '" + std::string(method) + "'");
    if (contract.methods[idx].stream != stream) {
      return InvalidArgument("method '" + std::string(method) + (stream ? "' does not stream: call it" : "' streams: open it as a stream"));
    }
    return idx;
  }
  // Connects (again): the handshake, the contracts compared, our methods found on the server.
  Status Dial(Deadline deadline);
  // tcp:// and tunnels: TLS (unless plaintext) and the handshake over a connected socket
  // (owned from here), then Attach.
  Status DialStream(int fd, Deadline deadline);
  // Takes the server's answer: its contract checked, our methods mapped, `c` the connection.
  Status Attach(std::string_view answer, std::unique_ptr<Conn> c);
  // nats://: resolve, then a direct address of a live server, else its relay.
  Status DialRegistry(Deadline deadline);
  // A connection to call on: the one we have, or a new one if it broke.
  Status Ready(Deadline deadline) WEFT_REQUIRES(mu) {
    if (closed) return Status(Code::kClosed, "client is closed");
    if (conn != nullptr) return Status::Ok();
    arg_holds.clear();
    return Dial(deadline);
  }
  // After a failure of the connection itself, the next call dials again.
  void Check(const Status& s) WEFT_REQUIRES(mu) {
    if (!s.ok() && Broken(s.code())) {
      conn.reset();
      stream_open = false;
      failed_instance = instance;
    }
  }
  Result<uint64_t> Send(int idx, const std::vector<ByteView>& args, Deadline deadline, bool hold) WEFT_REQUIRES(mu);
  // Sends a call on a connection free of streams (dialled again if it broke): its id.
  Result<uint64_t> Begin(int idx, const std::vector<ByteView>& args, const CallOptions& o,
                         bool* dial_failed = nullptr) WEFT_REQUIRES(mu) {
    if (stream_open) return Status(Code::kBusy, "a stream is open on this connection: finish or cancel it first");
    if (Status ready = Ready(o.deadline); !ready.ok()) {
      if (dial_failed != nullptr) *dial_failed = true;
      return ready;
    }
    auto call = Send(idx, args, o.deadline, o.hold);
    if (!call.ok()) {
      Check(call.status());
      return Explain(call.status(), idx);
    }
    return call;
  }
  // Reads frames until one for `call`; frames of earlier calls (timed out, cancelled) are dropped
  // and any hold they carried released. Cancels the call if the token says so.
  // `also`: a second token that cancels the call (a hedge that won).
  Result<internal::Frame> Await(uint64_t call, const CallOptions& o, const CancelToken* also = nullptr) WEFT_REQUIRES(mu);
  // A failure of the connection itself (its channels timing out, the server dying or closing)
  // told in the caller's terms: the method, the resource and the server, not our channels.
  Status Explain(const Status& s, int idx) const {
    const std::string call = contract.methods[idx].name + "() on " + where;
    switch (s.code()) {
      case Code::kTimeout:
        return Status(Code::kTimeout, "no answer to " + call + " before the deadline");
      case Code::kPeerDead:
        return Status(Code::kPeerDead, "the server of " + call + " died");
      case Code::kClosed:
        return Status(Code::kClosed, "the server of " + call + " closed the connection");
      case Code::kUnavailable:
        return Status(Code::kUnavailable, "lost the connection to the server of " + call + ": " + s.message());
      default:
        return s;
    }
  }
  Result<Reply> ToReply(const internal::Frame& f, bool hold);
  // One call on this connection: send, await, the reply.
  // *dial_failed: no connection could be made (the server is gone, whatever the code says).
  Result<Reply> Once(int idx, const std::vector<ByteView>& args, const CallOptions& o, bool* dial_failed);
  // The reply in frame f of `call` (released after).
  Result<Reply> Finish(uint64_t call, const internal::Frame& f, bool hold) WEFT_REQUIRES(mu);
  // A read sent to a second server too if the first has not answered by options.hedge_after_ms.
  Result<Reply> Hedged(int idx, const std::vector<ByteView>& args, const CallOptions& o, bool* dial_failed);
  static Result<std::unique_ptr<Client>> Make(const Contract& contract, const std::string& name,
                                              const std::string& address, Deadline deadline,
                                              const ConnectOptions& options, const std::string& avoid);
  // The circuit breaker (ConnectOptions::breaker).
  struct Breaker {
    BreakerPolicy policy;
    Mutex mu;
    int failures WEFT_GUARDED_BY(mu) = 0;      // in a row
    int64_t open_until WEFT_GUARDED_BY(mu) = 0;
    bool trial WEFT_GUARDED_BY(mu) = false;    // a half-open trial call is out
    // kUnavailable while open; lets one trial through after open_ms.
    Status Admit();
    void Record(const Status& s, bool dial_failed);
  } breaker;
  Mutex hedge_mu;
  std::unique_ptr<Client> hedge WEFT_GUARDED_BY(hedge_mu);  // the second connection of hedged reads
  void Drop(const internal::Frame& f) WEFT_REQUIRES(mu);
  Result<Reply> CallLocal(int idx, const std::vector<ByteView>& args, const CallOptions& o);
  // The handler's own result (the caller looks at ctx for a held one).
  Result<std::string> RunLocal(int idx, const std::vector<ByteView>& args, const CallOptions& o, InprocCall& ctx);
};

Status Client::Impl::Dial(Deadline deadline) {
  if (registry != nullptr) return DialRegistry(deadline);
  if (address.rfind("ipc://", 0) == 0) {
    std::shared_ptr<Blocks> pool;
    std::string answer;
    auto r = internal::DialIpc(address.substr(6), name, contract, deadline, &pool, &answer);
    if (!r.ok()) return r.status();
    blocks = std::move(pool);
    return Attach(answer, std::move(r).value());
  }
  auto hp = net::ParseHostPort(std::string_view(address).substr(6));
  if (!hp.ok()) return hp.status();
  auto fd = net::Dial(*hp, deadline);
  if (!fd.ok()) return fd.status();
  return DialStream(*fd, deadline);
}

Status Client::Impl::DialStream(int fd, Deadline deadline) {
  std::unique_ptr<net::Stream> s;
  if (tls != nullptr) {
    auto t = tls->Connect(fd, deadline);
    if (!t.ok()) return t.status();
    s = std::move(t).value();
  } else {
    s = net::PlainStream(fd);
  }
  WEFT_RETURN_IF_ERROR(internal::WriteHandshake(*s, internal::EncodeHello(name, internal::kNoSlot, contract.Canonical()),
                                                deadline));
  auto msg = internal::ReadHandshake(*s, deadline);
  if (!msg.ok()) {
    if (tls == nullptr && msg.status().code() == Code::kUnavailable) {
      return Status(Code::kUnavailable, msg.status().message() + " during the handshake (does the server want TLS?)");
    }
    return msg.status();
  }
  return Attach(*msg, internal::StreamConn(std::move(s), uint64_t{1} << 40));
}

Status Client::Impl::Attach(std::string_view answer, std::unique_ptr<Conn> c) {
  auto a = internal::ParseAnswer(answer);
  if (!a.ok()) return a.status();
  auto server_contract = Contract::Parse(a->contract);
  if (!server_contract.ok()) return server_contract.status();
  WEFT_RETURN_IF_ERROR(CheckCompatible(*server_contract, contract));
  methods.assign(contract.methods.size(), 0);
  for (size_t i = 0; i < contract.methods.size(); ++i) {
    methods[i] = static_cast<uint32_t>(server_contract->Find(contract.methods[i].name));
  }
  resource = a->resource;
  conn = std::move(c);
  return Status::Ok();
}

Status Client::Impl::DialRegistry(Deadline deadline) {
  auto routes = registry->Resolve(name, contract, deadline);
  if (!routes.ok()) return routes.status();
  // Clients spread over the replicas; the server that failed last is tried last (its route
  // may be stale: it stays in the registry until its entry expires).
  static thread_local std::minstd_rand rng(static_cast<uint32_t>(MonotonicNs()));
  std::shuffle(routes->begin(), routes->end(), rng);
  std::stable_partition(routes->begin(), routes->end(),
                        [&](const internal::Route& r) { return r.instance != failed_instance; });
  struct Way {
    const internal::Route* route;
    std::string address;  // tcp://..., or a relay subject
    bool relay;
  };
  std::vector<Way> ways;  // every direct address first, then the relays
  for (const internal::Route& r : *routes) {
    for (const std::string& a : r.addresses) ways.push_back({&r, a, false});
  }
  for (const internal::Route& r : *routes) {
    if (!r.relay.empty()) ways.push_back({&r, r.relay, true});
  }
  if (ways.empty()) return Status(Code::kUnavailable, "the servers of '" + name + "' at " + address + " announce no way in");
  // Each way but the last gets a slice of the deadline: an unreachable address (a dropped SYN)
  // must not take all of it.
  constexpr int64_t kAttemptNs = 1'500'000'000;
  Status refused, failed;
  for (size_t i = 0; i < ways.size(); ++i) {
    const Way& w = ways[i];
    Deadline d = deadline;
    if (i + 1 < ways.size()) {
      const Deadline slice = Deadline::AfterNs(kAttemptNs);
      if (d.is_never() || slice.at_ns() < d.at_ns()) d = slice;
    }
    Result<int> fd = Status(Code::kUnavailable, "");
    if (w.relay) {
      if (tunnels == nullptr) {
        auto t = net::NatsTunnels::Create(registry->nats());
        if (!t.ok()) return t.status();
        tunnels = std::move(t).value();
      }
      fd = tunnels->Dial(w.address, d);
    } else {
      auto hp = net::ParseHostPort(std::string_view(w.address).substr(6));
      fd = hp.ok() ? net::Dial(*hp, d) : Result<int>(hp.status());
    }
    Status s = fd.ok() ? DialStream(*fd, d) : fd.status();
    if (s.ok()) {
      instance = w.route->instance;
      where = "resource '" + name + "' at " + (w.relay ? "nats relay " : "") + w.address + " (from " + address + ")";
      return s;
    }
    const std::string at = (w.relay ? "nats relay " : "") + w.address + ": " + s.message();
    const Code c = s.code();
    // A server that answered and refused says more than one that did not answer.
    if (c == Code::kUnauthenticated || c == Code::kPermissionDenied || c == Code::kContractMismatch ||
        c == Code::kVersionMismatch || c == Code::kNotFound) {
      if (refused.ok()) refused = Status(c, at);
    } else if (failed.ok()) {
      failed = Status(c == Code::kTimeout && !deadline.Expired() ? Code::kUnavailable : c, at);
    }
    if (deadline.Expired()) break;
  }
  if (!refused.ok()) return refused;
  return Status(failed.code(), "no server of '" + name + "' from " + address + " could be reached (" +
                                   std::to_string(routes->size()) + " registered); first failure: " + failed.message());
}

Result<uint64_t> Client::Impl::Send(int idx, const std::vector<ByteView>& args, Deadline deadline, bool hold) {
  std::vector<Value> values(args.size());
  std::vector<std::shared_ptr<Held>> keep;
  for (size_t i = 0; i < args.size(); ++i) {
    auto v = conn->Lend(args[i], nullptr, &keep);
    if (!v.ok()) return v.status();
    values[i] = *v;
  }
  const uint64_t call = next_call++;
  FrameOut o;
  o.type = FrameType::kCall;
  o.flags = hold ? internal::kFlagHold : 0;
  o.resource = resource;
  o.method = methods[idx];
  o.call = call;
  o.deadline_ns = internal::DeadlineToWire(deadline);
  WEFT_RETURN_IF_ERROR(conn->Send(o, values, deadline));
  if (!keep.empty()) arg_holds[call] = std::move(keep);
  return call;
}

Result<internal::Frame> Client::Impl::Await(uint64_t call, const CallOptions& o, const CancelToken* also) {
  const bool watch = o.cancel != nullptr || also != nullptr;
  for (;;) {
    if ((o.cancel != nullptr && o.cancel->cancelled()) || (also != nullptr && also->cancelled())) {
      SendControl(*conn, FrameType::kCancel, call, 0, Deadline::AfterMs(1000)).IgnoreError();
      return Status(Code::kCancelled, "the call was cancelled");
    }
    Deadline d = o.deadline;
    if (watch) {  // look at the tokens every millisecond
      const Deadline slice = Deadline::AfterMs(1);
      if (d.is_never() || slice.at_ns() < d.at_ns()) d = slice;
    }
    auto f = conn->Read(d);
    if (!f.ok()) {
      const Code c = f.status().code();
      if ((c == Code::kTimeout || c == Code::kWouldBlock) && watch && !o.deadline.Expired()) continue;
      return f.status();
    }
    if (f->header.call_id != call) {  // the answer of an earlier call that timed out or was cancelled
      Drop(*f);
      conn->Release();
      continue;
    }
    return f;  // the caller releases the frame
  }
}

void Client::Impl::Drop(const internal::Frame& f) {
  if (f.type() == FrameType::kReply || f.type() == FrameType::kChunk) {
    auto vals = conn->Values(f);
    if (vals.ok()) {
      for (const Value& v : *vals) conn->Drop(v);
    }
  }
  if (f.type() != FrameType::kChunk) arg_holds.erase(f.header.call_id);
}

Result<Reply> Client::Impl::ToReply(const internal::Frame& f, bool hold) {
  if (f.type() == FrameType::kError) return internal::DecodeError(f.payload);
  if (f.type() != FrameType::kReply && f.type() != FrameType::kChunk) return Corrupt("unexpected frame in reply");
  auto vals = conn->Values(f);
  if (!vals.ok()) return vals.status();
  if (vals->size() != 1) {
    for (const Value& v : *vals) conn->Drop(v);
    return Corrupt("a reply carries one value");
  }
  return conn->Adopt((*vals)[0], hold);
}

Result<Reply> Client::Impl::CallLocal(int idx, const std::vector<ByteView>& args, const CallOptions& o) {
  InprocCall ctx(local->blocks.get(), o.cancel);
  Result<std::string> r = RunLocal(idx, args, o, ctx);
  if (!r.ok()) return r.status();
  Reply rep;
  if (ctx.held_ != nullptr) {
    if (o.hold) {
      rep.held = std::move(ctx.held_);
      rep.held_length = ctx.view_.size();
    } else {
      rep.inline_bytes.assign(reinterpret_cast<const char*>(ctx.view_.data()), ctx.view_.size());
    }
  } else {
    rep.inline_bytes = std::move(r).value();
  }
  return rep;
}

Result<std::string> Client::Impl::RunLocal(int idx, const std::vector<ByteView>& args, const CallOptions& o,
                                           InprocCall& ctx) {
  Hosted& h = *local;
  const MethodSpec& ms = contract.methods[idx];
  if (args.size() != ms.params.size()) {
    return InvalidArgument("method '" + ms.name + "' takes " + std::to_string(ms.params.size()) + " arguments, got " +
                           std::to_string(args.size()));
  }
  CallArgs a;
  a.method = static_cast<int>(methods[idx]);
  a.args = args;
  a.deadline = o.deadline;
  a.context = &ctx;
  std::function<bool()> cancelled;
  if (o.cancel != nullptr) cancelled = [&o] { return o.cancel->cancelled(); };
  if (!h.scheduler.Enter(ms.access, o.deadline, o.cancel != nullptr ? &cancelled : nullptr)) {
    if (o.cancel != nullptr && o.cancel->cancelled()) return Status(Code::kCancelled, "the call was cancelled");
    return Status(Code::kTimeout, "resource busy past the call's deadline");
  }
  if (h.closed.load(std::memory_order_relaxed)) {  // ordered by the scheduler's turn (see Hosted)
    h.scheduler.Leave(ms.access);
    return Status(Code::kClosed, "the resource's server shut down");
  }
  Result<std::string> r = h.handlers[methods[idx]](a);
  h.scheduler.Leave(ms.access);
  if (o.cancel != nullptr && o.cancel->cancelled()) return Status(Code::kCancelled, "the call was cancelled");
  return r;
}

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Client::~Client() { Close().IgnoreError(); }

Result<std::unique_ptr<Client>> Client::Connect(const Contract& contract, const std::string& name,
                                                const std::string& address, Deadline deadline,
                                                const ConnectOptions& options) {
  return Impl::Make(contract, name, address, deadline, options, "");
}

Result<std::unique_ptr<Client>> Client::Impl::Make(const Contract& contract, const std::string& name,
                                                   const std::string& address, Deadline deadline,
                                                   const ConnectOptions& options, const std::string& avoid) {
  WEFT_RETURN_IF_ERROR(Validate(contract));
  if (options.retry.attempts < 1 || options.retry.backoff_ms < 0 || options.retry.max_backoff_ms < 0 ||
      options.hedge_after_ms < 0 || options.breaker.failures < 0 || options.breaker.open_ms < 0) {
    return InvalidArgument("connect options: retry attempts at least 1; backoffs, hedge_after_ms and breaker "
                           "settings not negative");
  }
  auto impl = std::make_unique<Impl>();
  impl->contract = contract;
  impl->name = name;
  impl->address = address;
  impl->options = options;
  impl->where = "resource '" + name + "' at " + address;
  impl->failed_instance = avoid;
  impl->breaker.policy = options.breaker;
  if (address.rfind("inproc://", 0) == 0) {
    auto h = internal::FindInproc(address.substr(9), name);
    if (!h.ok()) return h.status();
    WEFT_RETURN_IF_ERROR(CheckCompatible((*h)->resource.contract, contract));
    impl->methods.assign(contract.methods.size(), 0);
    for (size_t i = 0; i < contract.methods.size(); ++i) {
      impl->methods[i] = static_cast<uint32_t>((*h)->resource.contract.Find(contract.methods[i].name));
    }
    impl->local = *std::move(h);
    impl->blocks = impl->local->blocks;
    return std::unique_ptr<Client>(new Client(std::move(impl)));
  }
  const bool tcp = address.rfind("tcp://", 0) == 0;
  const bool nats = address.rfind("nats://", 0) == 0 || address.rfind("tls://", 0) == 0;
  if (address.rfind("ipc://", 0) == 0) {
    if (!internal::ValidServerId(address.substr(6))) return InvalidArgument("address '" + address + "': bad server id");
  } else if (tcp) {
    auto hp = net::ParseHostPort(std::string_view(address).substr(6));
    if (!hp.ok()) return hp.status();
  } else if (nats) {
    auto reg = internal::Registry::Open(address, false, 0);
    if (!reg.ok()) return reg.status();
    impl->registry = std::move(reg).value();
  } else {
    return InvalidArgument("address '" + address +
                           "': expected ipc://<id>, tcp://<host>:<port>, nats://<registry> or inproc://<id>");
  }
  if ((tcp || nats) && !options.tcp.plaintext) {
    auto ctx = net::TlsContext::Create(internal::TlsConfig(options.tcp), false);
    if (!ctx.ok()) return ctx.status();
    impl->tls = std::move(ctx).value();
  }
  {
    MutexLock g(impl->mu);
    WEFT_RETURN_IF_ERROR(impl->Dial(deadline));
  }
  return std::unique_ptr<Client>(new Client(std::move(impl)));
}

bool Retryable(Code code) {
  switch (code) {
    case Code::kUnavailable:
    case Code::kPeerDead:
    case Code::kClosed:
    case Code::kResourceExhausted:
    case Code::kAborted:
      return true;
    default:
      return false;
  }
}

Result<Reply> Client::Impl::Once(int idx, const std::vector<ByteView>& args, const CallOptions& o, bool* dial_failed) {
  MutexLock g(mu);
  auto call = Begin(idx, args, o, dial_failed);
  if (!call.ok()) return call.status();
  auto f = Await(*call, o);
  if (!f.ok()) {
    Check(f.status());
    return Explain(f.status(), idx);
  }
  return Finish(*call, *f, o.hold);
}

Result<Reply> Client::Impl::Finish(uint64_t call, const internal::Frame& f, bool hold) {
  Result<Reply> r = ToReply(f, hold);
  arg_holds.erase(call);
  conn->Release();
  return r;
}

Result<Reply> Client::Impl::Hedged(int idx, const std::vector<ByteView>& args, const CallOptions& o,
                                   bool* dial_failed) {
  MutexLock g(mu);
  auto call = Begin(idx, args, o, dial_failed);
  if (!call.ok()) return call.status();
  // The primary alone until the hedge point.
  CallOptions first = o;
  const Deadline hedge_at = Deadline::AfterMs(options.hedge_after_ms);
  if (o.deadline.is_never() || hedge_at.at_ns() < o.deadline.at_ns()) first.deadline = hedge_at;
  auto f = Await(*call, first);
  const bool slow = !f.ok() && f.status().code() == Code::kTimeout && !o.deadline.Expired();
  if (!slow) {
    if (!f.ok()) {
      Check(f.status());
      return Explain(f.status(), idx);
    }
    return Finish(*call, *f, o.hold);
  }
  // Then a second server too: the first answer wins, the other call is cancelled.
  CancelToken hedge_cancel, primary_cancel;
  std::atomic<bool> hedge_done{false};
  Result<Reply> hedged = Status(Code::kInternal, "");
  const std::string method = contract.methods[idx].name;
  std::thread t([&] {
    Client* h = nullptr;
    {
      MutexLock hg(hedge_mu);
      if (hedge == nullptr) {
        ConnectOptions plain = options;  // the hedge itself neither retries nor hedges
        plain.retry = RetryPolicy{};
        plain.hedge_after_ms = 0;
        plain.breaker = BreakerPolicy{};
        auto c = Make(contract, name, address, o.deadline, plain, instance);  // another server if there is one
        if (c.ok()) {
          hedge = std::move(c).value();
        } else {
          hedged = c.status();
        }
      }
      h = hedge.get();
    }
    if (h != nullptr) {
      CallOptions ho = o;
      ho.cancel = &hedge_cancel;
      hedged = h->Invoke(method, args, ho);
    }
    hedge_done.store(true);
    if (hedged.ok()) primary_cancel.Cancel();
  });
  f = Await(*call, o, &primary_cancel);
  Result<Reply> out = Status(Code::kInternal, "");
  if (f.ok()) {
    out = Finish(*call, *f, o.hold);
    hedge_cancel.Cancel();
    t.join();
    return out;
  }
  // The primary ended without its answer: the hedge won (it cancelled the primary), the caller
  // cancelled (so is the hedge), or the primary failed (the hedge may still answer).
  const bool caller_cancelled = o.cancel != nullptr && o.cancel->cancelled();
  const bool hedge_won = primary_cancel.cancelled() && !caller_cancelled;
  if (caller_cancelled) hedge_cancel.Cancel();
  t.join();
  if (!hedge_won) Check(f.status());
  if (hedge_won || (!caller_cancelled && hedged.ok())) return hedged;
  return Explain(f.status(), idx);
}

Status Client::Impl::Breaker::Admit() {
  MutexLock g(mu);
  if (policy.failures == 0 || failures < policy.failures) return Status::Ok();
  const int64_t now = MonotonicNs();
  if (now < open_until || trial) {
    return Status(Code::kUnavailable, "circuit open: " + std::to_string(failures) + " calls failed in a row; the next try in " +
                                          std::to_string(std::max<int64_t>(0, (open_until - now) / 1'000'000)) + " ms");
  }
  trial = true;  // half open: this call decides
  return Status::Ok();
}

void Client::Impl::Breaker::Record(const Status& s, bool dial_failed) {
  if (policy.failures == 0) return;
  MutexLock g(mu);
  const Code c = s.code();
  const bool failed = !s.ok() && (dial_failed || Retryable(c) || c == Code::kTimeout);
  if (!failed) {  // a success, or an error of the call itself: the server is there
    failures = 0;
    trial = false;
    return;
  }
  ++failures;
  if (trial || failures >= policy.failures) {
    open_until = MonotonicNs() + policy.open_ms * 1'000'000;
    trial = false;
  }
}

Result<Reply> Client::Invoke(std::string_view method, const std::vector<ByteView>& args, const CallOptions& options) {
  Impl& m = *impl_;
  auto idx = m.Method(method, false);
  if (!idx.ok()) return idx.status();
  if (m.local != nullptr) return m.CallLocal(*idx, args, options);  // calls run side by side, ordered by the scheduler
  const bool read = m.contract.methods[*idx].access == Access::kRead;
  const int attempts = read ? m.options.retry.attempts : 1;
  int64_t backoff_ms = m.options.retry.backoff_ms;
  for (int a = 1;; ++a) {
    WEFT_RETURN_IF_ERROR(m.breaker.Admit());
    bool dial_failed = false;
    Result<Reply> r = read && m.options.hedge_after_ms > 0 ? m.Hedged(*idx, args, options, &dial_failed)
                                                            : m.Once(*idx, args, options, &dial_failed);
    m.breaker.Record(r.status(), dial_failed);
    if (r.ok() || a >= attempts || !Retryable(r.status().code())) return r;
    // Wait a random part of the backoff (full jitter), within the deadline, awake to cancellation.
    static thread_local std::minstd_rand rng(static_cast<uint32_t>(MonotonicNs() ^ ::getpid()));
    const int64_t wait_ns = backoff_ms <= 0 ? 0 : static_cast<int64_t>(rng() % static_cast<uint64_t>(backoff_ms * 1'000'000 + 1));
    if (!options.deadline.is_never() && options.deadline.RemainingNs() <= wait_ns) return r;
    const int64_t until = MonotonicNs() + wait_ns;
    while (MonotonicNs() < until) {
      if (options.cancel != nullptr && options.cancel->cancelled()) return Status(Code::kCancelled, "the call was cancelled");
      std::this_thread::sleep_for(std::chrono::nanoseconds(std::min<int64_t>(until - MonotonicNs(), 1'000'000)));
    }
    backoff_ms = std::min(m.options.retry.max_backoff_ms, backoff_ms * 2);
  }
}

Result<std::string> Client::Call(std::string_view method, const std::vector<ByteView>& args, Deadline deadline) {
  CallOptions o;
  o.deadline = deadline;
  Impl& m = *impl_;
  if (m.local != nullptr) {  // the handler's string itself, without a Reply around it
    const int idx = m.contract.Find(method);
    if (idx < 0 || m.contract.methods[idx].stream) return m.Method(method, false).status();
    InprocCall ctx(m.local->blocks.get(), nullptr);
    Result<std::string> r = m.RunLocal(idx, args, o, ctx);
    if (r.ok() && ctx.held_ != nullptr) return std::string(reinterpret_cast<const char*>(ctx.view_.data()), ctx.view_.size());
    return r;
  }
  auto r = Invoke(method, args, o);
  if (!r.ok()) return r.status();
  if (r->buffer != nullptr) {  // received by value into a buffer of its own: the one copy
    const ByteView b = r->buffer->bytes();
    return std::string(reinterpret_cast<const char*>(b.data()), b.size());
  }
  return std::move(r->inline_bytes);
}

Result<std::shared_ptr<Held>> Client::Loan(size_t n) {
  if (impl_->closed) return Status(Code::kClosed, "client is closed");
  if (!impl_->blocks) return Status(Code::kPermissionDenied, "this client does not map the server's pool");
  return impl_->blocks->Loan(n);
}

HoldStats Client::hold_stats() const { return impl_->blocks ? impl_->blocks->stats() : HoldStats{}; }

bool Client::shares_pool() const { return impl_->blocks != nullptr; }

Status Client::Close() {
  {
    MutexLock hg(impl_->hedge_mu);
    if (impl_->hedge != nullptr) impl_->hedge->Close().IgnoreError();
  }
  MutexLock g(impl_->mu);
  impl_->closed = true;
  impl_->conn.reset();
  impl_->arg_holds.clear();
  impl_->blocks.reset();  // the pool stays mapped while holds handed out are alive
  impl_->local.reset();
  return Status::Ok();
}

// ---- streams --------------------------------------------------------------------------------

struct Stream::Impl {
  Client::Impl* client = nullptr;
  CallOptions options;
  int method = 0;  // its index in the contract
  bool done = false;
  // over a connection
  uint64_t call = 0;
  uint32_t consumed = 0;  // chunks taken since the last credit
  // inproc://: the handler runs on a thread of its own, under the same credit as over ipc://.
  std::thread worker;
  Mutex mu;
  CondVar cv;
  std::deque<std::string> chunks WEFT_GUARDED_BY(mu);
  int64_t credits WEFT_GUARDED_BY(mu) = kInitialCredit;
  bool finished WEFT_GUARDED_BY(mu) = false;
  Status final WEFT_GUARDED_BY(mu);
  CancelToken stop;

  void End() {
    if (done) return;
    done = true;
    if (worker.joinable()) {
      stop.Cancel();
      {
        // Under the lock: the worker checks the token and sleeps under it, so the wake cannot
        // fall between its check and its sleep.
        MutexLock g(mu);
        cv.NotifyAll();
      }
      worker.join();
      return;
    }
    MutexLock g(client->mu);
    client->stream_open = false;
  }
};

Stream::Stream(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Stream::~Stream() { Cancel(); }

void Stream::Cancel() {
  Impl& s = *impl_;
  if (s.done) return;
  if (!s.worker.joinable()) {
    MutexLock g(s.client->mu);
    if (s.client->conn != nullptr) {
      SendControl(*s.client->conn, FrameType::kCancel, s.call, 0, Deadline::AfterMs(1000)).IgnoreError();
    }
  }
  s.End();
}

Result<std::optional<Reply>> Stream::Next(Deadline deadline) {
  Impl& s = *impl_;
  if (s.done) return std::optional<Reply>();
  CallOptions o = s.options;
  if (deadline.at_ns() < o.deadline.at_ns()) o.deadline = deadline;
  if (s.worker.joinable()) {  // in-process
    MutexLock lk(s.mu);
    while (s.chunks.empty() && !s.finished) {
      if (o.cancel != nullptr && o.cancel->cancelled()) {
        lk.Unlock();
        Cancel();
        return Status(Code::kCancelled, "the stream was cancelled");
      }
      if (o.deadline.Expired()) return Status(Code::kTimeout, "no chunk before the deadline");
      s.cv.WaitForNs(lk, 1'000'000);
    }
    if (!s.chunks.empty()) {
      Reply r;
      r.inline_bytes = std::move(s.chunks.front());
      s.chunks.pop_front();
      if (++s.consumed >= kCreditBatch) {
        s.credits += s.consumed;
        s.consumed = 0;
        s.cv.NotifyAll();
      }
      return std::optional<Reply>(std::move(r));
    }
    Status final = s.final;
    lk.Unlock();
    s.End();
    if (!final.ok()) return final;
    return std::optional<Reply>();
  }
  Client::Impl& m = *s.client;
  Result<std::optional<Reply>> out = std::optional<Reply>();
  {
    MutexLock g(m.mu);
    if (m.conn == nullptr) {
      s.done = true;
      m.stream_open = false;
      return Status(m.closed ? Code::kClosed : Code::kUnavailable, "the stream's connection is gone");
    }
    auto f = m.Await(s.call, o);
    if (!f.ok()) {
      const Code c = f.status().code();
      if (c == Code::kCancelled || Broken(c)) {
        s.done = true;
        m.stream_open = false;
      }
      m.Check(f.status());
      return m.Explain(f.status(), s.method);
    }
    if (f->type() == FrameType::kChunk) {
      auto r = m.ToReply(*f, o.hold);
      m.conn->Release();
      if (!r.ok()) return r.status();
      if (++s.consumed >= kCreditBatch) {
        Status c = SendControl(*m.conn, FrameType::kCredit, s.call, s.consumed, o.deadline);
        if (!c.ok()) {
          m.Check(c);
          return c;
        }
        s.consumed = 0;
      }
      return std::optional<Reply>(*std::move(r));
    }
    if (f->type() == FrameType::kEnd) {
      out = std::optional<Reply>();
    } else if (f->type() == FrameType::kError) {
      out = internal::DecodeError(f->payload);
    } else {
      out = Corrupt("unexpected frame in a stream");
    }
    m.arg_holds.erase(s.call);
    m.conn->Release();
    m.stream_open = false;
  }
  s.done = true;
  return out;
}

Result<std::unique_ptr<Stream>> Client::OpenStream(std::string_view method, const std::vector<ByteView>& args,
                                                   const CallOptions& options) {
  Impl& m = *impl_;
  auto idx = m.Method(method, true);
  if (!idx.ok()) return idx.status();
  auto s = std::make_unique<Stream::Impl>();
  s->client = &m;
  s->options = options;
  s->method = *idx;
  if (m.local != nullptr) {
    const MethodSpec& ms = m.contract.methods[*idx];
    if (args.size() != ms.params.size()) return InvalidArgument("method '" + ms.name + "' takes " + std::to_string(ms.params.size()) + " arguments");
    // The handler's arguments are copied: it runs on after this call returns.
    auto copies = std::make_shared<std::vector<std::string>>();
    for (ByteView a : args) copies->emplace_back(reinterpret_cast<const char*>(a.data()), a.size());
    Stream::Impl* raw = s.get();
    std::shared_ptr<Hosted> hosted = m.local;
    std::shared_ptr<Blocks> blocks = m.blocks;
    const int index = static_cast<int>(m.methods[*idx]);
    s->worker = std::thread([raw, hosted, blocks, copies, index, access = ms.access] {
      std::vector<ByteView> views;
      for (const std::string& c : *copies) views.push_back(AsBytes(c));
      InprocCall ctx(blocks.get(), &raw->stop);
      ctx.sink_ = [raw](ByteView chunk) -> Status {
        MutexLock lk(raw->mu);
        while (raw->credits <= 0 && !raw->stop.cancelled()) raw->cv.Wait(lk);
        if (raw->stop.cancelled()) return Status(Code::kCancelled, "the client cancelled the stream");
        --raw->credits;
        raw->chunks.emplace_back(reinterpret_cast<const char*>(chunk.data()), chunk.size());
        raw->cv.NotifyAll();
        return Status::Ok();
      };
      CallArgs a;
      a.method = index;
      a.args = views;
      a.deadline = raw->options.deadline;
      a.context = &ctx;
      const std::function<bool()> cancelled = [raw] { return raw->stop.cancelled(); };
      Status final;
      if (!hosted->scheduler.Enter(access, a.deadline, &cancelled)) {
        final = Status(Code::kTimeout, "resource busy past the call's deadline");
      } else if (hosted->closed.load(std::memory_order_relaxed)) {
        hosted->scheduler.Leave(access);
        final = Status(Code::kClosed, "the resource's server shut down");
      } else {
        Result<std::string> r = hosted->handlers[index](a);
        hosted->scheduler.Leave(access);
        if (!r.ok()) final = r.status();
      }
      MutexLock g(raw->mu);
      raw->finished = true;
      raw->final = final;
      raw->cv.NotifyAll();
    });
    return std::unique_ptr<Stream>(new Stream(std::move(s)));
  }
  MutexLock g(m.mu);
  auto call = m.Begin(*idx, args, options);
  if (!call.ok()) return call.status();
  s->call = *call;
  m.stream_open = true;
  return std::unique_ptr<Stream>(new Stream(std::move(s)));
}

}  // namespace weft::rpc
