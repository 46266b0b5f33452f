// Process identity and liveness. A process is named by its pid and its start time (clock
// ticks since boot, from /proc/<pid>/stat), so a recycled pid is never mistaken for the
// process that once held it. Thread rule: free functions, any thread.
#pragma once

#include <cstdint>

namespace weft::shm {

struct ProcessIdentity {
  int32_t pid = 0;
  uint64_t start_ticks = 0;
};

// This process.
ProcessIdentity SelfIdentity();

// Start time of `pid` in clock ticks since boot, or 0 if there is no such process.
uint64_t ProcessStartTicks(int32_t pid);

// True while the process named by `id` runs (a zombie counts as gone).
bool IsAlive(const ProcessIdentity& id);

// Holds a pidfd on one process and answers "has it exited?" with one poll(2), or with no
// system call at all once the answer is "yes". Owns the descriptor; not copyable.
class ProcessWatch {
 public:
  ProcessWatch() = default;
  ~ProcessWatch();
  ProcessWatch(const ProcessWatch&) = delete;
  ProcessWatch& operator=(const ProcessWatch&) = delete;

  // Starts watching `id` (stops watching the previous one). Returns false if it is already gone.
  bool Watch(const ProcessIdentity& id);
  // True once the watched process has exited.
  bool Exited();
  const ProcessIdentity& id() const { return id_; }

 private:
  ProcessIdentity id_;
  int fd_ = -1;
  bool exited_ = false;
};

}  // namespace weft::shm
