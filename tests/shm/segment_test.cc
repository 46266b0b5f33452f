#include "weft/shm/segment.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include <gtest/gtest.h>

#include "shm/test_util.h"
#include "weft/shm/process.h"

namespace weft::shm {
namespace {

using weft::testing::UniqueName;

TEST(SegmentTest, RejectsInvalidNames) {
  for (const char* bad : {"", ".hidden", "a/b", "sp ace", "semi;colon", "uni\xc3\xa9"}) {
    EXPECT_EQ(ValidateName(bad).code(), Code::kInvalidArgument) << bad;
  }
  EXPECT_EQ(ValidateName(std::string(101, 'a')).code(), Code::kInvalidArgument);
  EXPECT_TRUE(ValidateName(std::string(100, 'a')).ok());
  EXPECT_TRUE(ValidateName("frames-0.v1_x").ok());
  EXPECT_EQ(Segment::Create("a/b", SegmentKind::kChannel, 1, 8192).status().code(),
            Code::kInvalidArgument);
}

TEST(SegmentTest, CreateRecordsCreatorAndMode) {
  std::string name = UniqueName("seg");
  Result<Segment> seg = Segment::Create(name, SegmentKind::kChannel, 1, 5000);
  ASSERT_TRUE(seg.ok()) << seg.status().ToString();
  seg->Publish();
  EXPECT_EQ(seg->size(), 8192u);  // page-rounded
  EXPECT_EQ(seg->header()->creator_pid, ::getpid());
  EXPECT_EQ(seg->header()->creator_start_ticks, SelfIdentity().start_ticks);
  struct stat st {};
  ASSERT_EQ(::stat(("/dev/shm/weft." + name).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(Segment::Create(name, SegmentKind::kChannel, 1, 5000).status().code(),
            Code::kAlreadyExists);
  Result<Segment> again = Segment::Open(name, 1, 1);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->header()->kind, 1u);
  bool listed = false;
  for (const std::string& n : Segment::List()) listed |= (n == name);
  EXPECT_TRUE(listed);
  EXPECT_TRUE(Segment::Unlink(name).ok());
  EXPECT_EQ(Segment::Unlink(name).code(), Code::kNotFound);
  EXPECT_EQ(Segment::Open(name, 1, 1).status().code(), Code::kNotFound);
}

TEST(SegmentTest, OpenChecksKindAndVersion) {
  std::string name = UniqueName("kind");
  Result<Segment> seg = Segment::Create(name, SegmentKind::kPool, 3, 4096);
  ASSERT_TRUE(seg.ok());
  seg->Publish();
  EXPECT_EQ(Segment::Open(name, 1, 1).status().code(), Code::kWrongKind);
  EXPECT_EQ(Segment::Open(name, 2, 4).status().code(), Code::kVersionMismatch);
  EXPECT_TRUE(Segment::Open(name, 0, 0).ok());
  seg->header()->version = 99;
  EXPECT_EQ(Segment::Open(name, 2, 3).status().code(), Code::kVersionMismatch);
  seg->header()->version = kSegmentVersion;
  seg->header()->total_bytes = 1;
  EXPECT_EQ(Segment::Open(name, 2, 3).status().code(), Code::kCorrupt);
  ASSERT_TRUE(Segment::Unlink(name).ok());
}

TEST(SegmentTest, TruncatedOrGarbageSegmentsAreCorrupt) {
  std::string name = UniqueName("garbage");
  std::string path = "/weft." + name;
  int fd = ::shm_open(path.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, "hello", 5), 5);  // shorter than a header
  EXPECT_EQ(Segment::Open(name, 0, 0).status().code(), Code::kCorrupt);
  ASSERT_EQ(::ftruncate(fd, 4096), 0);
  char junk[256];
  std::memset(junk, 0xAB, sizeof(junk));
  ASSERT_EQ(::pwrite(fd, junk, sizeof(junk), 0), static_cast<ssize_t>(sizeof(junk)));
  Status s = Segment::Open(name, 0, 0).status();
  EXPECT_EQ(s.code(), Code::kCorrupt);
  EXPECT_NE(s.message().find("magic"), std::string::npos) << s.ToString();
  ::close(fd);
  ASSERT_TRUE(Segment::Unlink(name).ok());
}

TEST(SegmentTest, ValidateHeaderNeverReadsPastSize) {
  std::vector<uint8_t> bytes(sizeof(SegmentHeader) - 1, 0);
  EXPECT_EQ(ValidateHeader(bytes.data(), bytes.size(), 0, 0).code(), Code::kCorrupt);
}

TEST(ProcessTest, SelfIsAliveAndOthersAreNot) {
  ProcessIdentity self = SelfIdentity();
  EXPECT_TRUE(IsAlive(self));
  ProcessIdentity wrong_start = self;
  wrong_start.start_ticks += 12345;
  EXPECT_FALSE(IsAlive(wrong_start));
  pid_t child = weft::testing::Spawn([] { return 0; });
  ASSERT_EQ(weft::testing::Join(child), 0);
  EXPECT_FALSE(IsAlive({child, 0}));
  ProcessWatch w;
  EXPECT_TRUE(w.Watch(self));
  EXPECT_FALSE(w.Exited());
}

}  // namespace
}  // namespace weft::shm
