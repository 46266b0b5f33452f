// The server: listens at ipc://<id> (and tcp:// addresses), admits each connection before a
// thread is spent on it, runs its handshake, then serves its calls over a Conn: the same code
// for every transport (internal/conn.h).
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <atomic>
#include <list>
#include <system_error>
#include <thread>

#include "internal/hosted.h"
#include "internal/registry.h"
#include "weft/net/nats_tunnel.h"
#include "internal/transports.h"
#include "weft/core/mutex.h"
#include "weft/net/tls.h"

namespace weft::rpc {

using internal::Blocks;
using internal::Conn;
using internal::FrameOut;
using internal::FrameType;
using internal::Hosted;
using internal::Value;

namespace {

constexpr int64_t kPollSliceMs = 100;  // server loops look at their stop flag this often

// One accepted connection's thread; reaped (joined) by the acceptor once `done`.
struct Connection {
  std::thread thread;
  std::atomic<bool> done{false};
  bool handshaking = true;  // guarded by Server::Impl::mu (the analysis cannot name it here)
  std::string who;          // "uid:1000" (ipc) or the peer's host (tcp), for the per-peer caps
};

struct TcpListener {
  int fd = -1;
  std::string address;  // tcp://host:port, the port bound
};

}  // namespace

struct Server::Impl {
  std::string id;
  ServerOptions options;
  int listen_fd = -1;
  std::vector<TcpListener> tcp;
  std::unique_ptr<net::TlsContext> tls;  // null: plaintext tcp (or no tcp)
  std::shared_ptr<Blocks> blocks;  // the server's pool: large values
  std::atomic<bool> stopping{false};
  Mutex mu;
  std::map<std::string, std::shared_ptr<Hosted>> resources WEFT_GUARDED_BY(mu);
  std::thread acceptor;
  std::list<Connection> connections WEFT_GUARDED_BY(mu);
  bool started WEFT_GUARDED_BY(mu) = false;
  bool shut WEFT_GUARDED_BY(mu) = false;
  // Discovery: the registry announced at, this run's instance id, the tunnels served through
  // its NATS servers, and the thread refreshing the routes.
  std::unique_ptr<internal::Registry> registry;
  std::string instance;
  std::unique_ptr<net::NatsTunnels> tunnels;
  std::thread announcer;
  Mutex announce_mu;
  CondVar announce_cv;

  std::string RelaySubject() const { return "weft.relay." + instance; }
  internal::Route RouteOf(const Hosted& h) const {
    internal::Route r;
    r.name = h.name;
    r.contract = h.resource.contract.Hash();
    r.instance = instance;
    if (tls != nullptr) r.identity = tls->identity();
    if (!options.advertise.empty()) {
      r.addresses = options.advertise;
    } else {
      for (const TcpListener& l : tcp) {
        for (const net::HostPort& hp : net::ReachableAddresses(*net::ParseHostPort(std::string_view(l.address).substr(6)))) {
          if (r.addresses.size() < internal::kMaxRouteAddresses) r.addresses.push_back("tcp://" + hp.ToString());
        }
      }
    }
    if (tunnels != nullptr) r.relay = RelaySubject();
    return r;
  }
  // Announces every resource (again).
  Status Announce() {
    std::vector<std::shared_ptr<Hosted>> all;
    {
      MutexLock g(mu);
      for (auto& [name, h] : resources) all.push_back(h);
    }
    Status first;
    for (const auto& h : all) {
      Status s = registry->Put(RouteOf(*h));
      if (first.ok()) first = s;
    }
    return first;
  }
  // Refreshes the routes every third of their lifetime until the server stops.
  void Announcing() {
    const int64_t every_ns = registry->ttl_ms() * 1'000'000 / 3;
    for (;;) {
      {
        MutexLock g(announce_mu);
        const int64_t until = MonotonicNs() + every_ns;
        while (!stopping.load() && MonotonicNs() < until) announce_cv.WaitForNs(g, until - MonotonicNs());
      }
      if (stopping.load()) return;
      Announce().IgnoreError();  // NATS away: nats.c reconnects, the next round tells again
    }
  }
  // A tunnel's socket, accepted as a tcp connection is.
  void AcceptRelay(int fd);

  std::shared_ptr<Hosted> Find(const std::string& name) {
    MutexLock g(mu);
    auto it = resources.find(name);
    return it == resources.end() ? nullptr : it->second;
  }

