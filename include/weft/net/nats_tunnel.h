// Byte streams carried over NATS subjects, for a peer that cannot be dialled (a server behind
// NAT that only dials out to NATS). Each end sees a connected stream socket (one end of a
// socketpair), so whatever runs over TCP runs over a tunnel unchanged, TLS included: NATS and
// anyone on it see only what the two ends write (for rpc, TLS records). Format:
// docs/formats/nats-tunnel.md.
//
//   auto tunnels = net::NatsTunnels::Create(nats).value();
//   tunnels->Listen("weft.relay.9f2c...", [](int fd) { /* serve fd like an accepted socket */ });
//   int fd = other->Dial("weft.relay.9f2c...", deadline).value();  // a connected socket
//
// Bytes arrive whole and in order or not at all: a lost message (a slow consumer, a NATS
// reconnect) breaks the tunnel (the socket reads end of file). Flow control: at most kWindow
// bytes are unacknowledged. A tunnel whose peer has been silent for kSilentMs (no data, no
// ping) is closed. Thread rule: any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "weft/core/clock.h"
#include "weft/core/status.h"
#include "weft/net/nats.h"

namespace weft::net {

class NatsTunnels {
 public:
  static constexpr uint64_t kWindow = 8 << 20;    // bytes in flight per direction
  static constexpr size_t kChunk = 256 << 10;     // the largest data message
  static constexpr int64_t kPingMs = 2'000;       // an idle end pings this often
  static constexpr int64_t kSilentMs = 10'000;    // a peer silent this long is gone
  static constexpr size_t kMostTunnels = 4096;    // open at once through one NatsTunnels, by default

  ~NatsTunnels();  // closes every tunnel
  NatsTunnels(const NatsTunnels&) = delete;
  NatsTunnels& operator=(const NatsTunnels&) = delete;

  // At most `most` tunnels open at once (more are refused: kResourceExhausted to a dialer here,
  // "refused" to a peer opening one).
  static Result<std::unique_ptr<NatsTunnels>> Create(std::shared_ptr<NatsConnection> nats, size_t most = kMostTunnels);

  // Accepts tunnels opened to `subject` (one listener per NatsTunnels): each new tunnel's
  // socket goes to on_open, which owns it. on_open runs on a NATS thread and must not block.
  Status Listen(const std::string& subject, std::function<void(int fd)> on_open);
  // Opens a tunnel to the listener at `subject`: a connected socket, owned by the caller
  // (closing it closes the tunnel). kUnavailable if nobody listens there.
  Result<int> Dial(const std::string& subject, Deadline deadline);
  // Tunnels open now (for tests and stats).
  size_t open() const;

  struct Impl;

 private:
  explicit NatsTunnels(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// True for a subject of 1 to 255 characters of letters, digits, '.', '_' and '-' with no empty
// token: what the tunnel accepts from a peer as a subject to publish on.
bool ValidTunnelSubject(std::string_view subject);

}  // namespace weft::net
