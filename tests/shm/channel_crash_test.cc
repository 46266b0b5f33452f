// SIGKILL tests at named points. The survivor must get kPeerDead (not hang), committed records
// must stay intact, and a restarted peer must be able to re-attach. Each kind of check has a
// negative control showing that it can fail.
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
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

constexpr size_t kRecord = 100;

// Shared between the test and its children: the stage a child reached.
struct Stage {
  std::atomic<int> reached{0};
  std::atomic<uint64_t> committed{0};
};

Stage* NewStage() {
  void* p = ::mmap(nullptr, sizeof(Stage), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  return new (p) Stage();
}

void AwaitStage(Stage* s, int stage) {
  // Bounded: a child that failed before reaching the stage makes the test fail, not hang.
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (s->reached.load() < stage) {
    ASSERT_LT(std::chrono::steady_clock::now(), until) << "a child never reached stage " << stage;
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
}

void Hang() {
  for (;;) ::pause();
}

void Kill(pid_t pid) {
  ::kill(pid, SIGKILL);
  EXPECT_EQ(Join(pid), 128 + SIGKILL);
}

void FillRecord(uint8_t* p, uint64_t seq) {
  for (size_t i = 0; i < kRecord; ++i) p[i] = PatternByte(seq, i);
}

bool Intact(ByteView v, uint64_t seq) {
  if (v.size() != kRecord) return false;
  for (size_t i = 0; i < kRecord; ++i) {
    if (v[i] != PatternByte(seq, i)) return false;
  }
  return true;
}

Status WriteRecord(Channel& tx, uint64_t seq, Deadline d) {
  auto buf = tx.Reserve(kRecord, d);
  if (!buf.ok()) return buf.status();
  FillRecord(buf->data(), seq);
  return tx.Commit(kRecord);
}

ChannelOptions Opts(Role role) {
  ChannelOptions o;
  o.capacity = 1024;  // holds 7 records of 100 bytes (112 in the ring)
  o.max_record = 256;
  o.role = role;
  o.wait.spin_ns = 0;
  o.wait.liveness_check_ns = 5'000'000;
  return o;
}

bool ProducerSleeping(const std::string& name) {
  auto seg = Segment::Open(name, 1, 1).value();
  auto* l = reinterpret_cast<internal::ChannelLayout*>(seg.base());
  return internal::Atomic(l->wait[0].sleeping).load() != 0;
}

bool ConsumerSleeping(const std::string& name) {
  auto seg = Segment::Open(name, 1, 1).value();
  auto* l = reinterpret_cast<internal::ChannelLayout*>(seg.base());
  return internal::Atomic(l->wait[1].sleeping).load() != 0;
}

// Consumer side: reads records seq first.. until PeerDead; returns how many were intact.
int DrainUntilPeerDead(Channel& rx, uint64_t first, int expect, Code* end) {
  int intact = 0;
  for (;;) {
    auto v = rx.Read(Deadline::AfterMs(20'000));
    if (!v.ok()) {
      *end = v.status().code();
      return intact;
    }
    if (Intact(*v, first + intact)) ++intact;
    EXPECT_TRUE(rx.Release().ok());
    if (intact > expect) return intact;
  }
}

// A new producer process re-attaches and writes record `seq`; returns its exit code.
int RestartProducer(const std::string& name, uint64_t seq) {
  pid_t p = Spawn([&] {
    auto tx = Channel::Open(name, Role::kProducer, Opts(Role::kProducer).wait);
    if (!tx.ok()) return 20;
    return WriteRecord(**tx, seq, Deadline::AfterMs(10'000)).ok() ? 0 : 21;
  });
  return Join(p);
}

TEST(ChannelCrashTest, ProducerKilledInsideReserve) {
  const std::string name = UniqueName("crash");
  auto rx = Channel::Create(name, Opts(Role::kConsumer)).value();
  Stage* stage = NewStage();
  pid_t child = Spawn([&] {
    auto tx = Channel::Open(name, Role::kProducer, Opts(Role::kProducer).wait).value();
    uint64_t seq = 0;
    while (WriteRecord(*tx, seq, Deadline::Now()).ok()) ++seq;  // fill the ring
    stage->committed = seq;
    stage->reached = 1;
    (void)tx->Reserve(kRecord, Deadline::AfterMs(60'000));  // blocks: the ring is full
    return 1;
  });
  AwaitStage(stage, 1);
  while (!ProducerSleeping(name)) std::this_thread::sleep_for(std::chrono::microseconds(100));
  Kill(child);  // killed while inside Reserve, asleep on the futex
  Code end = Code::kOk;
  const uint64_t committed = stage->committed;
  EXPECT_EQ(DrainUntilPeerDead(*rx, 0, committed, &end), static_cast<int>(committed));
  EXPECT_EQ(end, Code::kPeerDead);
  // Re-attach: a new producer takes the role and its record arrives.
  EXPECT_EQ(RestartProducer(name, 500), 0);
  auto v = rx->Read(Deadline::AfterMs(10'000));
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_TRUE(Intact(*v, 500));
  Channel::Unlink(name).IgnoreError();
}

TEST(ChannelCrashTest, ProducerKilledBetweenFillAndCommit) {
  const std::string name = UniqueName("crash");
  auto rx = Channel::Create(name, Opts(Role::kConsumer)).value();
  Stage* stage = NewStage();
  pid_t child = Spawn([&] {
    auto tx = Channel::Open(name, Role::kProducer, Opts(Role::kProducer).wait).value();
    for (uint64_t seq = 0; seq < 3; ++seq) {
      if (!WriteRecord(*tx, seq, Deadline::Now()).ok()) return 2;
    }
    auto buf = tx->Reserve(kRecord, Deadline::Now());
    if (!buf.ok()) return 3;
    FillRecord(buf->data(), 99);  // filled, never committed
    stage->reached = 1;
    Hang();
    return 0;
  });
  AwaitStage(stage, 1);
  Kill(child);
  Code end = Code::kOk;
  EXPECT_EQ(DrainUntilPeerDead(*rx, 0, 3, &end), 3);
  EXPECT_EQ(end, Code::kPeerDead);
  // The uncommitted record never appears; the restarted producer's record comes next.
  EXPECT_EQ(RestartProducer(name, 7), 0);
  auto v = rx->Read(Deadline::AfterMs(10'000));
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_TRUE(Intact(*v, 7));
  Channel::Unlink(name).IgnoreError();
}

TEST(ChannelCrashTest, ConsumerKilledHoldingBorrow) {
  const std::string name = UniqueName("crash");
  auto tx = Channel::Create(name, Opts(Role::kProducer)).value();
  for (uint64_t seq = 0; seq < 3; ++seq) ASSERT_TRUE(WriteRecord(*tx, seq, Deadline::Now()).ok());
  Stage* stage = NewStage();
  pid_t child = Spawn([&] {
    auto rx = Channel::Open(name, Role::kConsumer, Opts(Role::kConsumer).wait).value();
    auto v = rx->Read(Deadline::Now());  // borrowed, never released
    if (!v.ok() || !Intact(*v, 0)) return 4;
    stage->reached = 1;
    Hang();
    return 0;
  });
  AwaitStage(stage, 1);
  Kill(child);
  // The producer fills the ring and then, instead of hanging, learns the consumer is dead.
  uint64_t seq = 3;
  Status s;
  while ((s = WriteRecord(*tx, seq, Deadline::AfterMs(20'000))).ok()) ++seq;
  EXPECT_EQ(s.code(), Code::kPeerDead) << s.ToString();
  // A restarted consumer gets the borrowed record again, then all the others, intact.
  const uint64_t total = seq;
  pid_t again = Spawn([&] {
    auto rx = Channel::Open(name, Role::kConsumer, Opts(Role::kConsumer).wait);
    if (!rx.ok()) return 5;
    for (uint64_t i = 0; i < total; ++i) {
      auto v = (*rx)->Read(Deadline::AfterMs(10'000));
      if (!v.ok() || !Intact(*v, i)) return 6;
      if (!(*rx)->Release().ok()) return 7;
    }
    return 0;
  });
  EXPECT_EQ(Join(again), 0);
  Channel::Unlink(name).IgnoreError();
}

// The survivor sleeps in a blocking call when its peer is killed.
Code ConsumerKilledWhileProducerSleeps(bool ignore_death) {
  const std::string name = UniqueName("crash");
  auto tx = Channel::Create(name, Opts(Role::kProducer)).value();
  Stage* stage = NewStage();
  pid_t child = Spawn([&] {
    auto rx = Channel::Open(name, Role::kConsumer, Opts(Role::kConsumer).wait).value();
    stage->reached = 1;
    Hang();
    return 0;
  });
  AwaitStage(stage, 1);
  uint64_t seq = 0;
  while (WriteRecord(*tx, seq, Deadline::Now()).ok()) ++seq;
  internal::Hooks().ignore_peer_death = ignore_death;
  Code result = Code::kOk;
  std::thread blocked([&] {
    result = WriteRecord(*tx, seq, Deadline::AfterMs(ignore_death ? 300 : 20'000)).code();
  });
  while (!ProducerSleeping(name)) std::this_thread::sleep_for(std::chrono::microseconds(100));
  Kill(child);
  blocked.join();
  internal::Hooks().ignore_peer_death = false;
  Channel::Unlink(name).IgnoreError();
  return result;
}

TEST(ChannelCrashTest, ConsumerKilledWhileProducerSleeps) {
  EXPECT_EQ(ConsumerKilledWhileProducerSleeps(false), Code::kPeerDead);
}

TEST(ChannelCrashTest, NegativeControlConsumerDeathUndetected) {
  // Without death detection the same producer only times out: the check above can fail.
  EXPECT_EQ(ConsumerKilledWhileProducerSleeps(true), Code::kTimeout);
}

Code ProducerKilledWhileConsumerSleeps(bool ignore_death, int* intact) {
  const std::string name = UniqueName("crash");
  auto rx = Channel::Create(name, Opts(Role::kConsumer)).value();
  Stage* stage = NewStage();
  pid_t child = Spawn([&] {
    auto tx = Channel::Open(name, Role::kProducer, Opts(Role::kProducer).wait).value();
    for (uint64_t seq = 0; seq < 2; ++seq) {
      if (!WriteRecord(*tx, seq, Deadline::Now()).ok()) return 2;
    }
    stage->reached = 1;
    Hang();
    return 0;
  });
  AwaitStage(stage, 1);
  *intact = 0;
  for (uint64_t seq = 0; seq < 2; ++seq) {
    auto v = rx->Read(Deadline::AfterMs(10'000));
    if (v.ok() && Intact(*v, seq)) ++*intact;
    EXPECT_TRUE(rx->Release().ok());
  }
  internal::Hooks().ignore_peer_death = ignore_death;
  Code result = Code::kOk;
  std::thread blocked([&] {
    result = rx->Read(Deadline::AfterMs(ignore_death ? 300 : 20'000)).status().code();
  });
  while (!ConsumerSleeping(name)) std::this_thread::sleep_for(std::chrono::microseconds(100));
  Kill(child);
  blocked.join();
  internal::Hooks().ignore_peer_death = false;
  Channel::Unlink(name).IgnoreError();
  return result;
}

TEST(ChannelCrashTest, ProducerKilledWhileConsumerSleeps) {
  int intact = 0;
  EXPECT_EQ(ProducerKilledWhileConsumerSleeps(false, &intact), Code::kPeerDead);
  EXPECT_EQ(intact, 2);
}

TEST(ChannelCrashTest, NegativeControlProducerDeathUndetected) {
  int intact = 0;
  EXPECT_EQ(ProducerKilledWhileConsumerSleeps(true, &intact), Code::kTimeout);
}

// A live peer that says nothing, or is even stopped (SIGSTOP), is never declared dead: the
// waiting side times out, and hears from the peer once it resumes.
TEST(ChannelCrashTest, SilentOrStoppedLivePeerIsNeverDeclaredDead) {
  const std::string name = UniqueName("crash");
  auto rx = Channel::Create(name, Opts(Role::kConsumer)).value();
  Stage* stage = NewStage();
  pid_t child = Spawn([&] {
    auto tx = Channel::Open(name, Role::kProducer, Opts(Role::kProducer).wait).value();
    stage->reached = 1;
    while (stage->reached.load() < 2) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return WriteRecord(*tx, 42, Deadline::AfterMs(10'000)).ok() ? 0 : 1;
  });
  AwaitStage(stage, 1);
  // 300 ms of silence is 60 liveness checks at 5 ms.
  EXPECT_EQ(rx->Read(Deadline::AfterMs(300)).status().code(), Code::kTimeout);
  ::kill(child, SIGSTOP);
  EXPECT_EQ(rx->Read(Deadline::AfterMs(300)).status().code(), Code::kTimeout);
  ::kill(child, SIGCONT);
  stage->reached = 2;
  auto v = rx->Read(Deadline::AfterMs(10'000));
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_TRUE(Intact(*v, 42));
  EXPECT_EQ(Join(child), 0);
  Channel::Unlink(name).IgnoreError();
}

TEST(ChannelCrashTest, NegativeControlIntegrityCheckCatchesCorruption) {
  // The Intact check used above does catch a damaged committed record.
  const std::string name = UniqueName("crash");
  auto tx = Channel::Create(name, Opts(Role::kProducer)).value();
  auto rx = Channel::Open(name, Role::kConsumer).value();
  ASSERT_TRUE(WriteRecord(*tx, 0, Deadline::Now()).ok());
  auto seg = Segment::Open(name, 1, 1).value();
  seg.base()[internal::kDataOffset + 8 + 50] ^= 0x40;  // one bit of the payload
  auto v = rx->Read(Deadline::Now());
  ASSERT_TRUE(v.ok());
  EXPECT_FALSE(Intact(*v, 0));
  Channel::Unlink(name).IgnoreError();
}

// Kills a streaming producer at random moments, many times, restarting it each time. The
// consumer must never see a torn record or a gap; the one record a producer may commit without
// recording it before it dies is sent again by its successor (a duplicate, counted).
TEST(ChannelCrashTest, ProducerKilledAtRandomPoints) {
  const std::string name = UniqueName("crash");
  ChannelOptions o = Opts(Role::kConsumer);
  o.capacity = 8192;
  o.wait.spin_ns = 20'000;
  auto rx = Channel::Create(name, o).value();
  Stage* stage = NewStage();  // committed: next sequence number, updated after each Commit
  Rng rng(11);
  uint64_t expected_next = 0, duplicates = 0, bad = 0;
  auto check = [&](ByteView v) {
    if (Intact(v, expected_next)) {
      ++expected_next;
    } else if (expected_next > 0 && Intact(v, expected_next - 1)) {
      ++duplicates;
    } else {
      ++bad;
    }
  };
  for (int round = 0; round < 40; ++round) {
    pid_t child = Spawn([&] {
      auto tx = Channel::Open(name, Role::kProducer, o.wait);
      if (!tx.ok()) return 30;
      for (uint64_t seq = stage->committed;; seq = stage->committed) {
        if (!WriteRecord(**tx, seq, Deadline::AfterMs(10'000)).ok()) return 31;
        stage->committed = seq + 1;
      }
    });
    // Start the clock once the new producer holds the role, so that each kill lands while it
    // streams (an empty slot would rightly read as "no producer yet", not "dead").
    while (Channel::Snapshot(name)->producer.pid != child) {
      auto v = rx->Read(Deadline::Now());
      if (v.ok()) {
        check(*v);
        ASSERT_TRUE(rx->Release().ok());
      }
    }
    const int64_t until = MonotonicNs() + static_cast<int64_t>(rng.Below(3'000'000));
    while (MonotonicNs() < until) {
      auto v = rx->Read(Deadline::Now());
      if (!v.ok()) continue;
      check(*v);
      ASSERT_TRUE(rx->Release().ok());
    }
    ::kill(child, SIGKILL);
    Join(child);
    for (;;) {  // drain what the dead producer committed
      auto v = rx->Read(Deadline::AfterMs(1'000));
      if (!v.ok()) {
        EXPECT_EQ(v.status().code(), Code::kPeerDead) << v.status().ToString();
        break;
      }
      check(*v);
      ASSERT_TRUE(rx->Release().ok());
    }
  }
  EXPECT_EQ(bad, 0u);
  EXPECT_LE(duplicates, 40u);
  EXPECT_GT(expected_next, 40u);
  EXPECT_GE(expected_next, stage->committed.load());  // nothing committed was lost
  Channel::Unlink(name).IgnoreError();
}

}  // namespace
}  // namespace weft::shm
