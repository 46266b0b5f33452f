// Damage a log's recovery must never cut silently, and a full tmpfs it must not die on
// (docs/security.md). Each test has a control showing the same open without the damage.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "log/log_util.h"
#include "shm/test_util.h"
#include "weft/log/log.h"

namespace weft::log {
namespace {

using weft::testing::IndexPath;
using weft::testing::Join;
using weft::testing::Payload;
using weft::testing::PayloadIntact;
using weft::testing::Peek;
using weft::testing::Poke;
using weft::testing::SegmentPath;
using weft::testing::Spawn;
using weft::testing::TempDir;

constexpr uint64_t kHeader = 64;  // segment header; records start here

uint64_t RecordOffset(uint64_t seq, size_t payload) { return kHeader + seq * (32 + ((payload + 7) & ~size_t{7})); }

void Fill(const std::string& dir, uint64_t n, size_t payload, Fsync fsync = Fsync::kNever) {
  LogOptions o;
  o.fsync = fsync;
  auto log = Log::Open(dir, o).value();
  for (uint64_t s = 0; s < n; ++s) {
    auto p = Payload(s, payload);
    ASSERT_EQ(log->Append(ByteView(p.data(), p.size())).value(), s);
  }
}

TEST(LogHostileTest, ZerosOverAHeaderThatValidRecordsFollowAreReportedNeverCut) {
  TempDir d;
  Fill(d.Log(), 1000, 64, Fsync::kAlways);
  const std::string seg = SegmentPath(d.Log(), 0);
  const uint64_t at = RecordOffset(995, 64);
  const std::vector<uint8_t> later = Peek(seg, RecordOffset(996, 64), 4 * 96);
  const std::vector<uint8_t> zeros(32, 0);
  Poke(seg, at, zeros.data(), zeros.size());
  // A writer's open refuses, naming the offset, and changes nothing.
  auto w = Log::Open(d.Log());
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.status().code(), Code::kCorrupt);
  EXPECT_NE(w.status().message().find("offset " + std::to_string(at)), std::string::npos) << w.status().ToString();
  EXPECT_NE(w.status().message().find("4 valid records follow"), std::string::npos) << w.status().ToString();
  EXPECT_EQ(Peek(seg, RecordOffset(996, 64), 4 * 96), later);
  // verify says so too.
  auto r = Log::Open(d.Log(), {.read_only = true}).value();
  EXPECT_EQ(r->Verify().code(), Code::kCorrupt);
  r.reset();
  // Repair is the user's decision, and says what it cut.
  auto fixed = Log::Open(d.Log(), {.repair = true});
  ASSERT_TRUE(fixed.ok()) << fixed.status().ToString();
  const LogStats st = (*fixed)->Stats();
  EXPECT_EQ(st.cut_at_offset, at);
  EXPECT_EQ(st.cut_valid_records, 4u);
  EXPECT_EQ(st.next_seq, 995u);
  EXPECT_TRUE((*fixed)->Verify().ok());
  EXPECT_TRUE(PayloadIntact(994, (*fixed)->Read(994)->payload));
}

TEST(LogHostileTest, DamageFarFromLaterRecordsWithoutAnIndexIsReportedNeverCut) {
  TempDir d;
  Fill(d.Log(), 4000, 1024);  // ~4.2 MB in one segment
  const std::string seg = SegmentPath(d.Log(), 0);
  ASSERT_EQ(::unlink(IndexPath(d.Log(), 0).c_str()), 0);
  // Control: without damage (and without the index), the open cuts nothing.
  {
    auto log = Log::Open(d.Log());
    ASSERT_TRUE(log.ok()) << log.status().ToString();
    EXPECT_EQ((*log)->Stats().cut_at_offset, 0u);
    EXPECT_EQ((*log)->next_seq(), 4000u);
  }
  ASSERT_EQ(::unlink(IndexPath(d.Log(), 0).c_str()), 0);
  // 2 MiB of zeros from record 500 on: the next valid record is more than 1 MiB further.
  const std::vector<uint8_t> zeros(2 << 20, 0);
  Poke(seg, RecordOffset(500, 1024), zeros.data(), zeros.size());
  auto w = Log::Open(d.Log());
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.status().code(), Code::kCorrupt) << w.status().ToString();
  EXPECT_NE(w.status().message().find("valid records follow"), std::string::npos) << w.status().ToString();
}

TEST(LogHostileTest, GarbageOverARecordThatValidRecordsFollowIsReportedNeverCut) {
  TempDir d;
  Fill(d.Log(), 100, 64);
  const std::vector<uint8_t> junk(40, 0xAB);
  Poke(SegmentPath(d.Log(), 0), RecordOffset(50, 64), junk.data(), junk.size());
  auto w = Log::Open(d.Log());
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.status().code(), Code::kCorrupt);
}

// A log on a tmpfs that filled up: reopening reads the segment's holes. Through a shared
// mapping that would die of SIGBUS (no page can be allocated for the hole); with pread it
// reads zeros.
TEST(LogHostileTest, ReopeningALogOnAFullTmpfsDoesNotDie) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root for a private mount (CI runs as root)";
  TempDir d;
  const std::string mnt = d.path + "/small";
  ASSERT_EQ(::mkdir(mnt.c_str(), 0700), 0);
  const pid_t child = Spawn([&]() -> int {
    if (::unshare(CLONE_NEWNS) != 0) return 10;
    if (::mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return 11;
    if (::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=2m") != 0) return 12;
    const std::string dir = mnt + "/log";
    {
      LogOptions o;
      o.segment_bytes = 8 << 20;  // larger than the file system: it fills up mid-segment
      auto log = Log::Open(dir, o);
      if (!log.ok()) return 13;
      Status s;
      std::vector<uint8_t> p(1000, 7);
      for (int i = 0; i < 100000 && s.ok(); ++i) s = (*log)->Append(ByteView(p.data(), p.size())).status();
      if (s.ok()) return 14;  // it must have run out of space
    }
    // Negative control, in a grandchild: reading the hole past the records through a shared
    // mapping dies of SIGBUS.
    const std::string seg = SegmentPath(dir, 0);
    const pid_t g = Spawn([&] {
      ::signal(SIGBUS, SIG_DFL);
      const int fd = ::open(seg.c_str(), O_RDONLY);
      struct stat st {};
      ::fstat(fd, &st);
      auto* m = static_cast<const volatile uint8_t*>(
          ::mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_SHARED, fd, 0));
      int sum = 0;
      for (off_t i = 0; i < st.st_size; i += 4096) sum += m[i];
      return sum == 0 ? 0 : 1;
    });
    if (Join(g) != 128 + SIGBUS) return 15;
    // The reopen: no signal, and either the log (with every record appended) or a clear error.
    auto again = Log::Open(dir);
    if (!again.ok()) return again.status().code() == Code::kIoError ? 0 : 16;
    return (*again)->next_seq() > 0 ? 0 : 17;
  });
  EXPECT_EQ(Join(child), 0);
}

}  // namespace
}  // namespace weft::log
