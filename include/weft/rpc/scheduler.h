// The read/write scheduler of one resource: calls start in the order they arrived (first-come
// tickets); a read runs beside other reads; a write runs alone. A write therefore waits only for
// the calls that arrived before it, never behind reads that came after it, and no call starves.
//
// One atomic word holds the running readers, the writer bit and how many calls are queued. With
// nobody queued a call starts and ends with one atomic operation each (an uncontended in-process
// call costs a few nanoseconds here); otherwise it takes a ticket under the mutex and waits its
// turn, and every later arrival queues behind it. Public so that resources served from other
// languages (the Python binding) use the same scheduler.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <set>

#include "weft/core/clock.h"
#include "weft/core/mutex.h"
#include "weft/rpc/contract.h"

namespace weft::rpc {

class Scheduler {
 public:
  // Waits until the call may run. False if the deadline passed first, or `cancelled` (looked at
  // every millisecond while waiting) said so; nothing is held then.
  bool Enter(Access access, Deadline deadline, const std::function<bool()>* cancelled = nullptr) {
    uint64_t s = state_.load(std::memory_order_relaxed);
    if ((s & ~kReaderMask) == 0 && (access == Access::kRead || s == 0) &&
        state_.compare_exchange_strong(s, s + (access == Access::kRead ? 1 : kWriter), std::memory_order_acquire)) {
      Count(access, s);
      return true;
    }
    return EnterSlow(access, deadline, cancelled);
  }
  // Ends a call that Enter let in.
  void Leave(Access access) {
    const uint64_t s = access == Access::kRead ? state_.fetch_sub(1, std::memory_order_release)
                                               : state_.fetch_and(~kWriter, std::memory_order_release);
    if ((s >> kQueuedShift) != 0) WakeQueued();
  }

  struct Stats {
    uint64_t reads = 0, writes = 0, timeouts = 0;
    int max_readers = 0;  // the most reads seen running at once
  };
  Stats stats();

 private:
  static constexpr uint64_t kReaderMask = (uint64_t{1} << 32) - 1;
  static constexpr uint64_t kWriter = uint64_t{1} << 32;
  static constexpr int kQueuedShift = 33;
  static constexpr uint64_t kQueued = uint64_t{1} << kQueuedShift;

  bool EnterSlow(Access access, Deadline deadline, const std::function<bool()>* cancelled);
  void WakeQueued();
  void Count(Access access, uint64_t before) {
    if (access == Access::kWrite) {
      writes_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    reads_.fetch_add(1, std::memory_order_relaxed);
    const int now = static_cast<int>((before & kReaderMask) + 1);
    int seen = max_readers_.load(std::memory_order_relaxed);
    while (now > seen && !max_readers_.compare_exchange_weak(seen, now, std::memory_order_relaxed)) {
    }
  }
  void Advance() WEFT_REQUIRES(mu_);  // past started and abandoned tickets

  std::atomic<uint64_t> state_{0};  // readers | writer << 32 | queued << 33
  std::atomic<uint64_t> reads_{0}, writes_{0}, timeouts_{0};
  std::atomic<int> max_readers_{0};
  Mutex mu_;
  CondVar cv_;
  uint64_t next_ticket_ WEFT_GUARDED_BY(mu_) = 0;  // the ticket the next queued arrival takes
  uint64_t serving_ WEFT_GUARDED_BY(mu_) = 0;      // the queued ticket that may start next
  std::set<uint64_t> abandoned_ WEFT_GUARDED_BY(mu_);
};

}  // namespace weft::rpc
