// A mutex the compiler checks: clang's thread-safety analysis (-Wthread-safety, on in the clang
// build of `make test`) proves that every field marked WEFT_GUARDED_BY(mu) is touched only with
// `mu` held, and that functions marked WEFT_REQUIRES(mu) are called with it held. Under GCC the
// annotations are empty. Thread rule: the usual one of a mutex.
//
//   Mutex mu_;
//   int count_ WEFT_GUARDED_BY(mu_) = 0;
//   void Add() { MutexLock lock(mu_); ++count_; }
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>

#if defined(__clang__)
#define WEFT_TSA(x) __attribute__((x))
#else
#define WEFT_TSA(x)
#endif
#define WEFT_CAPABILITY(x) WEFT_TSA(capability(x))
#define WEFT_SCOPED_CAPABILITY WEFT_TSA(scoped_lockable)
#define WEFT_GUARDED_BY(x) WEFT_TSA(guarded_by(x))
#define WEFT_PT_GUARDED_BY(x) WEFT_TSA(pt_guarded_by(x))
#define WEFT_REQUIRES(...) WEFT_TSA(requires_capability(__VA_ARGS__))
#define WEFT_EXCLUDES(...) WEFT_TSA(locks_excluded(__VA_ARGS__))
#define WEFT_ACQUIRE(...) WEFT_TSA(acquire_capability(__VA_ARGS__))
#define WEFT_RELEASE(...) WEFT_TSA(release_capability(__VA_ARGS__))
#define WEFT_TRY_ACQUIRE(...) WEFT_TSA(try_acquire_capability(__VA_ARGS__))
#define WEFT_ACQUIRED_BEFORE(...) WEFT_TSA(acquired_before(__VA_ARGS__))
#define WEFT_NO_THREAD_SAFETY_ANALYSIS WEFT_TSA(no_thread_safety_analysis)

namespace weft {

class WEFT_CAPABILITY("mutex") Mutex {
 public:
  void Lock() WEFT_ACQUIRE() { mu_.lock(); }
  void Unlock() WEFT_RELEASE() { mu_.unlock(); }
  bool TryLock() WEFT_TRY_ACQUIRE(true) { return mu_.try_lock(); }

 private:
  friend class CondVar;
  std::mutex mu_;
};

// Holds a Mutex for its scope.
class WEFT_SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& mu) WEFT_ACQUIRE(mu) : mu_(mu) { mu_.Lock(); }
  ~MutexLock() WEFT_RELEASE() {
    if (held_) mu_.Unlock();
  }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;
  // Lets go for a while (a slow step that needs no lock), then takes it back.
  void Unlock() WEFT_RELEASE() {
    held_ = false;
    mu_.Unlock();
  }
  void Lock() WEFT_ACQUIRE() {
    mu_.Lock();
    held_ = true;
  }

 private:
  friend class CondVar;
  Mutex& mu_;
  bool held_ = true;
};

// A condition variable over a Mutex held by a MutexLock. Callers loop on their condition:
//   while (!ready_) cv_.Wait(lock);
class CondVar {
 public:
  void Wait(MutexLock& lock) {
    std::unique_lock<std::mutex> lk(lock.mu_.mu_, std::adopt_lock);
    cv_.wait(lk);
    lk.release();
  }
  // True if the wait ended because `ns` passed.
  bool WaitForNs(MutexLock& lock, int64_t ns) {
    std::unique_lock<std::mutex> lk(lock.mu_.mu_, std::adopt_lock);
    const bool timed_out = cv_.wait_for(lk, std::chrono::nanoseconds(ns)) == std::cv_status::timeout;
    lk.release();
    return timed_out;
  }
  void NotifyOne() { cv_.notify_one(); }
  void NotifyAll() { cv_.notify_all(); }

 private:
  std::condition_variable cv_;
};

}  // namespace weft
