#include "weft/net/nats_tunnel.h"

#include <nats/nats.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <deque>
#include <list>
#include <thread>
#include <vector>

#include "weft/core/mutex.h"

namespace weft::net {

namespace {

// A tunnel message: its kind, a little-endian u64 (data: the offset of its first byte in the
// direction's stream; ack: the bytes received so far), then data bytes.
enum Kind : uint8_t { kData = 'D', kAck = 'A', kClose = 'C', kPing = 'P' };
constexpr size_t kHeader = 9;
constexpr std::string_view kOpen = "weft-tunnel 1 ";  // + the opener's subject
constexpr int kSliceMs = 100;                          // threads look at their stop flags this often

void PutHeader(char* p, Kind k, uint64_t v) {
  p[0] = static_cast<char>(k);
  std::memcpy(p + 1, &v, 8);  // little-endian hosts only (as the rest of Weft's formats)
}

std::string Inbox() {
  natsInbox* inbox = nullptr;
  if (natsInbox_Create(&inbox) != NATS_OK) return {};
  std::string s(inbox);
  natsInbox_Destroy(inbox);
  return s;
}

}  // namespace

bool ValidTunnelSubject(std::string_view s) {
  if (s.empty() || s.size() > 255 || s.front() == '.' || s.back() == '.') return false;
  char prev = 0;
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                    c == '-' || c == '.';
    if (!ok || (c == '.' && prev == '.')) return false;
    prev = c;
  }
  return true;
}

// One tunnel end: the bridge between our end of the socketpair and the two subjects. NATS's
// thread only queues what arrives (it never waits on the socket, so an acknowledgement is never
// stuck behind data the local side has not read yet); the pump thread moves bytes both ways.
struct Tunnel {
  natsConnection* nc = nullptr;
  int fd = -1;      // the bridge's end of the socketpair
  int wake = -1;    // an eventfd: the message thread has queued something
  std::string out;  // where the peer receives
  natsSubscription* sub = nullptr;  // where we receive
  std::thread pump;
  Mutex mu;
  uint64_t sent WEFT_GUARDED_BY(mu) = 0;   // bytes published
  uint64_t acked WEFT_GUARDED_BY(mu) = 0;  // of those, acknowledged by the peer
  std::deque<natsMsg*> inbound WEFT_GUARDED_BY(mu);  // data messages not yet written to the socket
  size_t inbound_at WEFT_GUARDED_BY(mu) = 0;          // bytes of inbound.front() written already
  bool peer_closed WEFT_GUARDED_BY(mu) = false;       // the peer sends no more
  uint64_t queued = 0;                     // data bytes received (the message thread's)
  std::atomic<uint64_t> written{0};        // of those, written to the socket
  std::atomic<int64_t> heard_ns{0};        // when the peer was last heard from
  std::atomic<bool> done{false};           // the pump has ended (or must)
  std::atomic<bool> closed{false};         // the peer was told we send no more
  std::atomic<bool> unsubscribed{false};
  std::atomic<bool> complete{false};       // no message callback runs any more

