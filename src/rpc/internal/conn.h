// One connection between a client and a server as the call code sees it, whatever carries it:
// frames out and in (read in order, borrowed until released), values lent to the peer and
// taken or adopted from it, and the peer's end. The server's call loop, the client's calls and
// streams are written once over it (server.cc, client.cc); ipc_conn.cc carries it over a
// channel pair and the server's pool, tcp_conn.cc over a byte stream (plain TCP or TLS).
// Internal to rpc.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "wire.h"
#include "weft/core/clock.h"
#include "weft/core/status.h"
#include "weft/rpc/rpc.h"

namespace weft::rpc::internal {

// The header fields of a frame to send (deadline_ns: time left, 0 for none).
struct FrameOut {
  FrameType type = FrameType::kCall;
  uint16_t flags = 0;
  uint32_t resource = 0;
  uint32_t method = 0;
  uint64_t call = 0;
  int64_t deadline_ns = 0;
};

class Conn {
 public:
  virtual ~Conn() = default;

  // ---- frames ----
  // Sends a frame carrying `values` (values made by Lend).
  virtual Status Send(const FrameOut& f, const std::vector<Value>& values, Deadline d) = 0;
  // Sends a frame whose payload is raw bytes (error, cancel, credit).
  virtual Status SendPayload(const FrameOut& f, ByteView payload, Deadline d) = 0;
  // The next frame, valid until released. kTimeout: nothing before `d`; kPeerDead, kClosed or
  // kUnavailable: the peer is gone; kCorrupt / kVersionMismatch: it sent garbage (the
  // connection is then of no further use).
  virtual Result<Frame> Read(Deadline d) = 0;
  // The values of a frame just read, borrowed like it.
  virtual Result<std::vector<Value>> Values(const Frame& f) = 0;
  // Releases the n oldest frames read.
  virtual void Release(size_t n = 1) = 0;
  // The last frame read comes again at the next Read.
  virtual void Unread() = 0;

  // ---- values ----
  // A value to send: `bytes`, which start `in_place` if that is non-null (a block held here).
  // Holds that must outlive the frame's answer go to *keep.
  virtual Result<Value> Lend(ByteView bytes, const std::shared_ptr<Held>& in_place,
                             std::vector<std::shared_ptr<Held>>* keep) = 0;
  // A received argument to read in place, and the hold that keeps it (null if none is needed).
  virtual Result<ByteView> Take(const Value& v, std::shared_ptr<Held>* hold) = 0;
  // A received result: a Reply of its own (hold: in place, where the transport can).
  virtual Result<Reply> Adopt(const Value& v, bool hold) = 0;
  // A received value that will not be used (the answer of an abandoned call).
  virtual void Drop(const Value&) {}

  // ---- the connection ----
  // Called once the peer is found gone (the server takes back what it held).
  virtual void PeerGone() {}
  // Wakes a Read blocked in another thread; the connection fails from then on.
  virtual void Interrupt() = 0;
  // The peer's verified identity: "uid:<n>" on ipc, "ed25519:<hex>" over TLS, "" otherwise.
  virtual std::string peer_identity() const = 0;
  // Where the peer is: "pid 1234", "10.0.0.2:51234".
  virtual std::string peer_address() const = 0;
};

}  // namespace weft::rpc::internal
