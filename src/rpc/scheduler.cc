#include "weft/rpc/scheduler.h"

#include <algorithm>
#include <chrono>

namespace weft::rpc {

void Scheduler::Advance() {
  ++serving_;
  while (!abandoned_.empty() && *abandoned_.begin() == serving_) {
    abandoned_.erase(abandoned_.begin());
    ++serving_;
  }
}

void Scheduler::WakeQueued() {
  MutexLock lk(mu_);  // a queued call checks and sleeps under mu_: no lost wake-up
  cv_.NotifyAll();
}

bool Scheduler::EnterSlow(Access access, Deadline deadline, const std::function<bool()>* cancelled) {
  // Queue first: from here no arrival takes the fast path past us.
  state_.fetch_add(kQueued, std::memory_order_relaxed);
  MutexLock lk(mu_);
  const uint64_t ticket = next_ticket_++;
  const uint64_t add = access == Access::kRead ? 1 : kWriter;
  for (;;) {
    // A cancelled call gives up even when its turn has come: it never runs.
    bool gave_up = cancelled != nullptr && (*cancelled)();
    if (!gave_up && ticket == serving_) {
      uint64_t s = state_.load(std::memory_order_relaxed);
      while ((s & kWriter) == 0 && (access == Access::kRead || (s & kReaderMask) == 0)) {
        if (state_.compare_exchange_weak(s, s - kQueued + add, std::memory_order_acquire)) {
          Count(access, s);
          Advance();
          cv_.NotifyAll();  // the next ticket may be a read that can run beside this one
          return true;
        }
      }
    }
    gave_up = gave_up || deadline.Expired();
    if (gave_up) {
      timeouts_.fetch_add(1, std::memory_order_relaxed);
      state_.fetch_sub(kQueued, std::memory_order_relaxed);
      if (ticket == serving_) {
        Advance();
      } else {
        abandoned_.insert(ticket);
      }
      cv_.NotifyAll();  // whoever holds the next ticket may start now
      return false;
    }
    int64_t wait = deadline.RemainingNs();
    if (cancelled != nullptr) wait = std::min<int64_t>(wait, 1'000'000);
    if (wait == Deadline::kNever) {
      cv_.Wait(lk);
    } else {
      cv_.WaitForNs(lk, wait);
    }
  }
}

Scheduler::Stats Scheduler::stats() {
  Stats s;
  s.reads = reads_.load();
  s.writes = writes_.load();
  s.timeouts = timeouts_.load();
  s.max_readers = max_readers_.load();
  return s;
}

}  // namespace weft::rpc
