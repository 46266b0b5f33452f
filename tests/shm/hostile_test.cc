// Hostile tests of shared memory: objects of another uid, squatted names, segments shrunk by a
// third process, scribbled shared config, a pool left full by a dead process. Each proves its
// attack would have mattered (a negative control) and that it now fails cleanly.
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include <gtest/gtest.h>

#include "weft/core/fault_guard.h"
#include "shm/internal/pool_layout.h"
#include "shm/internal/topic_layout.h"
#include "shm/test_util.h"
#include "weft/shm/channel.h"
#include "weft/shm/pool.h"
#include "weft/shm/segment.h"
#include "weft/shm/topic.h"

namespace weft::shm {
namespace {

using weft::testing::Join;
using weft::testing::Spawn;
using weft::testing::UniqueName;

constexpr uid_t kNobody = 65534;

// Runs `body` in a child process that has become uid/gid nobody. Returns its exit code.
int AsNobody(const std::function<int()>& body) {
  return Join(Spawn([&] {
    if (::setgroups(0, nullptr) != 0 || ::setgid(kNobody) != 0 || ::setuid(kNobody) != 0) return 90;
    return body();
  }));
}

TopicOptions SmallTopic() {
  TopicOptions o;
  o.max_publishers = 2;
  o.max_subscribers = 2;
  o.queue_depth = 4;
  o.pool.bytes = 1 << 20;
  return o;
}

void DropTopic(const std::string& name) {
  Segment::Unlink(name).IgnoreError();
  Pool::Unlink(name + ".pool").IgnoreError();
}

#define REQUIRE_ROOT()                                                           \
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to become another uid (CI runs as root)"

void ShrinkFile(const std::string& name, off_t size) {
  // A third process (not a peer of the segment) truncates it.
  EXPECT_EQ(Join(Spawn([&] {
              const int fd = ::open(("/dev/shm/weft." + name).c_str(), O_RDWR);
              if (fd < 0) return 1;
              return ::ftruncate(fd, size) == 0 ? 0 : 2;
            })),
            0);
}

// ---- ownership ------------------------------------------------------------------------------

TEST(ShmHostileTest, SegmentOfAnotherUidIsRefusedNamingItsOwner) {
  REQUIRE_ROOT();
  const std::string name = UniqueName("squat");
  ASSERT_EQ(AsNobody([&] {
              auto ch = Channel::Create(name, {.capacity = 4096});
              if (!ch.ok()) return 1;
              (*ch)->Close().IgnoreError();
              ch->release();  // keep the segment: the child exits, the name stays
              return 0;
            }),
            0);
  auto opened = Channel::Open(name, Role::kConsumer);
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.status().code(), Code::kPermissionDenied);
  EXPECT_NE(opened.status().message().find("65534"), std::string::npos) << opened.status().ToString();
  ASSERT_TRUE(Segment::Unlink(name).ok());
  // Control: the same name created by this uid opens.
  auto mine = Channel::Create(name, {.capacity = 4096});
  ASSERT_TRUE(mine.ok());
  EXPECT_TRUE(Channel::Open(name, Role::kConsumer).ok());
  Segment::Unlink(name).IgnoreError();
}

TEST(ShmHostileTest, SegmentOpenToOtherUsersIsRefused) {
  const std::string name = UniqueName("mode");
  auto ch = Channel::Create(name, {.capacity = 4096});
  ASSERT_TRUE(ch.ok());
  EXPECT_TRUE(Channel::Open(name, Role::kConsumer).ok());  // control: 0600 opens
  ASSERT_EQ(::chmod(("/dev/shm/weft." + name).c_str(), 0666), 0);
  auto opened = Channel::Open(name, Role::kConsumer);
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.status().code(), Code::kPermissionDenied);
  EXPECT_NE(opened.status().message().find("0666"), std::string::npos) << opened.status().ToString();
  Segment::Unlink(name).IgnoreError();
}