  void Accept();
  // Joins connection threads that have finished. mu held.
  void Reap() WEFT_REQUIRES(mu);
  // The verdict on a new connection before any thread is spent on it. mu held.
  Status Admit(const std::string& who, const std::string& what) const WEFT_REQUIRES(mu);
  void Spawn(const std::string& who, std::function<void(Connection*)> serve,
             const std::function<void(const Status&)>& refuse) WEFT_REQUIRES(mu);
  void ServeIpc(int fd, Connection* conn, ucred cred);
  // `where`: the listener's address, for messages; `relayed`: fd is a tunnel's.
  void ServeTcp(int fd, Connection* conn, const std::string& where, bool relayed = false);
  // The resource a hello asks for, if its contract and wire versions fit.
  Result<std::shared_ptr<Hosted>> Resolve(const internal::Hello& hello, const std::string& where);
  void Handshaken(Connection* conn) {
    MutexLock g(mu);
    conn->handshaking = false;
  }
  // Serves the calls of one connection until it ends or the server stops.
  void Loop(Conn& conn, Hosted& h, const Caller& caller);
};

namespace {

// One call from a client over a Conn, served on its connection's thread.
class RemoteCall final : public CallContext {
 public:
  RemoteCall(Server::Impl& srv, Hosted& h, Conn& conn, const Caller& caller)
      : srv_(srv), h_(h), conn_(conn), caller_(caller) {}

  // Runs the call in frame `f` (the frame just read) and answers. Non-OK: drop the connection.
  Status Run(const internal::Frame& f);

  const Caller& caller() const override { return caller_; }

  bool Cancelled() override {
    if (!cancelled_ && gone_.ok()) Poll(Deadline::Now());
    return cancelled_;
  }

