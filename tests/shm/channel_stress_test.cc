// Two-process stress: byte-exact FIFO of at least 1 GiB with record sizes from 1 byte to the
// maximum, a variant with a deliberately slow consumer, and the lost-wake-up test.
#include <signal.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <thread>

#include <gtest/gtest.h>

#include "shm/internal/channel_layout.h"
#include "shm/test_util.h"
#include "weft/shm/channel.h"

namespace weft::shm {
namespace {

using weft::testing::Join;
using weft::testing::PatternByte;
using weft::testing::Rng;
using weft::testing::Spawn;
using weft::testing::UniqueName;

#ifndef WEFT_STRESS_BYTES
#define WEFT_STRESS_BYTES (uint64_t{1} << 30)
#endif

// Record sizes: mostly small, often mid-sized, sometimes exactly the maximum or 1 byte.
size_t NextSize(Rng& rng, size_t max_record) {
  switch (rng.Below(8)) {
    case 0: return 1;
    case 1: return max_record;
    case 2:
    case 3: return 1 + rng.Below(64);
    default: return 1 + rng.Below(max_record);
  }
}

struct FifoResult {
  uint64_t records = 0, bytes = 0, mismatches = 0;
  ChannelSnapshot stats;
};

// The producer runs in a child process, the consumer here. Both derive the same sizes and
// bytes from the seed, so the consumer checks every byte of every record in order.
FifoResult RunFifo(uint64_t total_bytes, size_t capacity, size_t max_record, bool slow_consumer,
                   WaitPolicy wait = {}) {
  const std::string name = UniqueName("fifo");
  ChannelOptions opt;
  opt.capacity = capacity;
  opt.max_record = max_record;
  opt.role = Role::kConsumer;
  opt.wait = wait;
  auto rx = Channel::Create(name, opt).value();
  pid_t child = Spawn([&] {
    auto tx_r = Channel::Open(name, Role::kProducer, wait);
    if (!tx_r.ok()) return 10;
    auto tx = std::move(tx_r).value();
    Rng rng(42);
    uint64_t sent = 0;
    for (uint64_t seq = 0; sent < total_bytes; ++seq) {
      const size_t n = NextSize(rng, max_record);
      auto buf = tx->Reserve(n, Deadline::AfterMs(60'000));
      if (!buf.ok()) return 11;
      for (size_t i = 0; i < n; ++i) (*buf)[i] = PatternByte(seq, i);
      // Mix immediate and batched publication.
      Status s = (seq % 5 == 0) ? tx->CommitBatched(n) : tx->Commit(n);
      if (!s.ok()) return 12;
      sent += n;
    }
    tx->Flush();
    return tx->Close().ok() ? 0 : 13;
  });
  FifoResult res;
  Rng rng(42);
  if (slow_consumer) {
    // Let the ring fill before reading, so the producer has slept at least once whatever the
    // machine's load (a consumer that happens to keep up would prove nothing).
    const int64_t give_up = MonotonicNs() + 60'000'000'000;
    while (rx->Stats().producer_sleeps == 0 && MonotonicNs() < give_up) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  for (;;) {
    auto v = rx->Read(Deadline::AfterMs(60'000));
    if (!v.ok()) {
      EXPECT_EQ(v.status().code(), Code::kClosed) << v.status().ToString();
      break;
    }
    const size_t n = NextSize(rng, max_record);
    if (v->size() != n) {
      ++res.mismatches;
    } else {
      for (size_t i = 0; i < n; ++i) {
        if ((*v)[i] != PatternByte(res.records, i)) {
          ++res.mismatches;
          break;
        }
      }
    }
    res.bytes += v->size();
    ++res.records;
    if (slow_consumer && res.records % 16 == 0) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    EXPECT_TRUE(rx->Release().ok());
    if (res.mismatches > 0) break;
  }
  EXPECT_EQ(Join(child), 0);
  res.stats = rx->Stats();
  Channel::Unlink(name).IgnoreError();
  return res;
}

TEST(ChannelStressTest, OneGibByteExactFifo) {
  FifoResult r = RunFifo(WEFT_STRESS_BYTES, 1 << 20, 64 << 10, false);
  EXPECT_EQ(r.mismatches, 0u);
  EXPECT_GE(r.bytes, WEFT_STRESS_BYTES);
  EXPECT_EQ(r.stats.records_in, r.records);
  EXPECT_EQ(r.stats.records_out, r.records);
  EXPECT_GT(r.stats.write_pos / r.stats.capacity, 100u);  // wrapped many times
}

TEST(ChannelStressTest, SlowConsumerMakesProducerSleep) {
  // Parked waits so the producer sleeps every time the ring fills.
  FifoResult r = RunFifo(WEFT_STRESS_BYTES / 16, 64 << 10, 8 << 10, true, WaitPolicy{.spin_ns = 0});
  EXPECT_EQ(r.mismatches, 0u);
  EXPECT_GE(r.bytes, WEFT_STRESS_BYTES / 16);
  EXPECT_GT(r.stats.producer_sleeps, 0u);
  EXPECT_GT(r.stats.consumer_wakes, 0u);
}

// Trickle: the producer commits one record only once the consumer has gone to sleep, so every
// record races a sleeping consumer. A lost wake-up would leave the consumer asleep until its
// (long) liveness timeout, which the sleep_timeouts counter records.
struct TrickleResult {
  uint64_t received = 0, sleeps = 0, sleep_timeouts = 0;
};

TrickleResult RunTrickle(int cycles, int64_t liveness_ns, int64_t min_delay_ns, int64_t max_delay_ns) {
  const std::string name = UniqueName("trickle");
  WaitPolicy parked{.spin_ns = 0, .adaptive = false, .liveness_check_ns = liveness_ns};
  ChannelOptions opt;
  opt.capacity = 4096;
  opt.role = Role::kConsumer;
  opt.wait = parked;
  auto rx = Channel::Create(name, opt).value();
  auto seg = Segment::Open(name, 1, 1).value();
  auto* layout = reinterpret_cast<internal::ChannelLayout*>(seg.base());
  pid_t child = Spawn([&] {
    auto tx = Channel::Open(name, Role::kProducer, parked).value();
    uint32_t* sleeping = &layout->wait[1].sleeping;
    Rng rng(7);
    for (int i = 0; i < cycles; ++i) {
      // Wait until the consumer announces it is going to sleep, then a random moment more, so
      // commits land both just before and well after it enters the kernel.
      while (internal::Atomic(*sleeping).load(std::memory_order_acquire) == 0) {
      }
      const int64_t delay = min_delay_ns + static_cast<int64_t>(rng.Below(max_delay_ns - min_delay_ns + 1));
      const int64_t until = MonotonicNs() + delay;
      while (MonotonicNs() < until) {
      }
      uint64_t v = i;
      if (!tx->Write(ByteView(reinterpret_cast<uint8_t*>(&v), 8), Deadline::AfterMs(60'000)).ok()) return 1;
      while (internal::Atomic(*sleeping).load(std::memory_order_acquire) != 0 &&
             tx->Stats().records_out == static_cast<uint64_t>(i)) {
        // the consumer has not woken yet; with a lost wake it only wakes at its timeout
      }
    }
    return 0;
  });
  TrickleResult r;
  for (int i = 0; i < cycles; ++i) {
    auto v = rx->Read(Deadline::AfterMs(120'000));
    if (!v.ok()) {
      ADD_FAILURE() << v.status().ToString();
      break;
    }
    uint64_t got;
    std::memcpy(&got, v->data(), 8);
    EXPECT_EQ(got, static_cast<uint64_t>(i));
    EXPECT_TRUE(rx->Release().ok());
    ++r.received;
  }
  EXPECT_EQ(Join(child), 0);
  ChannelSnapshot s = rx->Stats();
  r.sleeps = s.consumer_sleeps;
  r.sleep_timeouts = s.consumer_sleep_timeouts;
  Channel::Unlink(name).IgnoreError();
  return r;
}

TEST(ChannelStressTest, NoLostWakeupsOverManySleepCycles) {
  // A 60 s liveness interval: the only way to end a sleep in time is a real wake.
  TrickleResult r = RunTrickle(101'000, 60'000'000'000, 0, 30'000);
  EXPECT_EQ(r.received, 101'000u);
  EXPECT_GE(r.sleeps, 100'000u);
  EXPECT_EQ(r.sleep_timeouts, 0u);
}

// Negative control: with wakes suppressed, the same test sees every sleep end by its timeout.
TEST(ChannelStressTest, NegativeControlSuppressedWakesAreCounted) {
  weft::internal::SkipWakesForTest().store(true);
  // Commits 5 ms after the consumer announced its sleep; a 2 ms liveness interval ends each
  // unwoken sleep soon.
  TrickleResult r = RunTrickle(20, 2'000'000, 5'000'000, 5'000'000);
  weft::internal::SkipWakesForTest().store(false);
  EXPECT_EQ(r.received, 20u);
  EXPECT_GE(r.sleep_timeouts, 10u);
}

}  // namespace
}  // namespace weft::shm