TEST(ShmHostileTest, SquattedTopicIsNeverJoinedAndRegistriesArePerUser) {
  REQUIRE_ROOT();
  const std::string name = UniqueName("topic");
  // Another uid creates the topic first (and so its own registry), and keeps it.
  ASSERT_EQ(AsNobody([&] {
              auto pub = Publisher::Open(name, SmallTopic());
              if (!pub.ok()) return 1;
              pub->release();
              return 0;
            }),
            0);
  // Control: the squatter's topic exists and is readable to its owner's tools.
  struct stat st {};
  ASSERT_EQ(::stat(("/dev/shm/weft." + name).c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, kNobody);
  // Root's publisher refuses it instead of joining (the squatter would receive its samples).
  auto pub = Publisher::Open(name);
  ASSERT_FALSE(pub.ok());
  EXPECT_EQ(pub.status().code(), Code::kPermissionDenied);
  auto sub = Subscriber::Open(name);
  ASSERT_FALSE(sub.ok());
  EXPECT_EQ(sub.status().code(), Code::kPermissionDenied);
  // The squatter's registry is its own: root's topics still work and list.
  const std::string other = UniqueName("topic");
  auto mine = Publisher::Open(other, SmallTopic());
  ASSERT_TRUE(mine.ok()) << mine.status().ToString();
  auto names = ListTopics();
  ASSERT_TRUE(names.ok());
  EXPECT_EQ(std::count(names->begin(), names->end(), other), 1);
  EXPECT_EQ(std::count(names->begin(), names->end(), name), 0);
  mine->reset();
  DropTopic(other);
  for (const char* suffix : {"", ".pool", ".pool.A0"}) Segment::Unlink(name + suffix).IgnoreError();
  Segment::Unlink("registry." + std::to_string(kNobody)).IgnoreError();  // the squatter's own
}

// ---- sealed memory --------------------------------------------------------------------------

TEST(ShmHostileTest, SealedChannelCannotShrinkAndUnsealedMemoryIsRefused) {
  auto tx = Channel::CreateSealed(UniqueName("sealed"), {.capacity = 1 << 16});
  ASSERT_TRUE(tx.ok()) << tx.status().ToString();
  const int fd = (*tx)->fd();
  ASSERT_GE(fd, 0);
  auto rx = Channel::OpenSealed(fd, Role::kConsumer);
  ASSERT_TRUE(rx.ok()) << rx.status().ToString();
  ASSERT_TRUE((*tx)->Write(AsBytes(std::string("hello")), Deadline::AfterMs(100)).ok());
  auto rec = (*rx)->Read(Deadline::AfterMs(100));
  ASSERT_TRUE(rec.ok());
  EXPECT_EQ(rec->size(), 5u);
  (*rx)->Release().IgnoreError();
  // Whoever holds the descriptor cannot shrink it.
  EXPECT_NE(::ftruncate(fd, 0), 0);
  EXPECT_EQ(errno, EPERM);
  // Memory that could still shrink is refused.
  const int plain = ::memfd_create("weft.unsealed", MFD_CLOEXEC);
  ASSERT_GE(plain, 0);
  ASSERT_EQ(::ftruncate(plain, 1 << 20), 0);
  auto refused = Channel::OpenSealed(plain, Role::kConsumer);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), Code::kPermissionDenied);
  ::close(plain);
}

// ---- truncation by a third process ----------------------------------------------------------

TEST(ShmHostileTest, ChannelShrunkByAThirdProcessReportsCorruptInsteadOfSigbus) {
  const std::string name = UniqueName("shrink");
  auto tx = Channel::Create(name, {.capacity = 1 << 16});
  ASSERT_TRUE(tx.ok());
  auto rx = Channel::Open(name, Role::kConsumer);
  ASSERT_TRUE(rx.ok());
  ASSERT_TRUE((*tx)->Write(AsBytes(std::string("one")), Deadline::AfterMs(100)).ok());
  ShrinkFile(name, 0);
  // Negative control: in a child without the guard, touching the ring dies of SIGBUS.
  const uint8_t* ring = (*rx)->ring().data();
  EXPECT_EQ(Join(Spawn([&] {
              ::signal(SIGBUS, SIG_DFL);
              return static_cast<int>(*static_cast<const volatile uint8_t*>(ring));
            })),
            128 + SIGBUS);
  // Both endpoints survive: their next calls end with a clear error.
  const uint64_t before = AbsorbedFaults();
  auto rec = (*rx)->Read(Deadline::AfterMs(200));
  ASSERT_FALSE(rec.ok());
  EXPECT_EQ(rec.status().code(), Code::kCorrupt) << rec.status().ToString();
  EXPECT_GT(AbsorbedFaults(), before);
  Status w = Status::Ok();
  for (int i = 0; i < 100000 && w.ok(); ++i) w = (*tx)->Write(AsBytes(std::string(100, 'x')), Deadline::AfterMs(200));
  EXPECT_EQ(w.code(), Code::kCorrupt) << w.ToString();
  Segment::Unlink(name).IgnoreError();
}

