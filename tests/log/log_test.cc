#include "weft/log/log.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "log/log_util.h"
#include "shm/test_util.h"

namespace weft::log {
namespace {

using weft::testing::IndexPath;
using weft::testing::Payload;
using weft::testing::PayloadIntact;
using weft::testing::Peek;
using weft::testing::Poke;
using weft::testing::SegmentPath;
using weft::testing::TempDir;

ByteView V(const std::vector<uint8_t>& v) { return ByteView(v.data(), v.size()); }

LogOptions Small(uint64_t segment = 16 << 10) {
  LogOptions o;
  o.segment_bytes = segment;
  o.index_every_bytes = 1024;
  return o;
}

void AppendN(Log& log, uint64_t from, uint64_t n, size_t size) {
  for (uint64_t s = from; s < from + n; ++s) {
    auto r = log.Append(V(Payload(s, size)));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ASSERT_EQ(*r, s);
  }
}

void ExpectAll(Log& log, uint64_t from, uint64_t to) {
  for (uint64_t s = from; s < to; ++s) {
    auto r = log.Read(s);
    ASSERT_TRUE(r.ok()) << s << ": " << r.status().ToString();
    EXPECT_EQ(r->seq, s);
    EXPECT_TRUE(PayloadIntact(s, r->payload)) << s;
  }
}

TEST(LogTest, AppendReadReopenWithDenseSequenceNumbers) {
  TempDir d;
  {
    auto log = Log::Open(d.Log(), Small()).value();
    AppendN(*log, 0, 100, 40);
    std::vector<std::vector<uint8_t>> batch;
    for (uint64_t s = 100; s < 110; ++s) batch.push_back(Payload(s, 100));
    std::vector<ByteView> views;
    for (auto& b : batch) views.push_back(V(b));
    auto first = log->AppendBatch(views);
    ASSERT_TRUE(first.ok());
    ASSERT_TRUE(first->has_value());
    EXPECT_EQ(**first, 100u);
    auto none = log->AppendBatch({});
    ASSERT_TRUE(none.ok());
    EXPECT_FALSE(none->has_value());  // nothing appended, and said so
    EXPECT_EQ(log->next_seq(), 110u);
    ExpectAll(*log, 0, 110);
    auto flagged = log->Append(V(Payload(110, 8)), 0xABCD);
    ASSERT_TRUE(flagged.ok());
    EXPECT_EQ(log->Read(110)->flags, 0xABCDu);
  }
  auto log = Log::Open(d.Log(), Small()).value();
  EXPECT_EQ(log->next_seq(), 111u);
  EXPECT_EQ(log->Stats().cut_at_offset, 0u);
  ExpectAll(*log, 0, 110);
  EXPECT_EQ(log->Append(V(Payload(111, 8))).value(), 111u);
  EXPECT_TRUE(log->Verify().ok());
  EXPECT_EQ(log->Read(112).status().code(), Code::kOutOfRange);
}

TEST(LogTest, RollsIntoSegmentsAndReadsAcrossThem) {
  TempDir d;
  auto log = Log::Open(d.Log(), Small(8192)).value();
  AppendN(*log, 0, 500, 100);  // ~66 KB: several segments
  EXPECT_GT(log->Stats().segments, 5u);
  ExpectAll(*log, 0, 500);
  EXPECT_TRUE(log->Verify().ok());
  log.reset();
  auto again = Log::Open(d.Log(), Small(8192)).value();
  EXPECT_EQ(again->next_seq(), 500u);
  ExpectAll(*again, 0, 500);
}

TEST(LogTest, TimestampsNeverDecreaseAndFindSeqByTime) {
  TempDir d;
  auto log = Log::Open(d.Log(), Small(8192)).value();
  AppendN(*log, 0, 50, 64);
  const int64_t mid = WallNs();
  ::usleep(2000);
  AppendN(*log, 50, 50, 64);
  int64_t prev = INT64_MIN;
  for (uint64_t s = 0; s < 100; ++s) {
    auto r = log->Read(s).value();
    EXPECT_GE(r.timestamp_ns, prev);
    prev = r.timestamp_ns;
  }
  EXPECT_EQ(log->SeqAtTime(mid).value(), 50u);
  EXPECT_EQ(log->SeqAtTime(0).value(), 0u);
  EXPECT_EQ(log->SeqAtTime(INT64_MAX).value(), 100u);
}

TEST(LogTest, TooLargeAndBadOptionsAreRejected) {
  TempDir d;
  auto log = Log::Open(d.Log(), Small(8192)).value();
  std::vector<uint8_t> big(8192);
  EXPECT_EQ(log->Append(V(big)).status().code(), Code::kTooLarge);
  EXPECT_EQ(log->next_seq(), 0u);  // nothing appended
  LogOptions bad = Small(100);
  EXPECT_EQ(Log::Open(d.path + "/other", bad).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(Log::Open("").status().code(), Code::kInvalidArgument);
  EXPECT_EQ(Log::Open(d.path + "/absent", {.read_only = true}).status().code(), Code::kNotFound);
}

TEST(LogTest, ASecondWriterIsRefusedReadersAreNot) {
  TempDir d;
  auto log = Log::Open(d.Log(), Small()).value();
  AppendN(*log, 0, 10, 16);
  auto second = Log::Open(d.Log(), Small());
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), Code::kBusy);
  EXPECT_NE(second.status().message().find(std::to_string(::getpid())), std::string::npos);
  // Another process is refused too.
  pid_t child = weft::testing::Spawn([&] { return Log::Open(d.Log(), Small()).status().code() == Code::kBusy ? 0 : 1; });
  EXPECT_EQ(weft::testing::Join(child), 0);
  auto reader = Log::Open(d.Log(), {.read_only = true}).value();
  EXPECT_EQ(reader->next_seq(), 10u);
  ExpectAll(*reader, 0, 10);
  EXPECT_EQ(reader->Append(V(Payload(10, 8))).status().code(), Code::kPermissionDenied);
  EXPECT_EQ(reader->Stats().writer_pid, ::getpid());
  log.reset();  // the lock goes with the writer
  EXPECT_TRUE(Log::Open(d.Log(), Small()).ok());
}

TEST(LogTest, TornTailIsCutAtTheLastValidRecord) {
  TempDir d;
  { AppendN(*Log::Open(d.Log(), Small()).value(), 0, 20, 50); }
  // What a writer killed mid-append leaves: a header whose record is not all there.
  const uint64_t end = 64 + 20 * (32 + 56);
  const std::vector<uint8_t> torn = {200, 0, 0, 0, 1, 2, 3, 4, 20, 0, 0, 0, 0, 0, 0, 0};
  Poke(SegmentPath(d.Log(), 0), end, torn.data(), torn.size());
  auto log = Log::Open(d.Log(), Small()).value();
  EXPECT_EQ(log->next_seq(), 20u);
  EXPECT_EQ(log->Stats().cut_at_offset, end);
  ExpectAll(*log, 0, 20);
  AppendN(*log, 20, 5, 50);  // appends go on from there
  EXPECT_TRUE(log->Verify().ok());
  // Negative control: with nothing torn, nothing is cut.
  log.reset();
  EXPECT_EQ(Log::Open(d.Log(), Small()).value()->Stats().cut_at_offset, 0u);
}

TEST(LogTest, GarbageAfterTheRecordsAndAMissingIndexAreRecovered) {
  TempDir d;
  { AppendN(*Log::Open(d.Log(), Small(1 << 20)).value(), 0, 300, 100); }
  std::vector<uint8_t> junk(3000);
  for (size_t i = 0; i < junk.size(); ++i) junk[i] = static_cast<uint8_t>(i * 7 + 1);
  const uint64_t end = 64 + 300 * (32 + 104);
  Poke(SegmentPath(d.Log(), 0), end, junk.data(), junk.size());
  ASSERT_EQ(::unlink(IndexPath(d.Log(), 0).c_str()), 0);
  auto log = Log::Open(d.Log(), Small(1 << 20)).value();
  EXPECT_EQ(log->next_seq(), 300u);
  ExpectAll(*log, 0, 300);
  EXPECT_TRUE(log->Verify().ok());
}

TEST(LogTest, DamageInTheMiddleIsReportedWithItsPosition) {
  TempDir d;
  {
    auto log = Log::Open(d.Log(), Small(8192)).value();
    AppendN(*log, 0, 200, 100);
  }
  // Flip one payload bit of record 3 in the first (sealed) segment.
  const uint64_t off = 64 + 3 * (32 + 104) + 32 + 10;
  uint8_t b = Peek(SegmentPath(d.Log(), 0), off, 1)[0] ^ 0x10;
  Poke(SegmentPath(d.Log(), 0), off, &b, 1);
  auto log = Log::Open(d.Log(), Small(8192)).value();  // the newest segment is fine
  auto r = log->Read(3);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kCorrupt);
  EXPECT_NE(r.status().message().find("00000000000000000000.wlog offset " + std::to_string(off - 42)),
            std::string::npos)
      << r.status().message();
  EXPECT_TRUE(log->Read(2).ok());
  Status v = log->Verify();
  EXPECT_EQ(v.code(), Code::kCorrupt);
  EXPECT_NE(v.message().find("record 3"), std::string::npos) << v.message();
  auto tail = log->TailFrom(0).value();
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(tail->Next(Deadline::Now()).ok());
  EXPECT_EQ(tail->Next(Deadline::Now()).status().code(), Code::kCorrupt);
}