  Status Yield(ByteView chunk) override {
    if (!stream_) return InvalidArgument("Yield from a method that does not stream");
    while (credits_ <= 0) {
      if (cancelled_) return Status(Code::kCancelled, "the client cancelled the stream");
      if (!gone_.ok()) return gone_;
      if (srv_.stopping.load()) return Status(Code::kClosed, "the server is shutting down");
      Poll(Deadline::AfterMs(kPollSliceMs));
    }
    if (cancelled_) return Status(Code::kCancelled, "the client cancelled the stream");
    auto v = conn_.Lend(chunk, srv_.blocks->Find(chunk.data(), chunk.size()), nullptr);
    if (!v.ok()) return v.status();
    --credits_;
    return conn_.Send(Out(FrameType::kChunk), {*v}, Deadline::AfterMs(10'000));
  }

  Result<std::shared_ptr<Held>> Loan(size_t n) override { return srv_.blocks->Loan(n); }

  Status ReturnHeld(ByteView bytes) override {
    auto held = srv_.blocks->Find(bytes.data(), bytes.size());
    if (held == nullptr) return NotFound("ReturnHeld: the bytes do not start a block held by this server");
    result_hold_ = std::move(held);
    result_view_ = bytes;
    return Status::Ok();
  }

  std::shared_ptr<Held> ArgumentHold(size_t i) override { return i < arg_holds_.size() ? arg_holds_[i] : nullptr; }

 private:
  FrameOut Out(FrameType t) const {
    FrameOut o;
    o.type = t;
    o.resource = h_.id;
    o.method = method_;
    o.call = call_;
    return o;
  }

  // Takes the frames that arrived for this call (cancel, credit) until `d`, stopping at a frame
  // that is not for it (the next call: put back for the connection loop).
  void Poll(Deadline d) {
    for (;;) {
      auto f = conn_.Read(d);
      if (!f.ok()) {
        const Code c = f.status().code();
        if (c != Code::kTimeout && c != Code::kWouldBlock) gone_ = f.status();
        return;
      }
      if (f->type() == FrameType::kCall) {
        conn_.Unread();
        return;
      }
      if (f->header.call_id == call_) {
        if (f->type() == FrameType::kCancel) cancelled_ = true;
        if (f->type() == FrameType::kCredit && f->payload.size() >= 4) {
          uint32_t n = 0;
          std::memcpy(&n, f->payload.data(), 4);
          credits_ += n;
        }
      }
      if (record_held_) {
        ++records_;  // released with the call's own frame, which is older
      } else {
        conn_.Release();
      }
      if (cancelled_) return;
      d = Deadline::Now();  // after one frame, take only what is already there
    }
  }

  Result<Value> Execute(const internal::Frame& f, std::string* storage);

  Server::Impl& srv_;
  Hosted& h_;
  Conn& conn_;
  const Caller& caller_;
  uint64_t call_ = 0;
  uint32_t method_ = 0;
  bool stream_ = false;
  bool cancelled_ = false;
  bool record_held_ = true;  // the call's frame (its inline arguments) is still borrowed
  size_t records_ = 1;       // frames to release when the call ends
  int64_t credits_ = internal::kInitialCredit;
  Status gone_;  // the client died or closed
  std::vector<std::shared_ptr<Held>> arg_holds_;
  std::shared_ptr<Held> result_hold_;
  ByteView result_view_;
};

Result<Value> RemoteCall::Execute(const internal::Frame& f, std::string* storage) {
  const Contract& c = h_.resource.contract;
  if (f.header.method >= c.methods.size()) return InvalidArgument("no method " + std::to_string(f.header.method));
  const MethodSpec& m = c.methods[f.header.method];
  stream_ = m.stream;
  auto values = conn_.Values(f);
  if (!values.ok()) return values.status();
  if (values->size() != m.params.size()) {
    return InvalidArgument("method '" + m.name + "' takes " + std::to_string(m.params.size()) + " arguments, got " +
                           std::to_string(values->size()));
  }
  if (srv_.options.authorize) {
    WEFT_RETURN_IF_ERROR(srv_.options.authorize(caller_, h_.name, m.name));
  }
  std::vector<ByteView> args(values->size());
  std::vector<std::string> copies;  // a stream's arguments, so its frame can go at once
  if (stream_) copies.reserve(values->size());
  for (size_t i = 0; i < values->size(); ++i) {
    std::shared_ptr<Held> hold;
    auto bytes = conn_.Take((*values)[i], &hold);
    if (!bytes.ok()) {
      Status st = bytes.status();
      return st.Annotate("argument " + std::to_string(i));
    }
    if (hold != nullptr) {
      if (arg_holds_.empty()) arg_holds_.resize(values->size());  // only calls with block arguments pay
      arg_holds_[i] = std::move(hold);
      args[i] = *bytes;
    } else if (stream_) {
      copies.emplace_back(reinterpret_cast<const char*>(bytes->data()), bytes->size());
      args[i] = AsBytes(copies.back());
    } else {
      args[i] = *bytes;
    }
  }
  if (stream_) {  // a stream reads credit frames as it goes: its frame must not hold them up
    conn_.Release(records_);
    records_ = 0;
    record_held_ = false;
  }
  CallArgs a;
  a.method = static_cast<int>(f.header.method);
  a.args = args;
  a.deadline = internal::DeadlineFromWire(f.header.deadline_ns);
  a.context = this;
  const std::function<bool()> cancelled = [this] { return Cancelled(); };
  if (!h_.scheduler.Enter(m.access, a.deadline, &cancelled)) {
    if (cancelled_) return Status(Code::kCancelled, "cancelled while waiting for the resource");
    return Status(Code::kTimeout, "resource busy past the call's deadline");
  }
  Result<std::string> r = h_.handlers[f.header.method](a);
  h_.scheduler.Leave(m.access);
  arg_holds_.clear();  // a handler that kept one keeps its block
  if (cancelled_) return Status(Code::kCancelled, "the client cancelled the call");
  if (!r.ok()) return r.status();
  if (stream_) return Value{};
  ByteView bytes = result_hold_ ? result_view_ : AsBytes(*r);
  auto out = conn_.Lend(bytes, result_hold_, nullptr);
  if (out.ok() && !out->in_block) {
    // Bytes sent from here: keep them alive until the reply is written.
    if (result_hold_) {
      if (!out->follows) {
        storage->assign(reinterpret_cast<const char*>(bytes.data()), bytes.size());
        out->bytes = AsBytes(*storage);
      }  // following bytes are sent from the held block itself, which result_hold_ keeps
    } else {
      *storage = std::move(r).value();
      out->bytes = AsBytes(*storage);
    }
  }
  return out;
}

Status RemoteCall::Run(const internal::Frame& f) {
  call_ = f.header.call_id;
  method_ = f.header.method;
  std::string storage;
  Result<Value> out = Execute(f, &storage);
  if (records_ > 0) conn_.Release(records_);  // the arguments were read in place until here
  if (!gone_.ok()) {
    result_hold_.reset();
    if (out.ok() && out->in_block) conn_.PeerGone();
    return gone_;
  }
  const Deadline send_by = Deadline::AfterMs(10'000);
  Status sent;
  if (!out.ok()) {
    const std::string payload = internal::EncodeError(out.status());
    sent = conn_.SendPayload(Out(FrameType::kError), AsBytes(payload), send_by);
  } else if (stream_) {
    sent = conn_.Send(Out(FrameType::kEnd), {}, send_by);
  } else {
    sent = conn_.Send(Out(FrameType::kReply), {*out}, send_by);
  }
  result_hold_.reset();
  return sent;
}

}  // namespace

void Server::Impl::Reap() {
  for (auto it = connections.begin(); it != connections.end();) {
    if (it->done.load(std::memory_order_acquire)) {
      it->thread.join();
      it = connections.erase(it);
    } else {
      ++it;
    }
  }
}

Status Server::Impl::Admit(const std::string& who, const std::string& what) const {
  size_t pending = 0, of_peer = 0, pending_of_peer = 0;
  for (const Connection& c : connections) {
    if (c.done.load(std::memory_order_relaxed)) continue;
    pending += c.handshaking ? 1 : 0;
    of_peer += c.who == who ? 1 : 0;
    pending_of_peer += c.who == who && c.handshaking ? 1 : 0;
  }
  if (connections.size() >= options.max_clients) {
    return Status(Code::kResourceExhausted, what + " serves " + std::to_string(options.max_clients) + " clients already");
  }
  if (pending >= options.max_pending) {
    return Status(Code::kResourceExhausted, what + " has " + std::to_string(pending) + " handshakes in progress");
  }
  // One peer may not take every handshake slot: others still get in while it stalls.
  if (pending_of_peer >= std::max<size_t>(1, options.max_pending / 4)) {
    return Status(Code::kResourceExhausted, who + " has " + std::to_string(pending_of_peer) +
                                                " handshakes in progress with " + what);
  }
  if (of_peer >= options.max_clients_per_uid) {
    return Status(Code::kResourceExhausted, who + " has " + std::to_string(of_peer) + " connections to " + what + " already");
  }
  return Status::Ok();
}

void Server::Impl::Spawn(const std::string& who, std::function<void(Connection*)> serve,
                         const std::function<void(const Status&)>& refuse) {
  Connection& c = connections.emplace_back();
  c.who = who;
  try {
    c.thread = std::thread([serve = std::move(serve), conn = &c] { serve(conn); });
  } catch (const std::system_error&) {  // no thread to be had: refuse this one, keep serving
    connections.pop_back();
    refuse(Status(Code::kResourceExhausted, "could not start a thread for this client"));
  }
}

void Server::Impl::Accept() {
  // A refused ipc connection is answered at once but closed only once its hello has arrived
  // (or after a second): closing a socket with an unread message resets it, and the client
  // would read the reset instead of the reason.
  constexpr size_t kMostRefusing = 64;
  std::vector<pollfd> polled;
  std::vector<int64_t> close_at;  // for polled[first_refusing..]
  polled.push_back({listen_fd, POLLIN, 0});
  for (const TcpListener& l : tcp) polled.push_back({l.fd, POLLIN, 0});
  const size_t first_refusing = polled.size();
  close_at.assign(first_refusing, 0);
  auto refuse_ipc = [&](int fd, const Status& s) {
    internal::SendMessage(fd, internal::EncodeRefusal(s), {}).IgnoreError();
    if (polled.size() - first_refusing >= kMostRefusing) {
      ::close(fd);
      return;
    }
    polled.push_back({fd, POLLIN, 0});
    close_at.push_back(MonotonicNs() + 1'000'000'000);
  };
  while (!stopping.load()) {
    for (pollfd& p : polled) p.revents = 0;
    ::poll(polled.data(), polled.size(), kPollSliceMs);
    const int64_t now = MonotonicNs();
    for (size_t i = polled.size(); i-- > first_refusing;) {
      if (polled[i].revents == 0 && now < close_at[i]) continue;
      if (polled[i].revents & POLLIN) {  // take the hello off the queue, and any descriptors it brought
        std::vector<int> fds;
        (void)internal::RecvMessage(polled[i].fd, Deadline::Now(), &fds, 2);
        for (int f : fds) ::close(f);
      }
      ::close(polled[i].fd);
      polled.erase(polled.begin() + static_cast<std::ptrdiff_t>(i));
      close_at.erase(close_at.begin() + static_cast<std::ptrdiff_t>(i));
    }
    MutexLock g(mu);
    Reap();
    if (polled[0].revents & POLLIN) {
      const int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd >= 0) {
        ucred cred{};
        socklen_t len = sizeof(cred);
        if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
          refuse_ipc(fd, ErrnoStatus(errno, "SO_PEERCRED"));
        } else {
          const uint32_t uid = static_cast<uint32_t>(cred.uid);
          const bool allowed = uid == static_cast<uint32_t>(::geteuid()) ||
                               std::find(options.allow_uids.begin(), options.allow_uids.end(), uid) !=
                                   options.allow_uids.end();
          const std::string who = "uid " + std::to_string(uid);
          Status admitted = allowed ? Admit(who, "ipc://" + id)
                                    : Status(Code::kPermissionDenied, "uid " + std::to_string(uid) + " may not call ipc://" +
                                                                          id + " (only its own uid and ServerOptions::allow_uids)");
          if (!admitted.ok()) {
            refuse_ipc(fd, admitted);
          } else {
            Spawn(who, [this, fd, cred](Connection* c) { ServeIpc(fd, c, cred); },
                  [&](const Status& s) { refuse_ipc(fd, s); });
          }
        }
      }
    }
    for (size_t i = 0; i < tcp.size(); ++i) {
      if ((polled[1 + i].revents & POLLIN) == 0) continue;
      const int fd = ::accept4(tcp[i].fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      net::Tune(fd, net::KeepAlive{});  // no Nagle delay; a silent peer found dead by keepalive
      // Per-peer caps count by host: a client's port changes with every connection.
      std::string who = net::PeerAddress(fd);
      if (const size_t colon = who.rfind(':'); colon != std::string::npos) who.resize(colon);
      Status admitted = Admit(who, tcp[i].address);
      if (!admitted.ok()) {
        ::close(fd);  // before any byte: a flood costs a descriptor for an instant
        continue;
      }
      Spawn(who, [this, fd, where = tcp[i].address](Connection* c) { ServeTcp(fd, c, where); },
            [fd](const Status&) { ::close(fd); });
    }
  }
  for (size_t i = first_refusing; i < polled.size(); ++i) ::close(polled[i].fd);
}

Result<std::shared_ptr<Hosted>> Server::Impl::Resolve(const internal::Hello& hello, const std::string& where) {
  if (hello.wire_min > internal::kWireVersion || hello.wire_max < internal::kWireVersion) {
    return Status(Code::kVersionMismatch, "the client speaks rpc wire versions " + std::to_string(hello.wire_min) + " to " +
                                              std::to_string(hello.wire_max) + ", this server " +
                                              std::to_string(internal::kWireVersion));
  }
  std::shared_ptr<Hosted> h = Find(hello.resource);
  if (h == nullptr) return NotFound("no resource named '" + hello.resource + "' at " + where);
  auto client_contract = Contract::Parse(hello.contract);
  if (!client_contract.ok()) return client_contract.status();
  WEFT_RETURN_IF_ERROR(CheckCompatible(h->resource.contract, *client_contract));
  return h;
}

void Server::Impl::ServeIpc(int fd, Connection* conn, ucred cred) {
  std::unique_ptr<Conn> c;
  std::shared_ptr<Hosted> h;
  Status hs = [&]() -> Status {
    std::vector<int> fds;
    auto msg = internal::RecvMessage(fd, Deadline::AfterMs(options.handshake_timeout_ms), &fds, 2);
    if (!msg.ok()) return msg.status();
    struct Closer {
      std::vector<int>& fds;
      ~Closer() {
        for (int f : fds) ::close(f);
      }
    } closer{fds};
    auto hello = internal::ParseHello(*msg);
    if (!hello.ok()) return hello.status();
    auto conn_or = internal::AcceptIpc(*hello, fds, cred, blocks, options.max_held_bytes_per_client);
    if (!conn_or.ok()) return conn_or.status();
    auto found = Resolve(*hello, "ipc://" + id);
    if (!found.ok()) return found.status();
    c = std::move(conn_or).value();
    h = std::move(found).value();
    return Status::Ok();
  }();
  Handshaken(conn);
  if (!hs.ok()) {
    internal::SendMessage(fd, internal::EncodeRefusal(hs), {}).IgnoreError();
    ::close(fd);
    conn->done.store(true, std::memory_order_release);
    return;
  }
  Status sent = internal::SendMessage(fd, internal::EncodeAccept(h->id, h->resource.contract.Canonical()), {});
  ::close(fd);  // from here the channels carry everything, and tell us if the client dies
  if (sent.ok()) {
    Caller caller{"ipc", "uid:" + std::to_string(cred.uid), "pid " + std::to_string(cred.pid)};
    Loop(*c, *h, caller);
  }
  conn->done.store(true, std::memory_order_release);
}

void Server::Impl::AcceptRelay(int fd) {
  MutexLock g(mu);
  if (stopping.load()) {
    ::close(fd);
    return;
  }
  Reap();
  const std::string where = "nats relay " + RelaySubject();
  // Every tunnel comes from the NATS servers: one peer for the caps (NATS does not say who
  // opened it; the TLS handshake inside does).
  Status admitted = Admit("nats relay", where);
  if (!admitted.ok()) {
    ::close(fd);
    return;
  }
  Spawn("nats relay", [this, fd, where](Connection* c) { ServeTcp(fd, c, where, true); }, [fd](const Status&) { ::close(fd); });
}

void Server::Impl::ServeTcp(int fd, Connection* conn, const std::string& where, bool relayed) {
  const Deadline hs_by = Deadline::AfterMs(options.handshake_timeout_ms);
  std::unique_ptr<net::Stream> stream;
  Status hs;
  if (tls != nullptr) {
    auto s = tls->Accept(fd, hs_by);  // owns fd from here, even on failure
    if (s.ok()) stream = std::move(s).value(); else hs = s.status();
  } else {
    stream = net::PlainStream(fd);
  }
  std::shared_ptr<Hosted> h;
  if (hs.ok()) {
    hs = [&]() -> Status {
      auto msg = internal::ReadHandshake(*stream, hs_by);
      if (!msg.ok()) return msg.status();
      auto hello = internal::ParseHello(*msg);
      if (!hello.ok()) return hello.status();
      if (hello->pool_slot != internal::kNoSlot) return InvalidArgument("handshake: a pool slot over tcp://");
      auto found = Resolve(*hello, where);
      if (!found.ok()) return found.status();
      h = std::move(found).value();
      return Status::Ok();
    }();
  }
  Handshaken(conn);
  if (stream == nullptr) {  // TLS refused the peer: it learns why from TLS's own alert
    conn->done.store(true, std::memory_order_release);
    return;
  }
  const std::string answer =
      hs.ok() ? internal::EncodeAccept(h->id, h->resource.contract.Canonical()) : internal::EncodeRefusal(hs);
  Status sent = internal::WriteHandshake(*stream, answer, hs_by);
  if (hs.ok() && sent.ok()) {
    Caller caller{relayed ? "nats" : "tcp", stream->peer_identity(), relayed ? where : stream->peer_address()};
    std::unique_ptr<Conn> c = internal::StreamConn(std::move(stream), options.max_value_bytes);
    Loop(*c, *h, caller);
  }
  conn->done.store(true, std::memory_order_release);
}

void Server::Impl::Loop(Conn& conn, Hosted& h, const Caller& caller) {
  while (!stopping.load()) {
    auto f = conn.Read(Deadline::AfterMs(kPollSliceMs));
    if (!f.ok()) {
      const Code code = f.status().code();
      if (code == Code::kTimeout || code == Code::kWouldBlock) continue;
      if (code == Code::kPeerDead || code == Code::kUnavailable) conn.PeerGone();
      break;  // gone, or garbage: a client that sends garbage loses its connection, and only it
    }
    if (f->type() != FrameType::kCall) {
      conn.Release();
      continue;  // cancel and credit frames of calls already answered
    }
    RemoteCall call(*this, h, conn, caller);
    Status s = call.Run(*f);
    if (!s.ok()) {
      if (s.code() == Code::kPeerDead || s.code() == Code::kUnavailable) conn.PeerGone();
      break;
    }
  }
}

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Server::~Server() { Shutdown(Deadline::AfterMs(10'000)).IgnoreError(); }

Result<std::unique_ptr<Server>> Server::Create(const std::string& id, const ServerOptions& options) {
  if (!internal::ValidServerId(id)) return InvalidArgument("server id '" + id + "': 1 to 64 letters, digits, - _ .");
  if (options.max_clients == 0 || options.max_pending == 0 || options.max_clients_per_uid == 0) {
    return InvalidArgument("server options: max_clients, max_pending and max_clients_per_uid must be at least 1");
  }
  auto impl = std::make_unique<Impl>();
  impl->id = id;
  impl->options = options;
  struct Cleanup {
    Impl* m;
    bool armed = true;
    ~Cleanup() {
      if (!armed) return;
      if (m->listen_fd >= 0) ::close(m->listen_fd);
      for (TcpListener& l : m->tcp) ::close(l.fd);
    }
  } cleanup{impl.get()};
  for (const std::string& a : options.listen) {
    if (a.rfind("tcp://", 0) != 0) return InvalidArgument("listen address '" + a + "': expected tcp://host:port");
    auto hp = net::ParseHostPort(std::string_view(a).substr(6));
    if (!hp.ok()) return hp.status();
    uint16_t port = 0;
    auto fd = net::Listen(*hp, 128, &port);
    if (!fd.ok()) return fd.status();
    impl->tcp.push_back({*fd, "tcp://" + net::HostPort{hp->host, port}.ToString()});
  }
  const bool relay = !options.registry.empty() && options.relay;
  for (const std::string& a : options.advertise) {
    if (a.rfind("tcp://", 0) != 0 || !net::ParseHostPort(std::string_view(a).substr(6)).ok()) {
      return InvalidArgument("advertised address '" + a + "': expected tcp://host:port");
    }
  }
  if ((!impl->tcp.empty() || relay) && !options.tcp.plaintext) {
    auto ctx = net::TlsContext::Create(internal::TlsConfig(options.tcp), true);
    if (!ctx.ok()) return ctx.status();
    impl->tls = std::move(ctx).value();
  }
  if (!options.registry.empty()) {
    if (impl->tcp.empty() && options.advertise.empty() && !relay) {
      return InvalidArgument("a registry with no tcp:// listener and no relay would announce no way in");
    }
    auto reg = internal::Registry::Open(options.registry, true, options.registry_ttl_ms);
    if (!reg.ok()) return reg.status();
    impl->registry = std::move(reg).value();
    impl->instance = internal::NewInstanceId();
    if (relay) {
      auto t = net::NatsTunnels::Create(impl->registry->nats());
      if (!t.ok()) return t.status();
      impl->tunnels = std::move(t).value();
    }
  }
  auto fd = internal::ListenIpc(id);
  if (!fd.ok()) return fd.status();
  impl->listen_fd = *fd;
  // A pool left by an earlier server of this id that died is reused (its holders recovered).
  auto pool = shm::Pool::OpenOrCreate(internal::PoolName(id), internal::RpcPoolOptions());
  if (!pool.ok()) {
    Status st = pool.status();
    return st.Annotate("server pool");
  }
  impl->blocks = Blocks::Make(std::move(pool).value());
  impl->blocks->RecoverDead();
  cleanup.armed = false;
  internal::PublishServer(id, impl.get());
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

Status Server::Register(const std::string& name, Resource resource) {
  if (name.empty() || name.size() > 128) return InvalidArgument("resource name must be 1 to 128 bytes");
  WEFT_RETURN_IF_ERROR(Validate(resource.contract));
  auto h = std::make_shared<Hosted>();
  for (const MethodSpec& m : resource.contract.methods) {
    auto it = resource.handlers.find(m.name);
    if (it == resource.handlers.end() || !it->second) return InvalidArgument("no handler for method '" + m.name + "'");
    h->handlers.push_back(it->second);
  }
  bool announce;
  {
    MutexLock g(impl_->mu);
    if (impl_->shut) return Status(Code::kClosed, "server ipc://" + impl_->id + " is shut down; register before Shutdown");
    if (impl_->resources.count(name) != 0) return Status(Code::kAlreadyExists, "resource '" + name + "' is registered");
    h->id = static_cast<uint32_t>(impl_->resources.size() + 1);
    h->name = name;
    h->resource = std::move(resource);
    h->blocks = impl_->blocks;
    impl_->resources[name] = h;
    announce = impl_->started && impl_->registry != nullptr;
  }
  return announce ? impl_->registry->Put(impl_->RouteOf(*h)) : Status::Ok();
}

Status Server::Start() {
  Impl& m = *impl_;
  {
    MutexLock g(m.mu);
    if (m.shut) return Status(Code::kClosed, "server ipc://" + m.id + " is shut down");
    if (m.started) return Status::Ok();
    if (m.tunnels != nullptr) {
      Impl* p = &m;
      WEFT_RETURN_IF_ERROR(m.tunnels->Listen(m.RelaySubject(), [p](int fd) { p->AcceptRelay(fd); }));
    }
    m.started = true;
    m.acceptor = std::thread([this] { impl_->Accept(); });
  }
  if (m.registry != nullptr) {
    WEFT_RETURN_IF_ERROR(m.Announce());
    m.announcer = std::thread([&m] { m.Announcing(); });
  }
  return Status::Ok();
}

Status Server::Shutdown(Deadline deadline) {
  Impl& m = *impl_;
  {
    MutexLock g(m.mu);  // Register reads it under the same lock
    if (m.shut) return Status::Ok();
    m.shut = true;
  }
  internal::UnpublishServer(m.id);
  m.stopping.store(true);
  if (m.acceptor.joinable()) m.acceptor.join();
  if (m.registry != nullptr) {
    {
      MutexLock g(m.announce_mu);
      m.announce_cv.NotifyAll();
    }
    if (m.announcer.joinable()) m.announcer.join();
    std::vector<std::shared_ptr<Hosted>> all;
    {
      MutexLock g(m.mu);
      for (auto& [name, h] : m.resources) all.push_back(h);
    }
    for (const auto& h : all) m.registry->Remove(m.RouteOf(*h)).IgnoreError();  // else they expire
    m.tunnels.reset();  // ends the tunnels: their connections end below
  }
  ::close(m.listen_fd);
  for (TcpListener& l : m.tcp) ::close(l.fd);
  // Connection threads finish the call they are in, then see the flag within a slice.
  std::list<Connection> conns;
  {
    MutexLock g(m.mu);
    conns.swap(m.connections);
  }
  for (Connection& c : conns) c.thread.join();
  std::map<std::string, std::shared_ptr<Hosted>> resources;  // Register refuses from now on
  {
    MutexLock g(m.mu);
    resources = m.resources;
  }
  for (auto& [name, h] : resources) {
    h->closed.store(true);
    // In-process calls that got in before the flag finish first.
    if (h->scheduler.Enter(Access::kWrite, deadline)) h->scheduler.Leave(Access::kWrite);
  }
  for (auto& [name, h] : resources) {
    if (h->resource.on_shutdown) h->resource.on_shutdown();
  }
  // The pool goes with its server (clients still attached, and holds still alive here, keep
  // their mappings).
  for (auto& [name, h] : resources) h->blocks.reset();
  m.blocks.reset();
  shm::Pool::Unlink(internal::PoolName(m.id)).IgnoreError();
  return Status::Ok();
}

std::string Server::address() const { return "ipc://" + impl_->id; }

std::vector<std::string> Server::addresses() const {
  std::vector<std::string> out{address()};
  for (const TcpListener& l : impl_->tcp) out.push_back(l.address);
  return out;
}

Result<std::shared_ptr<Held>> Server::Loan(size_t n) {
  if (!impl_->blocks) return Status(Code::kClosed, "the server is shut down");
  return impl_->blocks->Loan(n);
}

HoldStats Server::hold_stats() const { return impl_->blocks ? impl_->blocks->stats() : HoldStats{}; }

namespace internal {
namespace {

Mutex g_servers_mu;
std::map<std::string, Server::Impl*>& Servers() WEFT_REQUIRES(g_servers_mu) {
  static auto* servers = new std::map<std::string, Server::Impl*>;
  return *servers;
}

}  // namespace

void PublishServer(const std::string& id, Server::Impl* server) {
  MutexLock g(g_servers_mu);
  Servers()[id] = server;
}

void UnpublishServer(const std::string& id) {
  MutexLock g(g_servers_mu);
  Servers().erase(id);
}

Result<std::shared_ptr<Hosted>> FindInproc(const std::string& id, const std::string& name) {
  MutexLock g(g_servers_mu);
  auto it = Servers().find(id);
  if (it == Servers().end()) return NotFound("no server inproc://" + id + " in this process");
  std::shared_ptr<Hosted> h = it->second->Find(name);
  if (h == nullptr) return NotFound("no resource named '" + name + "' at inproc://" + id);
  return h;
}

}  // namespace internal

}  // namespace weft::rpc
