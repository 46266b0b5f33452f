// The one wait primitive: an event count over 32-bit words in memory that several processes may
// map, and the spin-then-sleep policy every blocking call uses on it (channels, topics, log
// tails, the pool's arenas). A blocked call spins for an adaptive budget, offering its core
// every few microseconds, then sleeps on a futex in slices, running its liveness check once per
// slice. Thread rule: an EventCount is a view (copy it freely); a Waiter belongs to one waiting
// party at a time, except Interrupt, which any thread may call.
//
// Ordering (the proof every user relies on; docs/wait.md has it at length):
//   notifier: C (its change, any store) ; fence(seq_cst) ; s = load(sleepers) ;
//             if s != 0 and exchange(sleepers, 0) != 0: advance(word) ; futex_wake(word)
//   waiter:   k = load(word) ; fetch_add(sleepers, 1) ; fence(seq_cst) ;
//             if ready(): return ; futex_wait(word, k)
// The two fences are ordered one way or the other. If the notifier's fence comes first, the
// waiter's ready() sees C. Otherwise the notifier's load sees the waiter counted, so it
// advances the word after the waiter read k and wakes: the waiter is either queued already
// (woken) or its futex_wait finds word != k and returns. So no wake is lost. A count left
// behind by a waiter that did not sleep costs one spare wake, never a missed one; the notifier
// that takes the count (exchange) is the only one that wakes, so sleepers woken but not yet
// running are not woken again.
#pragma once

#include <sched.h>

#include <algorithm>
#include <atomic>
#include <cstdint>

#include "weft/core/clock.h"
#include "weft/core/futex.h"

namespace weft {

// Tells a spinning core that it spins (pause on x86, yield on aarch64).
inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#else
  std::atomic_signal_fence(std::memory_order_seq_cst);
#endif
}

namespace internal {
// Test hook: notifiers skip their futex wake (the negative control of the lost-wake tests).
std::atomic<bool>& SkipWakesForTest();
}  // namespace internal

class EventCount {
 public:
  EventCount() = default;
  // `word` is a counter owned by this event count; waiters count themselves in `sleepers`.
  static EventCount Counter(uint32_t* word, uint32_t* sleepers) { return {word, sleepers, true}; }
  // `word` is the low half of a cursor that the notifier's change itself advances (no bump).
  static EventCount OnCursor(const uint32_t* word, uint32_t* sleepers) {
    return {const_cast<uint32_t*>(word), sleepers, false};
  }
  // No sleeper count: every Notify advances the word and wakes (for rare events).
  static EventCount Uncounted(uint32_t* word) { return {word, nullptr, true}; }
  // No sleeper count, and the notifier's change itself moves the word (a state word's low
  // half): every Notify wakes (for rare events).
  static EventCount OnValue(const uint32_t* word) { return {const_cast<uint32_t*>(word), nullptr, false}; }
  // For a waiter that may only read the words (a read-only mapping): it cannot count itself,
  // so it sleeps in short slices (Waiter::kObserverSliceMostNs at most) and wakes early
  // whenever a counting waiter is woken.
  static EventCount Observer(const uint32_t* word) {
    EventCount e{const_cast<uint32_t*>(word), nullptr, false};
    e.observer_ = true;
    return e;
  }

  bool valid() const { return word_ != nullptr; }
  bool observer() const { return observer_; }

  // Notifier, after its change is stored: wakes whoever counted itself. Returns true if it
  // made the wake system call.
  bool Notify() const {
    std::atomic_thread_fence(std::memory_order_seq_cst);
    return NotifySeqCst();
  }
  // Notify for a notifier whose change was itself a seq_cst store or read-modify-write (which
  // the ordering argument can use in place of the fence; saves a barrier on a hot path).
  bool NotifySeqCst() const {
    if (sleepers_ != nullptr) {
      std::atomic_ref<uint32_t> s(*sleepers_);
      if (s.load(std::memory_order_seq_cst) == 0 || s.exchange(0, std::memory_order_seq_cst) == 0) return false;
    }
    if (bump_) std::atomic_ref<uint32_t>(*word_).fetch_add(1, std::memory_order_seq_cst);
    if (internal::SkipWakesForTest().load(std::memory_order_relaxed)) return false;
    FutexWake(word_, INT32_MAX);
    return true;
  }
  // Wakes every sleeper whether counted or not (Interrupt, Close): advances the word first so
  // that a waiter between its key and its sleep does not sleep.
  void WakeAll() const {
    if (bump_) std::atomic_ref<uint32_t>(*word_).fetch_add(1, std::memory_order_seq_cst);
    FutexWake(word_, INT32_MAX);
  }

