#include "scheduler.h"

#include <algorithm>
#include <chrono>

namespace weft::rpc::internal {

bool Scheduler::CanStart(uint64_t ticket, Access access) const {
  if (ticket != serving_ || writer_) return false;
  return access == Access::kRead || readers_ == 0;
}

void Scheduler::Advance() {
  ++serving_;
  while (!abandoned_.empty() && *abandoned_.begin() == serving_) {
    abandoned_.erase(abandoned_.begin());
    ++serving_;
  }
}

bool Scheduler::Enter(Access access, Deadline deadline) {
  std::unique_lock<std::mutex> lk(mu_);
  const uint64_t ticket = next_ticket_++;
  while (!CanStart(ticket, access)) {
    if (deadline.is_never()) {
      cv_.wait(lk);
      continue;
    }
    const int64_t left = deadline.RemainingNs();
    if (left == 0) {
      ++stats_.timeouts;
      if (ticket == serving_) {
        Advance();
      } else {
        abandoned_.insert(ticket);
      }
      cv_.notify_all();  // whoever holds the next ticket may start now
      return false;
    }
    cv_.wait_for(lk, std::chrono::nanoseconds(left));
  }
  if (access == Access::kRead) {
    ++readers_;
    ++stats_.reads;
    stats_.max_readers = std::max(stats_.max_readers, readers_);
  } else {
    writer_ = true;
    ++stats_.writes;
  }
  Advance();
  cv_.notify_all();  // the next ticket may be a read that can run beside this one
  return true;
}

void Scheduler::Leave(Access access) {
  std::lock_guard<std::mutex> lk(mu_);
  if (access == Access::kRead) {
    --readers_;
  } else {
    writer_ = false;
  }
  cv_.notify_all();
}

Scheduler::Stats Scheduler::stats() {
  std::lock_guard<std::mutex> lk(mu_);
  return stats_;
}

}  // namespace weft::rpc::internal
