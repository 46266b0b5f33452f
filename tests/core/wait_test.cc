// The wait primitive (weft/core/wait.h): no lost wake over many sleep cycles, between threads
// and between processes, with a negative control in which notifiers skip their wake; interrupt,
// liveness check, observers on a read-only mapping, and the spin budget's adaptation.
#include "weft/core/wait.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <thread>

namespace weft {
namespace {

// The shared words of one test: an event count, and the value the waiter waits for.
struct Shared {
  uint32_t word;
  uint32_t sleepers;
  uint64_t value;
  uint64_t want;  // the value the waiter waits for now
};

Shared* MapShared() {
  void* p = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  EXPECT_NE(p, MAP_FAILED);
  std::memset(p, 0, 4096);
  return static_cast<Shared*>(p);
}

uint64_t Load(Shared* s) { return std::atomic_ref<uint64_t>(s->value).load(std::memory_order_acquire); }
uint32_t Sleepers(Shared* s) { return std::atomic_ref<uint32_t>(s->sleepers).load(std::memory_order_acquire); }

uint64_t Want(Shared* s) { return std::atomic_ref<uint64_t>(s->want).load(std::memory_order_acquire); }

// The notifier: for each value, waits until the waiter waits for it and has counted itself
// asleep (so every notify races a sleeping waiter), then stores the value and notifies.
void Notifier(Shared* s, uint64_t n, int delay_us = 0) {
  const EventCount ec = EventCount::Counter(&s->word, &s->sleepers);
  for (uint64_t v = 1; v <= n; ++v) {
    while (Want(s) != v || Sleepers(s) == 0) std::this_thread::yield();
    if (delay_us > 0) std::this_thread::sleep_for(std::chrono::microseconds(delay_us));
    std::atomic_ref<uint64_t>(s->value).store(v, std::memory_order_release);
    ec.Notify();
  }
}

struct Outcome {
  uint64_t got = 0;
  uint64_t sleeps = 0;
  uint64_t sleep_timeouts = 0;
  uint64_t other = 0;  // waits that ended other than ready
};

// The waiter: sleeps at once (no spin) for each value in turn.
Outcome Waiting(Shared* s, uint64_t n, int64_t slice_ns) {
  Waiter w({.spin_ns = 0, .adaptive = false, .liveness_check_ns = slice_ns});
  const EventCount ec = EventCount::Counter(&s->word, &s->sleepers);
  Outcome o;
  for (uint64_t v = 1; v <= n; ++v) {
    // A wait that found its value before it slept leaves its count behind (only a notify clears
    // it); cleared here, so that the notifier waits for this wait's own count, not a stale one.
    std::atomic_ref<uint32_t>(s->sleepers).store(0, std::memory_order_seq_cst);
    std::atomic_ref<uint64_t>(s->want).store(v, std::memory_order_release);
    const WaitReport r = w.Wait(ec, Deadline::AfterMs(60'000), [&] { return Load(s) >= v; }, [] { return true; });
    o.sleeps += r.sleeps;
    o.sleep_timeouts += r.sleep_timeouts;
    if (r.end == WaitEnd::kReady) {
      ++o.got;
    } else {
      ++o.other;
    }
  }
  return o;
}

TEST(WaitTest, NoLostWakeBetweenThreads) {
  Shared* s = MapShared();
  constexpr uint64_t kN = 20'000;
  std::thread t([&] { Notifier(s, kN); });
  // A 60 s slice: the only way to end a sleep in time is a real wake.
  const Outcome o = Waiting(s, kN, 60'000'000'000);
  t.join();
  EXPECT_EQ(o.got, kN);
  EXPECT_EQ(o.other, 0u);
  EXPECT_GE(o.sleeps, kN * 9 / 10);  // (a value stored between a count and its recheck is found awake)
  EXPECT_EQ(o.sleep_timeouts, 0u);
  ::munmap(s, 4096);
}

TEST(WaitTest, NoLostWakeBetweenProcesses) {
  Shared* s = MapShared();
  constexpr uint64_t kN = 20'000;
  const pid_t child = ::fork();
  if (child == 0) {
    Notifier(s, kN);
    ::_exit(0);
  }
  const Outcome o = Waiting(s, kN, 60'000'000'000);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_EQ(o.got, kN);
  EXPECT_EQ(o.other, 0u);
  EXPECT_GE(o.sleeps, kN * 9 / 10);
  EXPECT_EQ(o.sleep_timeouts, 0u);
  ::munmap(s, 4096);
}

// Negative control: the notifier stores its value 1 ms after the waiter went to sleep, and
// each sleep lasts at most a 100 ms slice. With wakes, no sleep ends by its slice; with the wakes
// skipped, every wait needs one: the tests above would see a lost wake.
Outcome Delayed(bool skip) {
  Shared* s = MapShared();
  constexpr uint64_t kN = 20;
  internal::SkipWakesForTest().store(skip);
  const pid_t child = ::fork();
  if (child == 0) {
    Notifier(s, kN, 1'000);
    ::_exit(0);
  }
  const Outcome o = Waiting(s, kN, 100'000'000);
  internal::SkipWakesForTest().store(false);
  int status = 0;
  EXPECT_EQ(::waitpid(child, &status, 0), child);
  ::munmap(s, 4096);
  return o;
}

TEST(WaitTest, NegativeControlSkippedWakesShowAsSliceTimeouts) {
  const Outcome woken = Delayed(false);
  EXPECT_EQ(woken.got, 20u);
  EXPECT_EQ(woken.sleep_timeouts, 0u);
  const Outcome skipped = Delayed(true);
  EXPECT_EQ(skipped.got, 20u);  // each wait still ends, by its slice
  EXPECT_GE(skipped.sleep_timeouts, 20u);
}

TEST(WaitTest, InterruptEndsAWaitAndEveryLaterOne) {
  Shared* s = MapShared();
  const EventCount ec = EventCount::Counter(&s->word, &s->sleepers);
  Waiter w({.spin_ns = 0, .adaptive = false, .liveness_check_ns = 60'000'000'000});
  std::atomic<int> ended{-1};
  std::thread t([&] {
    ended = static_cast<int>(w.Wait(ec, Deadline::Never(), [] { return false; }, [] { return true; }).end);
  });
  while (Sleepers(s) == 0) std::this_thread::yield();
  w.Interrupt(ec);
  t.join();
  EXPECT_EQ(ended.load(), static_cast<int>(WaitEnd::kInterrupted));
  EXPECT_EQ(w.Wait(ec, Deadline::Never(), [] { return false; }, [] { return true; }).end, WaitEnd::kInterrupted);
  ::munmap(s, 4096);
}

TEST(WaitTest, TheLivenessCheckRunsPerSliceAndCanStopTheWait) {
  Shared* s = MapShared();
  const EventCount ec = EventCount::Counter(&s->word, &s->sleepers);
  Waiter w({.spin_ns = 0, .adaptive = false, .liveness_check_ns = 1'000'000});
  int checks = 0;
  const WaitReport r = w.Wait(ec, Deadline::Never(), [] { return false; }, [&] { return ++checks < 3; });
  EXPECT_EQ(r.end, WaitEnd::kStopped);
  EXPECT_EQ(checks, 3);
  EXPECT_EQ(r.sleep_timeouts, 2u);
  // A condition that holds when the check fails is reported as ready, not stopped.
  bool ready = false;
  const WaitReport r2 = w.Wait(ec, Deadline::Never(), [&] { return ready; }, [&] {
    ready = true;
    return false;
  });
  EXPECT_EQ(r2.end, WaitEnd::kReady);
  ::munmap(s, 4096);
}

TEST(WaitTest, ADeadlineOfNowLooksOnceAndRunsNoCheck) {
  Shared* s = MapShared();
  Waiter w;
  int checks = 0, looks = 0;
  const WaitReport r = w.Wait(EventCount::Counter(&s->word, &s->sleepers), Deadline::Now(), [&] { return ++looks, false; },
                              [&] { return ++checks, true; });
  EXPECT_EQ(r.end, WaitEnd::kTimeout);
  EXPECT_EQ(looks, 1);
  EXPECT_EQ(checks, 0);
  EXPECT_EQ(Sleepers(s), 0u);  // and it did not count itself asleep
  ::munmap(s, 4096);
}

// An observer maps the words read-only: it cannot count itself, yet sees every event (in short
// slices). Writing would fault, so a pass also shows it never writes.
TEST(WaitTest, AnObserverOnAReadOnlyMappingSeesEvents) {
  const int fd = ::memfd_create("wait_test", 0);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::ftruncate(fd, 4096), 0);
  auto* rw = static_cast<Shared*>(::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
  auto* ro = static_cast<Shared*>(::mmap(nullptr, 4096, PROT_READ, MAP_SHARED, fd, 0));
  ASSERT_NE(rw, MAP_FAILED);
  ASSERT_NE(ro, MAP_FAILED);
  constexpr uint64_t kN = 200;
  std::thread t([&] {
    const EventCount ec = EventCount::Counter(&rw->word, &rw->sleepers);
    for (uint64_t v = 1; v <= kN; ++v) {
      std::this_thread::sleep_for(std::chrono::microseconds(100));
      std::atomic_ref<uint64_t>(rw->value).store(v, std::memory_order_release);
      ec.Notify();
    }
  });
  Waiter w({.spin_ns = 0, .adaptive = false, .liveness_check_ns = 60'000'000'000});
  const EventCount ec = EventCount::Observer(&ro->word);
  uint64_t got = 0;
  for (uint64_t v = 1; v <= kN; ++v) {
    const WaitReport r = w.Wait(ec, Deadline::AfterMs(60'000), [&] { return Load(ro) >= v; }, [] { return true; });
    got += r.end == WaitEnd::kReady;
  }
  t.join();
  EXPECT_EQ(got, kN);
  EXPECT_EQ(rw->sleepers, 0u);
  ::munmap(rw, 4096);
  ::munmap(ro, 4096);
  ::close(fd);
}

TEST(WaitTest, TheSpinBudgetShrinksWhenSpinningFailsAndGrowsBack) {
  Shared* s = MapShared();
  const EventCount ec = EventCount::Counter(&s->word, &s->sleepers);
  Waiter w({.spin_ns = 64'000, .adaptive = true, .liveness_check_ns = 1'000'000});
  EXPECT_EQ(w.spin_budget_ns(), 64'000);
  // Nothing comes: each wait spins its budget away and times out; the budget halves.
  for (int i = 0; i < 3; ++i) w.Wait(ec, Deadline::AfterMs(5), [] { return false; }, [] { return true; });
  EXPECT_EQ(w.spin_budget_ns(), 8'000);
  // Ready while spinning: it doubles back, capped at the most.
  for (int i = 0; i < 5; ++i) w.Wait(ec, Deadline::AfterMs(5), [] { return true; }, [] { return true; });
  EXPECT_EQ(w.spin_budget_ns(), 64'000);
  EXPECT_EQ(SpinWasted(1'500, 64'000), kMinSpinNs);
  EXPECT_EQ(SpinAfterSleep(8'000, 64'000, 30'000), 16'000);   // the most would have caught it
  EXPECT_EQ(SpinAfterSleep(8'000, 64'000, 900'000), 4'000);   // it would not
  ::munmap(s, 4096);
}

}  // namespace
}  // namespace weft