  // Waiter: reads the key, counts itself, then the fence; the caller checks its condition once
  // more and sleeps with Sleep(key) only if it is still unmet.
  uint32_t Prepare() const {
    const uint32_t key = std::atomic_ref<uint32_t>(*word_).load(std::memory_order_acquire);
    if (sleepers_ != nullptr && !observer_) {
      std::atomic_ref<uint32_t>(*sleepers_).fetch_add(1, std::memory_order_seq_cst);
    }
    std::atomic_thread_fence(std::memory_order_seq_cst);
    return key;
  }
  // Sleeps while the word equals `key`, at most `ns`. True if the sleep timed out.
  bool Sleep(uint32_t key, int64_t ns) const { return FutexWait(word_, key, ns); }

 private:
  EventCount(uint32_t* word, uint32_t* sleepers, bool bump) : word_(word), sleepers_(sleepers), bump_(bump) {}
  uint32_t* word_ = nullptr;
  uint32_t* sleepers_ = nullptr;
  bool bump_ = false;
  bool observer_ = false;
};

// How a blocked call waits.
struct WaitPolicy {
  // How long a blocked call spins before it sleeps. kSpinForever spins until the deadline
  // ("spin" mode); 0 sleeps at once ("parked" mode).
  static constexpr int64_t kSpinForever = -1;
  int64_t spin_ns = 50'000;
  // Shrinks the spin while spinning keeps failing and grows it back when it pays off.
  bool adaptive = true;
  // A sleeping call wakes this often to run its liveness check (bounds how long a peer's
  // death goes unnoticed).
  int64_t liveness_check_ns = 20'000'000;
};

// The adaptive spin budget: halves each time spinning ends without work (down to kMinSpinNs)
// and doubles back, up to the most allowed, each time it pays off.
inline constexpr int64_t kMinSpinNs = 1'000;
inline int64_t SpinPaid(int64_t current, int64_t most) { return std::min(current * 2, most); }
inline int64_t SpinWasted(int64_t current, int64_t most) {
  return std::max(current / 2, std::min(kMinSpinNs, most));
}
// After a spin without work and a sleep that ended with work `waited_ns` after the spin began:
// if the most spinning allowed would have caught it, the budget grows as if the spin had paid
// (otherwise a budget once shrunk by an idle spell could never grow back).
inline int64_t SpinAfterSleep(int64_t current, int64_t most, int64_t waited_ns) {
  return waited_ns <= most ? SpinPaid(current, most) : SpinWasted(current, most);
}

enum class WaitEnd : uint8_t {
  kReady,        // the condition holds
  kTimeout,      // the deadline passed
  kInterrupted,  // Interrupt was called
  kStopped,      // the liveness check said stop (and the condition does not hold)
};

struct WaitReport {
  WaitEnd end = WaitEnd::kTimeout;
  bool by_spin = false;         // the condition was met while spinning
  uint32_t sleeps = 0;          // futex sleeps
  uint32_t sleep_timeouts = 0;  // sleeps that ended by their slice, not by a wake
};

// Counters a wait bumps as it goes (before it sleeps, so that others see a sleeper at once),
// each written by this waiter only (a plain load and store, no locked instruction). Any may be
// null.
struct WaitCounters {
  uint64_t* spins = nullptr;           // waits the spin ended
  uint64_t* sleeps = nullptr;          // futex sleeps
  uint64_t* sleep_timeouts = nullptr;  // sleeps ended by their slice, not by a wake

