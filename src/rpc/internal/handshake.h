// The ipc:// handshake (docs/formats/rpc-wire.md, "Handshake"): one datagram each way over a
// SOCK_SEQPACKET Unix socket. The client's hello names the resource, its holder slot in the
// server's pool ("-" for none) and its contract, and carries the two sealed channel memfds
// (SCM_RIGHTS): requests, replies. The server answers "ok" with the resource id and its
// contract, or "error" with a code and a message. Internal to rpc.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "weft/core/clock.h"
#include "weft/core/status.h"

namespace weft::rpc::internal {

inline constexpr int kNoSlot = -1;
inline constexpr size_t kMaxHandshakeBytes = size_t{1} << 20;

struct Hello {
  uint8_t wire_min = 0, wire_max = 0;  // the wire versions the client speaks
  std::string resource;
  int pool_slot = kNoSlot;  // 0..63, or kNoSlot: the client does not map the pool
  std::string_view contract;  // borrowed from the parsed message
};

std::string EncodeHello(std::string_view resource, int pool_slot, std::string_view contract);
// Strict: "hello 3", "wire <min> <max>", a resource name of 1 to 128 bytes without control characters, a slot of
// 1 or 2 decimal digits below 64 or "-". Fuzzed (tests/fuzz/fuzz_rpc_handshake.cc).
Result<Hello> ParseHello(std::string_view msg);

std::string EncodeAccept(uint32_t resource_id, std::string_view contract);
std::string EncodeRefusal(const Status& why);
struct Answer {
  uint32_t resource = 0;      // the id the server gave the resource
  std::string_view contract;  // the server's contract (borrowed from the message)
};
// The resource id and contract of an "ok" (its wire version checked), or the Status an
// "error" carries. Fuzzed.
Result<Answer> ParseAnswer(std::string_view msg);

// Sends one datagram with descriptors attached (none if fds is empty).
Status SendMessage(int sock, std::string_view msg, const std::vector<int>& fds);
// Waits until `deadline` for one datagram; descriptors that came with it go to *fds (close-on-
// exec, owned by the caller); more than max_fds, or a truncated message, is kCorrupt (and
// every descriptor received is closed).
Result<std::string> RecvMessage(int sock, Deadline deadline, std::vector<int>* fds, size_t max_fds);

}  // namespace weft::rpc::internal
