// The read/write scheduler under threads: reads overlap, writes run alone, calls start in the
// order they arrived, and a write is never starved by reads that keep coming.
#include "weft/rpc/scheduler.h"

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <thread>
#include <vector>

namespace weft::rpc {
namespace {

TEST(SchedulerTest, ReadsOverlapWritesRunAlone) {
  Scheduler s;
  std::atomic<int> readers{0}, writers{0}, violations{0}, max_readers{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      uint64_t x = 0x9E3779B97F4A7C15ull * (t + 1);
      for (int i = 0; i < 2000; ++i) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        const Access a = (x % 5 == 0) ? Access::kWrite : Access::kRead;
        ASSERT_TRUE(s.Enter(a, Deadline::AfterMs(60'000)));
        if (a == Access::kWrite) {
          if (writers.fetch_add(1) != 0 || readers.load() != 0) violations.fetch_add(1);
          std::this_thread::yield();
          writers.fetch_sub(1);
        } else {
          const int r = readers.fetch_add(1) + 1;
          if (writers.load() != 0) violations.fetch_add(1);
          int m = max_readers.load();
          while (r > m && !max_readers.compare_exchange_weak(m, r)) {
          }
          for (int k = 0; k < 50; ++k) std::this_thread::yield();
          readers.fetch_sub(1);
        }
        s.Leave(a);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(violations.load(), 0);
  EXPECT_GE(max_readers.load(), 2);  // reads did run together
  EXPECT_GE(s.stats().max_readers, 2);
  EXPECT_EQ(s.stats().reads + s.stats().writes, 16'000u);
}

TEST(SchedulerTest, CallsStartInArrivalOrder) {
  Scheduler s;
  ASSERT_TRUE(s.Enter(Access::kWrite, Deadline::Never()));  // everyone queues behind this
  std::mutex mu;
  std::vector<int> started;
  std::vector<std::thread> threads;
  std::atomic<int> queued{0};
  for (int i = 0; i < 6; ++i) {
    // Arrive one after another (each waits until the previous one is queued).
    while (queued.load() != i) std::this_thread::yield();
    threads.emplace_back([&, i] {
      const Access a = i % 3 == 2 ? Access::kWrite : Access::kRead;
      queued.fetch_add(1);
      ASSERT_TRUE(s.Enter(a, Deadline::AfterMs(60'000)));
      {
        std::lock_guard<std::mutex> g(mu);
        started.push_back(i);
      }
      s.Leave(a);
    });
    for (int k = 0; k < 1000; ++k) std::this_thread::yield();  // let it reach its wait
  }
  s.Leave(Access::kWrite);
  for (auto& t : threads) t.join();
  ASSERT_EQ(started.size(), 6u);
  // Writes (2 and 5) start only after every earlier call started; reads before them may overlap.
  auto pos = [&](int v) { return std::find(started.begin(), started.end(), v) - started.begin(); };
  for (int w : {2, 5}) {
    for (int earlier = 0; earlier < w; ++earlier) EXPECT_LT(pos(earlier), pos(w)) << earlier << " before " << w;
  }
}

TEST(SchedulerTest, AWriteIsNotStarvedByReadsThatKeepComing) {
  Scheduler s;
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> reads_after_write_queued{0};
  std::atomic<bool> write_queued{false}, write_done{false};
  std::vector<std::thread> readers;
  for (int t = 0; t < 4; ++t) {
    readers.emplace_back([&] {
      while (!stop.load()) {
        if (!s.Enter(Access::kRead, Deadline::AfterMs(60'000))) continue;
        if (write_queued.load() && !write_done.load()) reads_after_write_queued.fetch_add(1);
        std::this_thread::yield();
        s.Leave(Access::kRead);
      }
    });
  }
  while (s.stats().reads < 1000) std::this_thread::yield();
  write_queued.store(true);
  const bool entered = s.Enter(Access::kWrite, Deadline::AfterMs(60'000));
  write_done.store(true);
  if (entered) s.Leave(Access::kWrite);
  stop.store(true);
  for (auto& t : readers) t.join();
  EXPECT_TRUE(entered);
  // Only reads that took their ticket before the write's could run while it waited: per reader
  // thread, the one in flight and at most one more that took its ticket between the flag and
  // the write's Enter. Without first-come tickets the readers would keep it out indefinitely.
  EXPECT_LE(reads_after_write_queued.load(), 8u);
}

TEST(SchedulerTest, ATimedOutCallGivesUpItsTurn) {
  Scheduler s;
  ASSERT_TRUE(s.Enter(Access::kWrite, Deadline::Never()));
  EXPECT_FALSE(s.Enter(Access::kRead, Deadline::AfterMs(20)));  // gives up behind the write
  std::atomic<bool> in{false};
  std::thread t([&] {
    in.store(s.Enter(Access::kRead, Deadline::AfterMs(60'000)));
    if (in.load()) s.Leave(Access::kRead);
  });
  for (int k = 0; k < 1000; ++k) std::this_thread::yield();
  s.Leave(Access::kWrite);
  t.join();
  EXPECT_TRUE(in.load());  // the abandoned ticket did not block the next one
  EXPECT_EQ(s.stats().timeouts, 1u);
  // Negative control: with nothing in the way, Enter(Now) succeeds at once.
  EXPECT_TRUE(s.Enter(Access::kWrite, Deadline::Now()));
  s.Leave(Access::kWrite);
}

}  // namespace
}  // namespace weft::rpc
