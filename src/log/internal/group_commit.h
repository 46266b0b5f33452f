// Group commit: one caller at a time runs fdatasync for everything appended so far; the others
// wait for it, and whoever still needs more runs the next. When several appenders are at work,
// the caller about to sync first gives the others a moment to append (until all that waited
// last time are back, new records stop coming, or half an fsync's time passes), so that one
// fsync covers them all. Internal to log. Thread rule: any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "weft/core/mutex.h"
#include "weft/core/status.h"

namespace weft::log::internal {

class GroupCommit {
 public:
  // What one fsync covers: records below `covered`, all in the file `fd` (older files were
  // synced when they rolled). fd < 0: nothing to sync.
  struct Snapshot {
    uint64_t covered = 0;
    int fd = -1;
    std::string path;
    std::shared_ptr<void> keep;  // keeps `fd` open while the fsync runs
  };
  struct Hooks {
    std::function<uint64_t()> appended;    // records appended so far (for the gathering pause)
    std::function<Snapshot()> snapshot;    // taken just before each fsync
    std::function<void(uint64_t)> durable; // records below this are on disk now
  };

  explicit GroupCommit(Hooks hooks) : hooks_(std::move(hooks)) {}

  // Returns once every record below `target` is on disk (or an fsync failed).
  Status SyncTo(uint64_t target) WEFT_EXCLUDES(mu_);
  // Records below `seq` are durable already (a writer's open, after recovery).
  void SetDurable(uint64_t seq) WEFT_EXCLUDES(mu_);
  uint64_t fsyncs() const { return fsyncs_.load(std::memory_order_relaxed); }

 private:
  Hooks hooks_;
  Mutex mu_;
  CondVar cv_;
  bool syncing_ WEFT_GUARDED_BY(mu_) = false;
  uint64_t durable_ WEFT_GUARDED_BY(mu_) = 0;
  int last_crowd_ WEFT_GUARDED_BY(mu_) = 0;  // the most callers seen when an fsync began, lately
  int syncs_since_peak_ WEFT_GUARDED_BY(mu_) = 0;
  int64_t last_fsync_ns_ WEFT_GUARDED_BY(mu_) = 0;
  std::atomic<int> callers_{0};  // threads inside SyncTo
  std::atomic<uint64_t> fsyncs_{0};
};

}  // namespace weft::log::internal
