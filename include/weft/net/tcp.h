// TCP connections for what crosses hosts: addresses ("host:port", "[v6]:port"), a listening
// socket, a dial bounded by a deadline, keepalive that finds a dead peer, and a byte stream
// that every read and write of which waits at most until a deadline. A Stream is plain TCP
// (PlainStream) or TLS 1.3 over it (weft/net/tls.h), the same to its user.
//
//   auto addr = weft::net::ParseHostPort("127.0.0.1:7000").value();
//   int fd = weft::net::Dial(addr, Deadline::AfterMs(1000)).value();
//   auto s = weft::net::PlainStream(fd);
//   s->Write({{AsBytes(std::string_view("ping"))}}, Deadline::AfterMs(1000));
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "weft/core/bytes.h"
#include "weft/core/clock.h"
#include "weft/core/status.h"

namespace weft::net {

struct HostPort {
  std::string host;  // a name, an IPv4 address, or an IPv6 address (without brackets)
  uint16_t port = 0;
  std::string ToString() const;  // "[::1]:7000" for IPv6
};
// "host:port", "[v6]:port"; the port 0 to 65535 (0: any, for a listener). kInvalidArgument else.
Result<HostPort> ParseHostPort(std::string_view s);

// The addresses others may reach a listener at: `at` itself, or for a wildcard host ("0.0.0.0",
// "::", "") the addresses of this host's interfaces that are up (IPv4; IPv6 too for "::"),
// loopback only if there is nothing else.
std::vector<HostPort> ReachableAddresses(const HostPort& at);

// How fast a silent peer is declared dead: TCP keepalive probes after `idle_ms` of silence,
// every `interval_ms`, `count` of them; and TCP_USER_TIMEOUT for data not acknowledged.
struct KeepAlive {
  int idle_ms = 5000;
  int interval_ms = 1000;
  int count = 5;
};

// A listening socket (SO_REUSEADDR, close-on-exec, non-blocking accept). *bound: the port it got.
Result<int> Listen(const HostPort& at, int backlog, uint16_t* bound);
// Connects within `deadline`: kUnavailable if refused or unreachable, kTimeout if the deadline
// passes. The socket has TCP_NODELAY and `keepalive`; close-on-exec.
Result<int> Dial(const HostPort& to, Deadline deadline, const KeepAlive& keepalive = {});
// TCP_NODELAY and keepalive on an accepted socket.
void Tune(int fd, const KeepAlive& keepalive);
// The peer's address of a connected socket ("10.0.0.2:51234"), or "?" if unknown.
std::string PeerAddress(int fd);

// A connected byte stream. One thread reads and writes at a time; Shutdown may come from any.
class Stream {
 public:
  virtual ~Stream() = default;
  // Reads 1 to n bytes: kTimeout when the deadline passes first, kUnavailable once the peer
  // closed or the connection broke (reset, keepalive gave up).
  virtual Result<size_t> ReadSome(void* p, size_t n, Deadline deadline) = 0;
  // Writes every piece, in order, before the deadline (kTimeout otherwise: the stream is then
  // unusable, part of it may have gone).
  virtual Status Write(std::span<const ByteView> pieces, Deadline deadline) = 0;
  // Wakes a reader or writer blocked in another thread; both fail from then on.
  virtual void Shutdown() = 0;
  // The peer's identity: "ed25519:<hex>" over TLS, empty over plain TCP.
  virtual const std::string& peer_identity() const = 0;
  virtual bool encrypted() const = 0;
  // Whether reads come out of the stream's own buffer (a small read then costs no system
  // call): its reader need not buffer ahead, and reads straight into where bytes belong.
  virtual bool buffered() const { return false; }
  virtual int fd() const = 0;
  // The peer's network address ("10.0.0.2:51234").
  virtual const std::string& peer_address() const = 0;
};

// Plain TCP over a connected socket (owned: closed by the stream).
std::unique_ptr<Stream> PlainStream(int fd);

// How a reader waits for bytes: it polls the socket without sleeping for up to a budget (a
// reply to a small request often arrives within tens of microseconds, and waking a sleeping
// thread costs about as much here), then sleeps in poll(). The budget follows what waits take:
// after a wait that ended in sleep, twice that wait if it was shorter than kMaxSpinNs (the
// spin would have caught it), else half the budget (at least 1 us); after a spin that caught
// its bytes, at least twice what it took.
class ReadSpin {
 public:
  static constexpr int64_t kMaxSpinNs = 50'000;
  // Calls try_read() until it returns true or the budget (or `deadline`) runs out; true if it
  // did. After false, the caller sleeps until bytes come, then calls Woke().
  template <typename TryRead>
  bool Spin(Deadline deadline, TryRead&& try_read) {
    start_ = MonotonicNs();
    const int64_t until = start_ + budget_ns_;
    int64_t now = start_;
    do {
      if (try_read()) {
        budget_ns_ = std::min<int64_t>(kMaxSpinNs, std::max<int64_t>(budget_ns_, 2 * (MonotonicNs() - start_)));
        return true;
      }
      now = MonotonicNs();
    } while (now < until && !deadline.Expired());
    return false;
  }
  // Bytes came after a sleep that followed Spin.
  void Woke() {
    const int64_t waited = MonotonicNs() - start_;
    budget_ns_ = waited < kMaxSpinNs ? std::max<int64_t>(budget_ns_, 2 * waited)
                                      : std::max<int64_t>(budget_ns_ / 2, 1'000);
    budget_ns_ = std::min(budget_ns_, kMaxSpinNs);
  }

 private:
  int64_t budget_ns_ = kMaxSpinNs;
  int64_t start_ = 0;
};

// Waits until fd is readable (POLLIN) or writable (POLLOUT) or the deadline passes: true if ready.
bool WaitFd(int fd, short events, Deadline deadline);

}  // namespace weft::net