TEST(ShmHostileTest, PoolArenaShrunkByAThirdProcessReportsCorrupt) {
  const std::string name = UniqueName("pool");
  auto pool = Pool::Create(name, {.bytes = 1 << 20, .max_arenas = 1});
  ASSERT_TRUE(pool.ok());
  auto b = (*pool)->Allocate(1000);
  ASSERT_TRUE(b.ok());
  auto d = (*pool)->Data(*b);
  ASSERT_TRUE(d.ok());
  std::memset(d->data(), 7, d->size());
  ShrinkFile(name + ".A0", 4096);
  uint8_t* p = d->data();
  EXPECT_EQ(Join(Spawn([&] {
              ::signal(SIGBUS, SIG_DFL);
              return static_cast<int>(*static_cast<volatile uint8_t*>(p));
            })),
            128 + SIGBUS);
  std::memset(p, 9, 64);  // survives: the mapping now reads zeros and absorbs writes
  auto again = (*pool)->Data(*b);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), Code::kCorrupt) << again.status().ToString();
  pool->reset();
  Pool::Unlink(name).IgnoreError();
}

TEST(ShmHostileTest, PoolSegmentAndLargeBlockShrunkByAThirdProcessReportCorrupt) {
  const std::string name = UniqueName("pool");
  auto pool = Pool::Create(name, {.bytes = 1 << 20, .max_arenas = 2});
  ASSERT_TRUE(pool.ok());
  auto large = (*pool)->Allocate(1 << 20);
  ASSERT_TRUE(large.ok());
  uint8_t* p = (*pool)->Data(*large)->data();
  std::memset(p, 3, 1 << 20);
  // The large block's own segment.
  ShrinkFile(name + ".L0", 4096);
  EXPECT_EQ(Join(Spawn([&] {
              ::signal(SIGBUS, SIG_DFL);
              return static_cast<int>(*static_cast<volatile uint8_t*>(p + (512 << 10)));
            })),
            128 + SIGBUS);
  p[512 << 10] = 1;  // survives
  EXPECT_EQ((*pool)->Data(*large).status().code(), Code::kCorrupt);
  // The pool's own segment (holder slots, tables).
  ShrinkFile(name, 0);
  (void)(*pool)->Stats();  // reads the holder slots: survives
  auto after = (*pool)->Allocate(100);
  ASSERT_FALSE(after.ok());
  EXPECT_EQ(after.status().code(), Code::kCorrupt) << after.status().ToString();
  pool->reset();
  Pool::Unlink(name).IgnoreError();
  Segment::Unlink(name + ".L0").IgnoreError();
  Segment::Unlink(name + ".A0").IgnoreError();
}

TEST(ShmHostileTest, ARegistryShrunkByAThirdProcessIsReportedNotFollowed) {
  const std::string name = UniqueName("topic");
  auto pub = Publisher::Open(name, SmallTopic());  // creates or joins this user's registry
  ASSERT_TRUE(pub.ok());
  ShrinkFile("registry." + std::to_string(::geteuid()), 4096);
  auto names = ListTopics();
  ASSERT_FALSE(names.ok());
  EXPECT_EQ(names.status().code(), Code::kCorrupt) << names.status().ToString();
  pub->reset();
  DropTopic(name);
  Segment::Unlink("registry." + std::to_string(::geteuid())).IgnoreError();  // the next user recreates it
}

TEST(ShmHostileTest, TopicShrunkByAThirdProcessReportsCorrupt) {
  const std::string name = UniqueName("topic");
  auto pub = Publisher::Open(name, SmallTopic());
  ASSERT_TRUE(pub.ok());
  auto sub = Subscriber::Open(name);
  ASSERT_TRUE(sub.ok());
  ShrinkFile(name, 0);
  auto s = (*sub)->Take(Deadline::AfterMs(100));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), Code::kCorrupt) << s.status().ToString();
  auto loan = (*pub)->Loan(64);
  ASSERT_TRUE(loan.ok());
  Status p = (*pub)->Publish(*loan, 64, Deadline::AfterMs(100));
  EXPECT_EQ(p.code(), Code::kCorrupt) << p.ToString();
  sub->reset();
  pub->reset();
  DropTopic(name);
}

