// Clocks and deadlines. Monotonic time in nanoseconds; a Deadline is an absolute monotonic
// instant, with "now" (do not wait) and "never" as special values. Thread rule: values.
#pragma once

#include <cstdint>
#include <ctime>

namespace weft {

// CLOCK_MONOTONIC in nanoseconds (vDSO: no system call).
inline int64_t MonotonicNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

// CLOCK_REALTIME in nanoseconds since the Unix epoch.
inline int64_t WallNs() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

class Deadline {
 public:
  static constexpr int64_t kNever = INT64_MAX;
  // Do not wait at all.
  static Deadline Now() { return Deadline(0); }
  static Deadline Never() { return Deadline(kNever); }
  // A timeout in nanoseconds from now; negative means never.
  static Deadline AfterNs(int64_t ns) {
    if (ns < 0) return Never();
    return Deadline(MonotonicNs() + ns);
  }
  static Deadline AfterMs(int64_t ms) { return ms < 0 ? Never() : AfterNs(ms * 1'000'000); }
  // An absolute CLOCK_MONOTONIC time (as at_ns() gives; from this host only).
  static Deadline At(int64_t monotonic_ns) { return Deadline(monotonic_ns < 0 ? 0 : monotonic_ns); }

  bool is_never() const { return at_ns_ == kNever; }
  bool is_now() const { return at_ns_ == 0; }
  bool Expired() const { return at_ns_ != kNever && (at_ns_ == 0 || MonotonicNs() >= at_ns_); }
  // Nanoseconds left (0 when expired, INT64_MAX for never).
  int64_t RemainingNs() const {
    if (at_ns_ == kNever) return kNever;
    int64_t left = at_ns_ - MonotonicNs();
    return left > 0 ? left : 0;
  }
  int64_t at_ns() const { return at_ns_; }

 private:
  explicit Deadline(int64_t at) : at_ns_(at) {}
  int64_t at_ns_;
};

}  // namespace weft
