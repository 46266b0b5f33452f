#include "weft/shm/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace weft::shm {
namespace {

// Parses /proc/<pid>/stat: field 3 is the state, field 22 the start time. The command name
// (field 2) may hold spaces and parentheses, so parsing starts after the last ')'.
bool ReadStat(int32_t pid, char* state, uint64_t* start_ticks) {
  char path[64];
  std::snprintf(path, sizeof(path), "/proc/%d/stat", pid);
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char buf[1024];
  ssize_t n = ::read(fd, buf, sizeof(buf) - 1);
  ::close(fd);
  if (n <= 0) return false;
  buf[n] = '\0';
  char* p = std::strrchr(buf, ')');
  if (p == nullptr || p[1] == '\0') return false;
  p += 2;  // now at field 3
  *state = *p;
  for (int field = 3; field < 22; ++field) {
    p = std::strchr(p, ' ');
    if (p == nullptr) return false;
    ++p;
  }
  *start_ticks = std::strtoull(p, nullptr, 10);
  return true;
}

}  // namespace

ProcessIdentity SelfIdentity() {
  static const ProcessIdentity self = [] {
    ProcessIdentity id;
    id.pid = static_cast<int32_t>(::getpid());
    id.start_ticks = ProcessStartTicks(id.pid);
    return id;
  }();
  // A forked child must not inherit its parent's identity.
  if (self.pid != ::getpid()) {
    ProcessIdentity id;
    id.pid = static_cast<int32_t>(::getpid());
    id.start_ticks = ProcessStartTicks(id.pid);
    return id;
  }
  return self;
}

uint64_t ProcessStartTicks(int32_t pid) {
  char state = 0;
  uint64_t start = 0;
  if (pid <= 0 || !ReadStat(pid, &state, &start)) return 0;
  return start;
}

bool IsAlive(const ProcessIdentity& id) {
  if (id.pid <= 0) return false;
  // This process is alive to itself: no /proc read (liveness checks look at their own slots
  // too, and a spinning waiter runs them every millisecond).
  const ProcessIdentity self = SelfIdentity();
  if (id.pid == self.pid && (id.start_ticks == 0 || id.start_ticks == self.start_ticks)) return true;
  char state = 0;
  uint64_t start = 0;
  if (!ReadStat(id.pid, &state, &start)) return false;
  if (state == 'Z' || state == 'X') return false;
  return id.start_ticks == 0 || start == id.start_ticks;
}

ProcessWatch::~ProcessWatch() {
  if (fd_ >= 0) ::close(fd_);
}

bool ProcessWatch::Watch(const ProcessIdentity& id) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  id_ = id;
  exited_ = false;
  fd_ = static_cast<int>(::syscall(SYS_pidfd_open, id.pid, 0));
  // The pidfd pins the process; checking the start time after opening it rules out a pid
  // that was recycled before the open.
  if (!IsAlive(id)) {
    exited_ = true;
    return false;
  }
  return true;
}

bool ProcessWatch::Exited() {
  if (exited_) return true;
  if (fd_ >= 0) {
    pollfd p{fd_, POLLIN, 0};
    int r = ::poll(&p, 1, 0);
    // A pidfd turns readable when the process exits, before its parent reaps it.
    if (r > 0) exited_ = true;
  } else {
    exited_ = !IsAlive(id_);
  }
  return exited_;
}

}  // namespace weft::shm