  ~Tunnel() {
    for (natsMsg* m : inbound) natsMsg_Destroy(m);
    if (wake >= 0) ::close(wake);
  }
  Status Publish(Kind k, uint64_t v, char* data = nullptr, size_t n = 0) {
    char head[kHeader];
    natsStatus s;
    if (n == 0) {
      PutHeader(head, k, v);
      s = natsConnection_Publish(nc, out.c_str(), head, kHeader);
    } else {  // data: the header in place before the bytes (the pump leaves room for it)
      PutHeader(data - kHeader, k, v);
      s = natsConnection_Publish(nc, out.c_str(), data - kHeader, static_cast<int>(n + kHeader));
    }
    return s == NATS_OK ? Status::Ok() : NatsStatus(s, 0, "tunnel to " + out);
  }
  void Wake() {
    const uint64_t one = 1;
    (void)!::write(wake, &one, 8);
  }
  // Tells the peer, once, that no more bytes come from here.
  void Close() {
    if (!closed.exchange(true)) Publish(kClose, 0).IgnoreError();
  }
  // Ends the tunnel: the peer is told, the local side reads end of file, the pump stops.
  void Break() {
    Close();
    done.store(true);
    ::shutdown(fd, SHUT_RDWR);
    Wake();
  }
  // On NATS's thread: queues data (the message itself, no copy), takes acks. True if it kept m.
  bool OnMessage(natsMsg* m) {
    heard_ns.store(MonotonicNs(), std::memory_order_relaxed);
    const char* p = natsMsg_GetData(m);
    const size_t n = static_cast<size_t>(natsMsg_GetDataLength(m));
    if (n < kHeader || done.load()) return false;
    uint64_t v;
    std::memcpy(&v, p + 1, 8);
    switch (p[0]) {
      case kData: {
        // A gap (a message lost to a slow consumer or a reconnect), a forged offset, or more
        // than the window beyond what the socket took: the stream cannot be trusted from here,
        // so it ends rather than deliver the wrong bytes.
        if (v != queued || queued - written.load() > 2 * NatsTunnels::kWindow) {
          Break();
          return false;
        }
        queued += n - kHeader;
        {
          MutexLock g(mu);
          inbound.push_back(m);
        }
        Wake();
        return true;
      }
      case kAck: {
        MutexLock g(mu);
        if (v <= sent && v > acked) acked = v;  // (an ack of bytes never sent is ignored)
        break;
      }
      case kClose: {
        MutexLock g(mu);
        peer_closed = true;
        break;
      }
      default:  // kPing, and anything else: heard from
        return false;
    }
    Wake();
    return false;
  }
  // Writes queued data into the socket until it is full; acknowledges what it took. False if
  // the local side is gone.
  bool Deliver(uint64_t* acked_out) {
    for (;;) {
      natsMsg* m;
      size_t at;
      {
        MutexLock g(mu);
        if (inbound.empty()) return true;
        m = inbound.front();
        at = inbound_at;
      }
      const char* p = natsMsg_GetData(m) + kHeader + at;
      const size_t n = static_cast<size_t>(natsMsg_GetDataLength(m)) - kHeader - at;
      const ssize_t w = n == 0 ? 0 : ::send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (w < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
      written.fetch_add(static_cast<uint64_t>(w));
      {
        MutexLock g(mu);
        if (static_cast<size_t>(w) < n) {
          inbound_at += static_cast<size_t>(w);
          return true;  // full: poll says when there is room
        }
        inbound.pop_front();
        inbound_at = 0;
      }
      natsMsg_Destroy(m);
      if (written.load() - *acked_out >= NatsTunnels::kWindow / 4) {
        *acked_out = written.load();
        if (!Publish(kAck, *acked_out).ok()) return false;
      }
    }
  }
  void Pump() {
    std::vector<char> buf(kHeader + NatsTunnels::kChunk);
    int64_t last_sent = MonotonicNs();
    uint64_t acked_out = 0;
    bool local_eof = false, shut_wr = false;
    while (!done.load()) {
      size_t room;
      bool pending, peer_done;
      {
        MutexLock g(mu);
        room = static_cast<size_t>(std::min<uint64_t>(NatsTunnels::kChunk, NatsTunnels::kWindow - (sent - acked)));
        pending = !inbound.empty();
        peer_done = peer_closed && inbound.empty();
      }
      if (peer_done && !shut_wr) {
        ::shutdown(fd, SHUT_WR);  // the local side reads end of file after the last byte
        shut_wr = true;
      }
      if (peer_done && local_eof) break;  // both ways finished
      pollfd pf[2] = {{fd, static_cast<short>((room > 0 && !local_eof ? POLLIN : 0) | (pending ? POLLOUT : 0)), 0},
                      {wake, POLLIN, 0}};
      ::poll(pf, 2, kSliceMs);
      if (pf[1].revents & POLLIN) {
        uint64_t n;
        (void)!::read(wake, &n, 8);
      }
      if (done.load()) break;
      const int64_t now = MonotonicNs();
      if (now - heard_ns.load(std::memory_order_relaxed) > NatsTunnels::kSilentMs * 1'000'000) break;
      if (pending && !Deliver(&acked_out)) break;
      if (pf[0].revents & (POLLERR | POLLHUP) && !(pf[0].revents & POLLIN)) {
        if (!pending) break;  // the local side is gone
      }
      if (pf[0].revents & POLLIN) {
        const ssize_t r = ::recv(fd, buf.data() + kHeader, room, MSG_DONTWAIT);
        if (r == 0) {  // the local side sends no more (it may still read)
          local_eof = true;
          Close();
        } else if (r < 0 && errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK) {
          break;
        } else if (r > 0) {
          uint64_t at;
          {
            MutexLock g(mu);
            at = sent;
            sent += static_cast<uint64_t>(r);
          }
          if (!Publish(kData, at, buf.data() + kHeader, static_cast<size_t>(r)).ok()) break;
          last_sent = now;
          continue;
        }
      }
      if (now - last_sent >= NatsTunnels::kPingMs * 1'000'000) {
        if (!Publish(kPing, 0).ok()) break;
        last_sent = now;
      }
    }
    Break();
  }
};

namespace {

void OnTunnelMessage(natsConnection*, natsSubscription*, natsMsg* m, void* closure) {
  if (!static_cast<Tunnel*>(closure)->OnMessage(m)) natsMsg_Destroy(m);
}

void OnTunnelComplete(void* closure) { static_cast<Tunnel*>(closure)->complete.store(true); }

}  // namespace

struct NatsTunnels::Impl {
  std::shared_ptr<NatsConnection> nats;
  size_t most = kMostTunnels;
  Mutex mu;
  std::list<std::unique_ptr<Tunnel>> tunnels WEFT_GUARDED_BY(mu);
  natsSubscription* listener = nullptr;
  std::atomic<bool> listener_complete{false};
  std::function<void(int)> on_open;

