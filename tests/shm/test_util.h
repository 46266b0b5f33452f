// Helpers for shm tests: unique segment names and a child-process runner.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

namespace weft::testing {

// A name unique to this process and call, so parallel tests never collide.
inline std::string UniqueName(const std::string& stem) {
  static std::atomic<int> counter{0};
  return "test." + stem + "." + std::to_string(::getpid()) + "." + std::to_string(counter++);
}

// Forks; the child runs `body` and exits with its return value (never returns to gtest).
inline pid_t Spawn(const std::function<int()>& body) {
  pid_t pid = ::fork();
  if (pid == 0) {
    int rc = body();
    ::_exit(rc);
  }
  return pid;
}

// Waits for `pid`; returns its exit code, or 128 + signal.
inline int Join(pid_t pid) {
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid) return -1;
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// Waits until `done()` is true; false if `child` exits first or `seconds` pass (so that a child
// that failed early makes the test fail instead of hang).
// *exit_status gets the child's wait status if it exited.
template <typename Done>
bool WaitFor(Done&& done, pid_t child, int seconds = 60, int* exit_status = nullptr) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  for (uint32_t i = 0; !done(); ++i) {
    if ((i & 1023) == 0) {
      int status;
      if (child > 0 && ::waitpid(child, &status, WNOHANG) == child) {
        if (exit_status) *exit_status = status;
        return false;
      }
      if (std::chrono::steady_clock::now() > until) return false;
    }
  }
  return true;
}

// A small deterministic generator (xorshift64*).
struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed ? seed : 0x9E3779B97F4A7C15ull) {}
  uint64_t Next() {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 0x2545F4914F6CDD1Dull;
  }
  uint64_t Below(uint64_t n) { return Next() % n; }
};

// Byte i of a record with sequence number `seq`.
inline uint8_t PatternByte(uint64_t seq, size_t i) {
  return static_cast<uint8_t>((seq * 131 + i * 7 + (i >> 8)) & 0xFF);
}

}  // namespace weft::testing