  static void Bump(uint64_t* c) {
    if (c == nullptr) return;
    std::atomic_ref<uint64_t> a(*c);
    a.store(a.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
};

class Waiter {
 public:
  static constexpr int64_t kCheckWhileSpinningNs = 1'000'000;  // liveness check while spinning
  static constexpr int64_t kYieldEveryNs = 10'000;             // a spin offers its core this often
  static constexpr int64_t kObserverSliceLeastNs = 50'000;
  static constexpr int64_t kObserverSliceMostNs = 1'000'000;

  explicit Waiter(const WaitPolicy& policy = {}) { set_policy(policy); }
  Waiter(const Waiter&) = delete;
  Waiter& operator=(const Waiter&) = delete;

  void set_policy(const WaitPolicy& policy) {
    policy_ = policy;
    budget_ = policy.spin_ns < 0 ? 0 : policy.spin_ns;
  }
  const WaitPolicy& policy() const { return policy_; }
  int64_t spin_budget_ns() const { return budget_; }

  // From any thread: the current Wait, and every later one, end with kInterrupted.
  void Interrupt(const EventCount& ec) {
    interrupted_.store(true, std::memory_order_seq_cst);
    if (ec.valid()) ec.WakeAll();
  }
  bool interrupted() const { return interrupted_.load(std::memory_order_acquire); }

  // Waits until ready() holds, the deadline passes, Interrupt is called, or check() returns
  // false. check() is the liveness check: run once while spinning every
  // kCheckWhileSpinningNs, before the first sleep and after every slice that ended unwoken.
  // A deadline of Now() only looks once. ready() must be safe to call repeatedly.
  template <class Ready, class Check>
  WaitReport Wait(const EventCount& ec, Deadline deadline, Ready&& ready, Check&& check,
                  const WaitCounters& counters = {});

 private:
  void Adapt(int64_t start, bool found) {
    if (!policy_.adaptive || policy_.spin_ns <= 0 || start == 0) return;
    budget_ = found ? SpinAfterSleep(budget_, policy_.spin_ns, MonotonicNs() - start)
                    : SpinWasted(budget_, policy_.spin_ns);
  }

  WaitPolicy policy_;
  int64_t budget_ = 0;
  std::atomic<bool> interrupted_{false};
};

template <class Ready, class Check>
WaitReport Waiter::Wait(const EventCount& ec, Deadline deadline, Ready&& ready, Check&& check,
                        const WaitCounters& counters) {
  WaitReport r;
  // Spin phase.
  const bool forever = policy_.spin_ns == WaitPolicy::kSpinForever;
  const int64_t spin = forever ? INT64_MAX : budget_;
  int64_t start = 0;  // when spinning began (0: it did not)
  if (spin > 0 && !deadline.is_now()) {
    start = MonotonicNs();
    int64_t next_check = start + kCheckWhileSpinningNs;
    int64_t next_yield = start + kYieldEveryNs;
    for (uint32_t i = 1;; ++i) {
      if (ready()) {
        if (policy_.adaptive && !forever) budget_ = SpinPaid(budget_, policy_.spin_ns);
        r.end = WaitEnd::kReady;
        r.by_spin = true;
        WaitCounters::Bump(counters.spins);
        return r;
      }
      CpuRelax();
      if ((i & 63) != 0) continue;
      const int64_t now = MonotonicNs();
      if (now - start >= spin || now >= deadline.at_ns()) break;
      if (now >= next_yield) {
        // Lets a peer that shares this core run; returns at once if nothing else is runnable.
        next_yield = now + kYieldEveryNs;
        ::sched_yield();
      }
      if (now >= next_check) {
        next_check = now + kCheckWhileSpinningNs;
        if (interrupted() || !check()) break;  // reported by the sleep phase
      }
    }
  }
  // Sleep phase.
  int64_t observer_slice = kObserverSliceLeastNs;
  bool run_check = true;
  for (;;) {
    if (interrupted()) {
      Adapt(start, false);
      r.end = WaitEnd::kInterrupted;
      return r;
    }
    int64_t left = deadline.RemainingNs();
    if (left == 0) {
      r.end = ready() ? WaitEnd::kReady : WaitEnd::kTimeout;
      Adapt(start, r.end == WaitEnd::kReady);
      return r;
    }
    if (run_check) {
      if (!check()) {
        r.end = ready() ? WaitEnd::kReady : WaitEnd::kStopped;
        Adapt(start, r.end == WaitEnd::kReady);
        return r;
      }
      left = deadline.RemainingNs();
    }
    const uint32_t key = ec.Prepare();
    if (ready()) {
      Adapt(start, true);
      r.end = WaitEnd::kReady;
      return r;
    }
    if (interrupted()) continue;
    int64_t slice = std::min(left, std::max<int64_t>(policy_.liveness_check_ns, 1000));
    if (ec.observer()) {
      slice = std::min(slice, observer_slice);
      observer_slice = std::min(observer_slice * 2, kObserverSliceMostNs);
    }
    ++r.sleeps;
    WaitCounters::Bump(counters.sleeps);
    const bool timed_out = ec.Sleep(key, slice);
    if (timed_out && slice < left && !ec.observer()) {
      ++r.sleep_timeouts;
      WaitCounters::Bump(counters.sleep_timeouts);
    }
    if (ready()) {
      Adapt(start, true);
      r.end = WaitEnd::kReady;
      return r;
    }
    run_check = timed_out;
  }
}

}  // namespace weft
