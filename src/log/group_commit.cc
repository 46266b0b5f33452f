#include "internal/group_commit.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <thread>

#include "weft/core/clock.h"

namespace weft::log::internal {
namespace {
constexpr int kGatherIdleYields = 8;  // yields without a new record before syncing
}  // namespace

void GroupCommit::SetDurable(uint64_t seq) {
  MutexLock lk(mu_);
  durable_ = seq;
}

Status GroupCommit::SyncTo(uint64_t target) {
  MutexLock lk(mu_);
  ++callers_;
  struct Leave {
    std::atomic<int>* n;
    ~Leave() { --*n; }
  } leave{&callers_};
  while (durable_ < target) {
    if (syncing_) {
      cv_.Wait(lk);
      continue;
    }
    syncing_ = true;
    // The crowd to wait for: the most appenders seen waiting at once lately.
    const int crowd = last_crowd_;
    const int64_t gather_ns = std::min<int64_t>(last_fsync_ns_ / 2, 500'000);
    lk.Unlock();
    if (crowd > 1) {
      const int64_t until = MonotonicNs() + gather_ns;
      uint64_t seen = hooks_.appended();
      for (int idle = 0; idle < kGatherIdleYields && callers_.load(std::memory_order_relaxed) < crowd &&
                         MonotonicNs() < until;) {
        std::this_thread::yield();
        const uint64_t now = hooks_.appended();
        idle = now == seen ? idle + 1 : 0;
        seen = now;
      }
    }
    const Snapshot snap = hooks_.snapshot();
    const int callers = callers_.load(std::memory_order_relaxed);
    const int64_t t0 = MonotonicNs();
    const int rc = snap.fd >= 0 ? ::fdatasync(snap.fd) : 0;
    const int err = errno;
    fsyncs_.fetch_add(1, std::memory_order_relaxed);
    lk.Lock();
    last_fsync_ns_ = MonotonicNs() - t0;
    if (++syncs_since_peak_ >= 1024) {  // forget an old crowd slowly
      syncs_since_peak_ = 0;
      last_crowd_ = callers;
    }
    last_crowd_ = std::max(last_crowd_, callers);
    syncing_ = false;
    if (rc != 0) {
      cv_.NotifyAll();
      return ErrnoStatus(err, "fdatasync(" + snap.path + ")");
    }
    if (snap.covered > durable_) {
      durable_ = snap.covered;
      hooks_.durable(snap.covered);
    }
    cv_.NotifyAll();
  }
  return Status::Ok();
}

}  // namespace weft::log::internal
