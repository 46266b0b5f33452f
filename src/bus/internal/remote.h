// What the remote backends (redis_bus.cc, nats_bus.cc) share: the bus's shape as the server
// keeps it (a short text written by the first opener and parsed by every later one, from
// bytes anyone with access to the server may have written: fuzzed, tests/fuzz/fuzz_bus_remote.cc),
// names, and Redis entry ids as positions. Internal to bus.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

#include "weft/bus/bus.h"
#include "weft/core/status.h"

namespace weft::bus::internal {

struct RemoteShape {
  uint32_t shards = 0;
  uint32_t max_event = 0;
  bool timestamps = false;
};

// "weft-bus 1 <shards> <max_event> <0|1>".
std::string FormatShape(const RemoteShape& s);
// The shape in `text`, checked (version 1, shards 1..kMaxShards, max_event 1..most); kCorrupt
// naming `where` otherwise.
Result<RemoteShape> ParseShape(std::string_view text, uint32_t most_max_event, const std::string& where);
// Takes the bus's shape into *o (with must_match, kInvalidArgument unless it is what *o asks).
Status AdoptShape(const RemoteShape& s, BusOptions* o);

// A bus or group name on a server: 1 to 64 of [A-Za-z0-9_-], and '.' where `dots`.
Status CheckRemoteName(std::string_view name, std::string_view what, std::string_view url, bool dots);

// A Redis stream entry id "ms-seq" as a position: (ms << 20) | seq; kCorrupt if it does not
// fit (a sequence of 2^20 or more within one millisecond).
inline constexpr uint32_t kEntrySeqBits = 20;
Result<uint64_t> ParseEntryId(std::string_view id);

// A remote member's pollable descriptor: an eventfd, readable when made, rung by a watcher of
// the server (any thread), drained at each poll.
class RemoteBell {
 public:
  RemoteBell() = default;
  ~RemoteBell() { Close(); }
  RemoteBell(const RemoteBell&) = delete;
  RemoteBell& operator=(const RemoteBell&) = delete;
  Result<int> Open();  // the descriptor, made at the first call
  void Ring();         // no-op before Open
  void Drain();
  void Close();

 private:
  std::atomic<int> fd_{-1};
};

// What a member does the same on every server: the pollable descriptor, started with its
// watcher at the first WaitFd, and Interrupt.
class RemoteMember : public Consumer {
 public:
  Result<int> WaitFd() final {
    Result<int> fd = bell_.Open();
    if (!fd.ok() || watching_) return fd;
    WEFT_RETURN_IF_ERROR(StartWatcher());
    watching_ = true;
    return fd;
  }
  void Interrupt() final {
    closed_.store(true, std::memory_order_release);
    bell_.Ring();
  }

 protected:
  // Starts what rings bell_ when the server has new events for this member.
  virtual Status StartWatcher() = 0;
  bool closed() const { return closed_.load(std::memory_order_acquire); }

  RemoteBell bell_;
  std::atomic<bool> closed_{false};
  bool watching_ = false;  // a watcher runs
};

}  // namespace weft::bus::internal