// ---- scribbled shared config ----------------------------------------------------------------

TEST(ShmHostileTest, ScribbledPoolConfigIsNeverReRead) {
  const std::string name = UniqueName("pool");
  auto pool = Pool::Create(name, {.bytes = 1 << 20, .max_arenas = 2, .max_large_blocks = 4});
  ASSERT_TRUE(pool.ok());
  auto seg = Segment::Open(name, static_cast<uint32_t>(SegmentKind::kPool), internal::kPoolLayoutVersion);
  ASSERT_TRUE(seg.ok());
  auto* l = reinterpret_cast<internal::PoolLayout*>(seg->base());
  l->config.large_count = uint64_t{1} << 40;
  l->config.max_arenas = 1 << 20;
  l->config.large_offset = uint64_t{1} << 50;
  // Control: a fresh open sees the scribble and refuses it.
  auto fresh = Pool::Open(name);
  ASSERT_FALSE(fresh.ok());
  EXPECT_EQ(fresh.status().code(), Code::kCorrupt);
  // The attached pool goes on with the geometry it copied.
  for (int i = 0; i < 6; ++i) {
    auto big = (*pool)->Allocate(100 << 10);
    if (i < 4) {
      ASSERT_TRUE(big.ok()) << big.status().ToString();
    } else {
      EXPECT_EQ(big.status().code(), Code::kWouldBlock);
    }
  }
  PoolStats st = (*pool)->Stats();
  EXPECT_EQ(st.large_in_use, 4u);
  EXPECT_TRUE((*pool)->Allocate(100).ok());
  pool->reset();
  Pool::Unlink(name).IgnoreError();
}

TEST(ShmHostileTest, ScribbledTopicConfigIsNeverReRead) {
  const std::string name = UniqueName("topic");
  auto pub = Publisher::Open(name, SmallTopic());
  ASSERT_TRUE(pub.ok());
  auto sub = Subscriber::Open(name);
  ASSERT_TRUE(sub.ok());
  auto seg = Segment::Open(name, static_cast<uint32_t>(SegmentKind::kTopic), internal::kTopicLayoutVersion);
  ASSERT_TRUE(seg.ok());
  auto* l = reinterpret_cast<internal::TopicLayout*>(seg->base());
  l->config.max_subscribers = 64;
  l->config.ring_stride = uint64_t{1} << 40;
  l->config.queue_depth = 1u << 30;
  // Control: a fresh open refuses the scribble.
  auto fresh = Subscriber::Open(name);
  ASSERT_FALSE(fresh.ok());
  EXPECT_EQ(fresh.status().code(), Code::kCorrupt);
  // The open endpoints go on: 10 samples through.
  for (int i = 0; i < 10; ++i) {
    auto loan = (*pub)->Loan(64);
    ASSERT_TRUE(loan.ok());
    std::memset(loan->data.data(), i, 64);
    ASSERT_TRUE((*pub)->Publish(*loan, 64, Deadline::AfterMs(1000)).ok());
    auto s = (*sub)->Take(Deadline::AfterMs(1000));
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    EXPECT_EQ(s->data[0], i);
    (*sub)->Release(*s).IgnoreError();
  }
  // A subscriber's pool slot scribbled out of range names nobody (no shift past 63).
  auto* rec = reinterpret_cast<internal::SubscriberRecord*>(seg->base() + l->config.subs_offset);
  rec[0].state.pool_slot = 200;
  auto loan = (*pub)->Loan(64);
  ASSERT_TRUE(loan.ok());
  EXPECT_TRUE((*pub)->Publish(*loan, 64, Deadline::AfterMs(100)).ok());
  sub->reset();
  pub->reset();
  DropTopic(name);
}

