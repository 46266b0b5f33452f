// The transports' own parts: how a connection is made and verified, and the Conn each gives
// (ipc_conn.cc: a channel pair and the server's pool; tcp_conn.cc: a byte stream, plain or TLS).
// Everything after the handshake is the same code (server.cc, client.cc). Internal to rpc.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "blocks.h"
#include "conn.h"
#include "handshake.h"
#include "weft/net/tcp.h"
#include "weft/rpc/contract.h"
#include "weft/shm/pool.h"

namespace weft::rpc::internal {

inline constexpr size_t kInlineMax = 64 << 10;  // larger values: a pool block (ipc) or data frames (tcp)

// ---- ipc:// ----

std::string PoolName(const std::string& id);
shm::PoolOptions RpcPoolOptions();
bool ValidServerId(const std::string& id);
// The abstract Unix socket a server listens on (kAlreadyExists if another server has the id).
Result<int> ListenIpc(const std::string& id);

// A verified ipc client, as the server knows it.
struct IpcPeer {
  int32_t pid = 0;
  uint32_t uid = 0;
  int pool_slot = kNoSlot;  // verified attached by `pid`; kNoSlot: no pool access
  uint64_t bit() const { return pool_slot == kNoSlot ? 0 : uint64_t{1} << pool_slot; }
};

// The server's side of a client's hello: verifies its pool slot against `cred` and its two
// descriptors (sealed channels of the expected size), and opens them.
Result<std::unique_ptr<Conn>> AcceptIpc(const Hello& hello, const std::vector<int>& fds, const ucred& cred,
                                        std::shared_ptr<Blocks> blocks, uint64_t max_held_bytes);
// The client's side: makes the channels, attaches to the server's pool if it may, sends the
// hello and waits for the answer (*answer: its text, to parse).
Result<std::unique_ptr<Conn>> DialIpc(const std::string& id, const std::string& name, const Contract& contract,
                                      Deadline deadline, std::shared_ptr<Blocks>* blocks, std::string* answer);

// ---- tcp:// ----

// The handshake messages on a stream: "WRPC", u32 length, then the text (at most 1 MiB).
Status WriteHandshake(net::Stream& s, std::string_view text, Deadline deadline);
Result<std::string> ReadHandshake(net::Stream& s, Deadline deadline);
// Frames over a connected stream; values above `max_value` bytes are refused (kTooLarge).
std::unique_ptr<Conn> StreamConn(std::unique_ptr<net::Stream> stream, uint64_t max_value);

}  // namespace weft::rpc::internal