TEST(LogTest, DamageInTheNewestSegmentIsFoundWhenReadAndNeverCut) {
  TempDir d;
  { AppendN(*Log::Open(d.Log(), Small(1 << 20)).value(), 0, 100, 100); }
  const uint64_t off = 64 + 5 * (32 + 104) + 40;
  uint8_t b = Peek(SegmentPath(d.Log(), 0), off, 1)[0] ^ 0x01;
  Poke(SegmentPath(d.Log(), 0), off, &b, 1);
  {
    // Opening checks the tail after the last index entry only; the damage is found on reading.
    auto log = Log::Open(d.Log(), Small(1 << 20)).value();
    EXPECT_EQ(log->next_seq(), 100u);
    EXPECT_EQ(log->Read(5).status().code(), Code::kCorrupt);
    EXPECT_TRUE(log->Read(99).ok());
    EXPECT_EQ(log->Verify().code(), Code::kCorrupt);
  }
  // Without the index, opening scans from the start and meets the damage: valid records follow,
  // so it is not a torn tail, and nothing is cut.
  ASSERT_EQ(::unlink(IndexPath(d.Log(), 0).c_str()), 0);
  auto log = Log::Open(d.Log(), Small(1 << 20));
  ASSERT_FALSE(log.ok());
  EXPECT_EQ(log.status().code(), Code::kCorrupt);
  EXPECT_NE(log.status().message().find("record 5"), std::string::npos) << log.status().message();
  EXPECT_GT(std::filesystem::file_size(SegmentPath(d.Log(), 0)), 64u + 100 * 136);
}