  // Makes a tunnel end receiving on `in`: its socketpair, its subscription (not yet its pump).
  Result<Tunnel*> Make(const std::string& in, int* app_fd) WEFT_REQUIRES(mu) {
    Reap();
    if (tunnels.size() >= most) {
      return Status(Code::kResourceExhausted, std::to_string(tunnels.size()) + " tunnels are open already");
    }
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return ErrnoStatus(errno, "socketpair");
    auto t = std::make_unique<Tunnel>();
    t->nc = nats->raw();
    t->fd = sv[0];
    t->wake = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (t->wake < 0) {
      ::close(sv[0]);
      ::close(sv[1]);
      return ErrnoStatus(errno, "eventfd");
    }
    t->heard_ns.store(MonotonicNs());
    natsStatus s = natsConnection_Subscribe(&t->sub, t->nc, in.c_str(), OnTunnelMessage, t.get());
    if (s == NATS_OK) s = natsSubscription_SetOnCompleteCB(t->sub, OnTunnelComplete, t.get());
    // The window bounds what a well-behaved peer has in flight; more is a flood, dropped
    // (which breaks the tunnel at the gap).
    if (s == NATS_OK) s = natsSubscription_SetPendingLimits(t->sub, 1 << 16, static_cast<int>(4 * kWindow));
    if (s != NATS_OK) {
      if (t->sub != nullptr) natsSubscription_Destroy(t->sub);
      ::close(sv[0]);
      ::close(sv[1]);
      return NatsStatus(s, 0, "tunnel subscription");
    }
    *app_fd = sv[1];
    tunnels.push_back(std::move(t));
    return tunnels.back().get();
  }
  void Start(Tunnel* t) {
    t->pump = std::thread([t] { t->Pump(); });
  }
  // Frees tunnels whose pump ended and whose message callback can no longer run.
  void Reap() WEFT_REQUIRES(mu) {
    for (auto it = tunnels.begin(); it != tunnels.end();) {
      Tunnel& t = **it;
      if (t.done.load() && !t.unsubscribed.exchange(true)) natsSubscription_Unsubscribe(t.sub);
      if (!t.complete.load()) {
        ++it;
        continue;
      }
      if (t.pump.joinable()) t.pump.join();
      natsSubscription_Destroy(t.sub);
      ::close(t.fd);
      it = tunnels.erase(it);
    }
  }
  void Accept(natsMsg* m) {
    const std::string_view text(natsMsg_GetData(m), static_cast<size_t>(natsMsg_GetDataLength(m)));
    const char* reply = natsMsg_GetReply(m);
    if (reply == nullptr) return;
    auto answer = [&](const std::string& a) {
      natsConnection_Publish(nats->raw(), reply, a.data(), static_cast<int>(a.size()));
    };
    if (text.substr(0, kOpen.size()) != kOpen || !ValidTunnelSubject(text.substr(kOpen.size()))) {
      answer("refused: not a tunnel request");
      return;
    }
    int app_fd = -1;
    Tunnel* t;
    {
      MutexLock g(mu);
      const std::string in = Inbox();
      auto made = Make(in, &app_fd);
      if (!made.ok()) {
        answer("refused: " + made.status().message());
        return;
      }
      t = *made;
      t->out = std::string(text.substr(kOpen.size()));
      answer("ok " + in);
      Start(t);
    }
    on_open(app_fd);
  }
};

namespace {

void OnOpen(natsConnection*, natsSubscription*, natsMsg* m, void* closure) {
  static_cast<NatsTunnels::Impl*>(closure)->Accept(m);
  natsMsg_Destroy(m);
}

void OnListenerComplete(void* closure) { static_cast<NatsTunnels::Impl*>(closure)->listener_complete.store(true); }

}  // namespace

NatsTunnels::NatsTunnels(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

NatsTunnels::~NatsTunnels() {
  Impl& m = *impl_;
  if (m.listener != nullptr) {
    natsSubscription_Unsubscribe(m.listener);
    for (int i = 0; i < 100 && !m.listener_complete.load(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    natsSubscription_Destroy(m.listener);
  }
  {
    MutexLock g(m.mu);
    for (auto& t : m.tunnels) t->Break();
  }
  for (int i = 0; i < 500; ++i) {  // until every callback has returned (5 s at most)
    {
      MutexLock g(m.mu);
      m.Reap();
      if (m.tunnels.empty()) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  MutexLock g(m.mu);
  for (auto& t : m.tunnels) {  // a connection closed under us: its subscriptions are gone
    if (t->pump.joinable()) t->pump.join();
    ::close(t->fd);
  }
}

Result<std::unique_ptr<NatsTunnels>> NatsTunnels::Create(std::shared_ptr<NatsConnection> nats, size_t most) {
  if (nats == nullptr) return InvalidArgument("NatsTunnels: no connection");
  if (most == 0) return InvalidArgument("NatsTunnels: at least one tunnel");
  auto impl = std::make_unique<Impl>();
  impl->nats = std::move(nats);
  impl->most = most;
  return std::unique_ptr<NatsTunnels>(new NatsTunnels(std::move(impl)));
}

Status NatsTunnels::Listen(const std::string& subject, std::function<void(int fd)> on_open) {
  Impl& m = *impl_;
  if (!ValidTunnelSubject(subject)) return InvalidArgument("tunnel subject '" + subject + "' is not a plain subject");
  if (m.listener != nullptr) return Status(Code::kAlreadyExists, "this NatsTunnels listens already");
  m.on_open = std::move(on_open);
  natsStatus s = natsConnection_Subscribe(&m.listener, m.nats->raw(), subject.c_str(), OnOpen, &m);
  if (s == NATS_OK) s = natsSubscription_SetOnCompleteCB(m.listener, OnListenerComplete, &m);
  if (s == NATS_OK) s = natsConnection_Flush(m.nats->raw());  // the server knows of it before anyone resolves us
  if (s != NATS_OK) {
    if (m.listener != nullptr) natsSubscription_Destroy(m.listener);
    m.listener = nullptr;
    return NatsStatus(s, 0, "listening for tunnels on " + subject);
  }
  return Status::Ok();
}

Result<int> NatsTunnels::Dial(const std::string& subject, Deadline deadline) {
  Impl& m = *impl_;
  if (!ValidTunnelSubject(subject)) return InvalidArgument("tunnel subject '" + subject + "' is not a plain subject");
  const std::string in = Inbox();
  if (in.empty()) return Status(Code::kResourceExhausted, "no inbox for a tunnel");
  int app_fd = -1;
  Tunnel* t;
  {
    MutexLock g(m.mu);
    auto made = m.Make(in, &app_fd);
    if (!made.ok()) return made.status();
    t = *made;
  }
  const std::string ask = std::string(kOpen) + in;
  natsMsg* reply = nullptr;
  const int64_t ms = deadline.is_never() ? 10'000 : std::max<int64_t>(1, deadline.RemainingNs() / 1'000'000);
  const natsStatus s = natsConnection_Request(&reply, m.nats->raw(), subject.c_str(), ask.data(),
                                              static_cast<int>(ask.size()), ms);
  Status status;
  if (s == NATS_NO_RESPONDERS) {
    status = Status(Code::kUnavailable, "nobody listens for tunnels on " + subject);
  } else if (s == NATS_TIMEOUT) {
    status = Status(Code::kTimeout, "no answer to a tunnel request on " + subject + " before the deadline");
  } else if (s != NATS_OK) {
    status = NatsStatus(s, 0, "tunnel request on " + subject);
  } else {
    const std::string_view a(natsMsg_GetData(reply), static_cast<size_t>(natsMsg_GetDataLength(reply)));
    if (a.substr(0, 3) == "ok " && ValidTunnelSubject(a.substr(3))) {
      t->out = std::string(a.substr(3));
    } else {
      status = Status(Code::kUnavailable, "tunnel on " + subject + " " +
                                              std::string(a.substr(0, std::min<size_t>(a.size(), 200))));
    }
    natsMsg_Destroy(reply);
  }
  MutexLock g(m.mu);
  if (!status.ok()) {
    t->Break();
    ::close(app_fd);
    m.Reap();
    return status;
  }
  m.Start(t);
  return app_fd;
}

size_t NatsTunnels::open() const {
  MutexLock g(impl_->mu);
  impl_->Reap();
  return impl_->tunnels.size();
}

}  // namespace weft::net
