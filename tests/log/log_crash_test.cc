// The writer killed with SIGKILL at random points, each time in a fresh process: every append
// that returned under Fsync::kAlways is there and intact after reopening, no torn record is ever
// returned, and sequence numbers stay dense.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>

#include <atomic>

#include "log/log_util.h"
#include "shm/test_util.h"
#include "weft/log/log.h"

namespace weft::log {
namespace {

using weft::testing::Payload;
using weft::testing::PayloadIntact;
using weft::testing::TempDir;

struct Shared {
  std::atomic<int64_t> acked;  // highest seq whose Append returned OK, -1 for none
  std::atomic<int> started;
};

Shared* NewShared() {
  void* p = ::mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  return new (p) Shared{};
}

LogOptions Opts() {
  LogOptions o;
  o.fsync = Fsync::kAlways;
  o.segment_bytes = 64 << 10;  // rolls happen often, so kills land inside them too
  o.index_every_bytes = 2048;
  return o;
}

// Reopens the log as a writer (recovering it) and checks every record; returns the next seq.
// `acked`: every seq up to it must be present.
uint64_t CheckLog(const std::string& path, int64_t acked, int round) {
  auto log = Log::Open(path, Opts());
  EXPECT_TRUE(log.ok()) << "round " << round << ": " << log.status().ToString();
  if (!log.ok()) return 0;
  const uint64_t next = (*log)->next_seq();
  EXPECT_GE(static_cast<int64_t>(next), acked + 1) << "round " << round << ": an acknowledged append is missing";
  auto tail = (*log)->TailFrom(0).value();
  for (uint64_t s = 0; s < next; ++s) {
    auto r = tail->Next(Deadline::Now());
    EXPECT_TRUE(r.ok()) << "round " << round << " seq " << s << ": " << r.status().ToString();
    if (!r.ok()) return next;
    EXPECT_EQ(r->seq, s);
    EXPECT_TRUE(PayloadIntact(s, r->payload)) << "round " << round << " seq " << s;
  }
  EXPECT_TRUE((*log)->Verify().ok()) << "round " << round;
  return next;
}

TEST(LogCrashTest, WriterKilledAtRandomPoints200TimesLosesNoAcknowledgedAppend) {
  TempDir d;
  Shared* sh = NewShared();
  weft::testing::Rng rng(42);
  uint64_t next = 0;
  for (int round = 0; round < 200; ++round) {
    sh->acked.store(static_cast<int64_t>(next) - 1);
    sh->started.store(0);
    const uint64_t from = next;
    pid_t child = weft::testing::Spawn([&] {
      auto log = Log::Open(d.Log(), Opts());
      if (!log.ok()) return 1;
      sh->started.store(1);
      for (uint64_t s = from;; ++s) {
        // Sizes vary, so records straddle pages, index entries and segment ends.
        auto r = (*log)->Append(ByteView(Payload(s, 8 + (s * 7919) % 3000).data(), 8 + (s * 7919) % 3000));
        if (!r.ok() || *r != s) return 2;
        sh->acked.store(static_cast<int64_t>(s));
      }
    });
    ASSERT_TRUE(weft::testing::WaitFor([&] { return sh->started.load() == 1; }, child, 60)) << "round " << round;
    ::usleep(static_cast<useconds_t>(rng.Below(3000)));
    ::kill(child, SIGKILL);
    ASSERT_EQ(weft::testing::Join(child), 128 + SIGKILL) << "round " << round;
    next = CheckLog(d.Log(), sh->acked.load(), round);
    if (::testing::Test::HasFailure()) break;
  }
  EXPECT_GT(next, 200u);  // the writers did append
}

// Negative control: the same check notices an acknowledged record that is gone.
TEST(LogCrashTest, NegativeControlTheCheckSeesALostRecord) {
  TempDir d;
  {
    auto log = Log::Open(d.Log(), Opts()).value();
    for (uint64_t s = 0; s < 10; ++s) ASSERT_TRUE(log->Append(ByteView(Payload(s, 100).data(), 100)).ok());
  }
  // Damage the last record as a lost write would: its bytes are zero.
  std::vector<uint8_t> zeros(32 + 104, 0);
  weft::testing::Poke(weft::testing::SegmentPath(d.Log(), 0), 64 + 9 * (32 + 104), zeros.data(), zeros.size());
  bool saw_failure = false;
  {
    ::testing::ScopedTrace trace(__FILE__, __LINE__, "control");
    auto log = Log::Open(d.Log(), Opts()).value();
    saw_failure = log->next_seq() < 10;  // CheckLog's first assertion with acked = 9
  }
  EXPECT_TRUE(saw_failure);
}

}  // namespace
}  // namespace weft::log