TEST(LogTest, TruncatedOrForeignSegmentFilesGiveClearErrors) {
  TempDir d;
  { AppendN(*Log::Open(d.Log(), Small(8192)).value(), 0, 10, 100); }
  ASSERT_EQ(::truncate(SegmentPath(d.Log(), 0).c_str(), 1000), 0);
  auto log = Log::Open(d.Log(), Small(8192));
  ASSERT_FALSE(log.ok());
  EXPECT_EQ(log.status().code(), Code::kCorrupt);
  const char junk[] = "this is not a log segment at all, not even close; more words here.";
  Poke(SegmentPath(d.Log(), 0), 0, junk, sizeof(junk));
  log = Log::Open(d.Log(), Small(8192));
  ASSERT_FALSE(log.ok());
  EXPECT_EQ(log.status().code(), Code::kCorrupt);
  EXPECT_NE(log.status().message().find("magic"), std::string::npos);
}

TEST(LogTest, RetentionRemovesWholeSegmentsOnDisk) {
  TempDir d;
  LogOptions o = Small(8192);
  o.retention_events = 100;
  auto log = Log::Open(d.Log(), o).value();
  AppendN(*log, 0, 1000, 100);
  const LogStats s = log->Stats();
  EXPECT_GT(s.first_seq, 0u);
  EXPECT_LE(s.next_seq - s.first_seq, 100u + 2 * (8192 / 136 + 1));  // the oldest kept and the newest segment may be partial
  EXPECT_GE(s.next_seq - s.first_seq, 100u);
  EXPECT_FALSE(std::filesystem::exists(SegmentPath(d.Log(), 0)));
  auto r = log->Read(0);
  EXPECT_EQ(r.status().code(), Code::kOutOfRange);
  EXPECT_NE(r.status().message().find("first available is " + std::to_string(s.first_seq)), std::string::npos);
  auto tail = log->TailFrom(0).value();
  EXPECT_EQ(tail->Next(Deadline::Now()).status().code(), Code::kOutOfRange);
  ExpectAll(*log, s.first_seq, s.next_seq);
  // By bytes: keep at least 20 KB.
  log.reset();
  LogOptions b = Small(8192);
  b.retention_bytes = 20 << 10;
  log = Log::Open(d.Log(), b).value();
  AppendN(*log, 1000, 1000, 100);
  EXPECT_LE(log->Stats().bytes, (20u << 10) + 2 * 8192u);
  // By age: every segment whose newest record is older than the limit goes at the next roll;
  // the segment holding the first new record stays. (The new records take far less than the
  // 200 ms limit to append, even under sanitizers; the old ones are 400 ms old by then.)
  log.reset();
  LogOptions a = Small(8192);
  a.retention_age_ms = 200;
  log = Log::Open(d.Log(), a).value();
  ::usleep(400'000);
  AppendN(*log, 2000, 100, 100);
  EXPECT_GT(log->first_seq(), 2000u - 8192 / 136 - 1);
  EXPECT_LE(log->first_seq(), 2000u);
}

TEST(LogTest, DurabilityPoliciesSyncWhenTheySay) {
  TempDir d;
  {
    LogOptions o = Small();
    o.fsync = Fsync::kAlways;
    auto log = Log::Open(d.path + "/always", o).value();
    AppendN(*log, 0, 10, 32);
    EXPECT_EQ(log->Stats().durable_seq, 10u);
    EXPECT_GE(log->Stats().fsyncs, 10u);
  }
  {
    LogOptions o = Small();
    o.fsync = Fsync::kEveryN;
    o.fsync_every_n = 4;
    auto log = Log::Open(d.path + "/every", o).value();
    AppendN(*log, 0, 10, 32);
    EXPECT_EQ(log->Stats().fsyncs, 2u);
    EXPECT_EQ(log->Stats().durable_seq, 8u);
    ASSERT_TRUE(log->Sync().ok());
    EXPECT_EQ(log->Stats().durable_seq, 10u);
  }
  {
    LogOptions o = Small();
    o.fsync = Fsync::kInterval;
    o.fsync_interval_ms = 5;
    auto log = Log::Open(d.path + "/interval", o).value();
    AppendN(*log, 0, 10, 32);
    const int64_t give_up = MonotonicNs() + 10'000'000'000;
    while (log->Stats().durable_seq < 10 && MonotonicNs() < give_up) ::usleep(1000);
    EXPECT_EQ(log->Stats().durable_seq, 10u);  // the background thread got there
  }
  {
    auto log = Log::Open(d.path + "/never", Small()).value();
    AppendN(*log, 0, 10, 32);
    EXPECT_EQ(log->Stats().fsyncs, 0u);
  }
}

TEST(LogTest, ConcurrentAppendersUnderAlwaysShareFsyncs) {
  TempDir d;
  LogOptions o = Small(1 << 20);
  o.fsync = Fsync::kAlways;
  auto log = Log::Open(d.Log(), o).value();
  constexpr int kThreads = 8, kEach = 50;
  std::vector<std::thread> threads;
  std::atomic<int> bad{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kEach; ++i) {
        auto r = log->Append(AsBytes("durable record"));
        if (!r.ok() || log->Stats().durable_seq <= *r) bad.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(bad.load(), 0);  // every append returned durable
  EXPECT_EQ(log->next_seq(), uint64_t{kThreads * kEach});
  EXPECT_LT(log->Stats().fsyncs, uint64_t{kThreads * kEach});  // shared
  EXPECT_TRUE(log->Verify().ok());
}

TEST(LogTest, TailBackfillsThenFollowsLiveAppendsAndClosesFromAnotherThread) {
  TempDir d;
  auto log = Log::Open(d.Log(), Small(8192)).value();
  AppendN(*log, 0, 100, 64);
  auto tail = log->TailFrom(40).value();
  std::thread writer([&] {
    for (uint64_t s = 100; s < 600; ++s) {
      (void)log->Append(V(Payload(s, 64)));
      if (s % 50 == 0) ::usleep(1000);
    }
  });
  for (uint64_t want = 40; want < 600; ++want) {
    auto r = tail->Next(Deadline::AfterMs(10'000));
    ASSERT_TRUE(r.ok()) << want << ": " << r.status().ToString();
    ASSERT_EQ(r->seq, want);
    ASSERT_TRUE(PayloadIntact(want, r->payload));
  }
  writer.join();
  EXPECT_EQ(tail->Next(Deadline::Now()).status().code(), Code::kWouldBlock);
  std::thread closer([&] {
    ::usleep(20'000);
    tail->Close();
  });
  auto r = tail->Next(Deadline::AfterMs(30'000));
  closer.join();
  EXPECT_EQ(r.status().code(), Code::kClosed);
}

TEST(LogTest, TailInAnotherProcessSeesEveryAppendOnce) {
  TempDir d;
  auto log = Log::Open(d.Log(), Small(16384)).value();
  AppendN(*log, 0, 10, 64);
  constexpr uint64_t kTotal = 20'000;
  pid_t child = weft::testing::Spawn([&] {
    auto reader = Log::Open(d.Log(), {.read_only = true});
    if (!reader.ok()) return 1;
    auto tail = (*reader)->TailFrom(0).value();
    for (uint64_t want = 0; want < kTotal; ++want) {
      auto r = tail->Next(Deadline::AfterMs(30'000));
      if (!r.ok()) return 2;
      if (r->seq != want || !PayloadIntact(want, r->payload)) return 3;
    }
    return tail->Next(Deadline::AfterMs(50)).status().code() == Code::kTimeout ? 0 : 4;
  });
  for (uint64_t s = 10; s < kTotal; ++s) {
    ASSERT_TRUE(log->Append(V(Payload(s, 64))).ok());
    if (s % 1000 == 0) ::usleep(2000);  // let the reader catch up and sleep
  }
  EXPECT_EQ(weft::testing::Join(child), 0);
}

}  // namespace
}  // namespace weft::log