// The count of fail subscribers only decides whether publishers look for a full one first: set
// to 0 by another process, a full fail subscriber just misses the sample (counted), as under
// drop-newest; set to anything else, the scan runs and refuses as it should.
TEST(ShmHostileTest, AScribbledFailCountOnlyChangesWhoIsAsked) {
  const std::string name = UniqueName("topic");
  auto pub = Publisher::Open(name, SmallTopic());
  ASSERT_TRUE(pub.ok());
  auto strict = Subscriber::Open(name, {.on_full = Overflow::kFail});
  ASSERT_TRUE(strict.ok());
  auto publish = [&] {
    auto loan = (*pub)->Loan(64);
    EXPECT_TRUE(loan.ok());
    Status s = (*pub)->Publish(*loan, 64, Deadline::AfterMs(1000));
    if (!s.ok()) (*pub)->Discard(*loan).IgnoreError();
    return s.code();
  };
  for (int i = 0; i < 4; ++i) ASSERT_EQ(publish(), Code::kOk);
  EXPECT_EQ(publish(), Code::kResourceExhausted);  // control: full, refused
  auto seg = Segment::Open(name, static_cast<uint32_t>(SegmentKind::kTopic), internal::kTopicLayoutVersion);
  ASSERT_TRUE(seg.ok());
  auto* l = reinterpret_cast<internal::TopicLayout*>(seg->base());
  std::atomic_ref<uint32_t>(l->wake.fail_subscribers).store(0);
  EXPECT_EQ(publish(), Code::kOk);  // not asked first: the sample misses it, counted
  EXPECT_EQ((*strict)->counters().drops_newest, 2u);
  std::atomic_ref<uint32_t>(l->wake.fail_subscribers).store(UINT32_MAX);
  EXPECT_EQ(publish(), Code::kResourceExhausted);
  for (int i = 0; i < 4; ++i) {  // what it holds is what was published before
    auto s = (*strict)->Take(Deadline::Now());
    ASSERT_TRUE(s.ok());
    EXPECT_EQ(s->seq, static_cast<uint64_t>(i + 1));
    (*strict)->Release(*s).IgnoreError();
  }
  strict->reset();
  pub->reset();
  DropTopic(name);
}

// ---- a pool left full by a dead process -----------------------------------------------------

TEST(ShmHostileTest, PagesOfADeadProcessSizeClassReturnToOtherSizes) {
  const std::string name = UniqueName("pool");
  auto pool = Pool::Create(name, {.bytes = 256 << 10, .max_arenas = 1});
  ASSERT_TRUE(pool.ok());
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  pid_t child = Spawn([&] {
    auto p = Pool::Open(name);
    if (!p.ok()) return 1;
    int n = 0;
    while ((*p)->Allocate(1000).ok()) ++n;  // every page goes to the 1 KiB class
    char c = n > 0 ? 1 : 0;
    (void)!::write(ready[1], &c, 1);
    ::pause();
    return 0;
  });
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  ASSERT_EQ(c, 1);
  // Control: while it lives and holds them, no other size fits.
  auto refused = (*pool)->Allocate(100);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), Code::kWouldBlock);
  ::kill(child, SIGKILL);
  EXPECT_EQ(Join(child), 128 + SIGKILL);
  // Its blocks are recovered and its pages become free for any size.
  std::vector<BlockId> got;
  for (size_t n : {100, 5000, 40000, 64}) {
    auto b = (*pool)->Allocate(n);
    ASSERT_TRUE(b.ok()) << n << ": " << b.status().ToString();
    got.push_back(*b);
  }
  EXPECT_EQ((*pool)->Stats().blocks_in_use, got.size());
  ::close(ready[0]);
  ::close(ready[1]);
  pool->reset();
  Pool::Unlink(name).IgnoreError();
}

TEST(ShmHostileTest, AFreedHugeLargeBlockLeavesNoSegment) {
  const std::string name = UniqueName("pool");
  auto pool = Pool::Create(name, {.bytes = 1 << 20, .max_block = size_t{1} << 30});
  ASSERT_TRUE(pool.ok());
  auto small = (*pool)->Allocate(1 << 20);  // kept for reuse after it is freed
  auto huge = (*pool)->Allocate((Pool::kKeepLargeBytes) + 4096);
  ASSERT_TRUE(small.ok() && huge.ok());
  const std::string small_seg = "/dev/shm/weft." + name + ".L0", huge_seg = "/dev/shm/weft." + name + ".L1";
  EXPECT_EQ(::access(huge_seg.c_str(), F_OK), 0);  // control: it exists while held
  ASSERT_TRUE((*pool)->Release(*huge).ok());
  ASSERT_TRUE((*pool)->Release(*small).ok());
  EXPECT_NE(::access(huge_seg.c_str(), F_OK), 0);
  EXPECT_EQ(::access(small_seg.c_str(), F_OK), 0);
  pool->reset();
  Pool::Unlink(name).IgnoreError();
}

}  // namespace
}  // namespace weft::shm
