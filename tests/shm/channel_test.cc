#include "weft/shm/channel.h"

#include <poll.h>

#include <cstring>
#include <numeric>
#include <thread>

#include <gtest/gtest.h>

#include "shm/test_util.h"

namespace weft::shm {
namespace {

using weft::testing::UniqueName;

struct Pair {
  std::string name;
  std::unique_ptr<Channel> tx, rx;
  Pair() = default;
  Pair(Pair&& o) noexcept : name(std::exchange(o.name, {})), tx(std::move(o.tx)), rx(std::move(o.rx)) {}
  ~Pair() {
    if (!name.empty()) Channel::Unlink(name).IgnoreError();
  }
};

Pair MakePair(ChannelOptions opt, WaitPolicy rx_wait = {}) {
  Pair p;
  p.name = UniqueName("ch");
  auto tx = Channel::Create(p.name, opt);
  EXPECT_TRUE(tx.ok()) << tx.status().ToString();
  p.tx = std::move(tx).value();
  auto rx = Channel::Open(p.name, Role::kConsumer, rx_wait);
  EXPECT_TRUE(rx.ok()) << rx.status().ToString();
  p.rx = std::move(rx).value();
  return p;
}

std::string ReadString(Channel& rx, Deadline d = Deadline::AfterMs(2000)) {
  Result<ByteView> v = rx.Read(d);
  if (!v.ok()) return "<" + v.status().ToString() + ">";
  std::string s(reinterpret_cast<const char*>(v->data()), v->size());
  EXPECT_TRUE(rx.Release().ok());
  return s;
}

TEST(ChannelTest, ZeroCopyReserveCommitReadRelease) {
  Pair p = MakePair({.capacity = 4096});
  Result<MutableBytes> buf = p.tx->Reserve(5, Deadline::Now());
  ASSERT_TRUE(buf.ok());
  std::memcpy(buf->data(), "hello", 5);
  EXPECT_EQ(p.rx->Read(Deadline::Now()).status().code(), Code::kWouldBlock);  // not committed
  ASSERT_TRUE(p.tx->Commit(5).ok());
  Result<ByteView> v = p.rx->Read(Deadline::Now());
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(v->data()), v->size()), "hello");
  ASSERT_TRUE(p.rx->Release().ok());
  EXPECT_EQ(p.rx->Read(Deadline::Now()).status().code(), Code::kWouldBlock);
}

TEST(ChannelTest, CommitShorterThanReserved) {
  Pair p = MakePair({.capacity = 4096});
  Result<MutableBytes> buf = p.tx->Reserve(100, Deadline::Now());
  ASSERT_TRUE(buf.ok());
  std::memcpy(buf->data(), "abc", 3);
  ASSERT_TRUE(p.tx->Commit(3).ok());
  EXPECT_EQ(ReadString(*p.rx), "abc");
  EXPECT_EQ(p.tx->Commit(1).code(), Code::kInvalidArgument);  // no reserve
  ASSERT_TRUE(p.tx->Reserve(4, Deadline::Now()).ok());
  EXPECT_EQ(p.tx->Reserve(4, Deadline::Now()).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(p.tx->Commit(5).code(), Code::kInvalidArgument);
  ASSERT_TRUE(p.tx->Commit(0).ok());
  EXPECT_EQ(ReadString(*p.rx), "");
}

TEST(ChannelTest, RejectsRecordLargerThanMaxAtOnce) {
  Pair p = MakePair({.capacity = 4096, .max_record = 100});
  Status s = p.tx->Reserve(101, Deadline::Never()).status();  // must not block
  EXPECT_EQ(s.code(), Code::kTooLarge);
  EXPECT_NE(s.message().find("max_record 100"), std::string::npos);
  std::vector<uint8_t> big(101);
  EXPECT_EQ(p.tx->Write(ByteView(big), Deadline::Never()).code(), Code::kTooLarge);
  EXPECT_TRUE(p.tx->Write(ByteView(big.data(), 100), Deadline::Now()).ok());
}

TEST(ChannelTest, RejectsBadOptions) {
  std::string name = UniqueName("opts");
  EXPECT_EQ(Channel::Create(name, {.capacity = 4096, .max_record = 4096}).status().code(),
            Code::kInvalidArgument);
  EXPECT_EQ(Channel::Create("bad/name", {}).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(Channel::Open(UniqueName("missing"), Role::kConsumer).status().code(), Code::kNotFound);
}

TEST(ChannelTest, RejectsACapacityTooSmallForAnyRecord) {
  // Too small for one record: refused at create, never a max_record that wraps around.
  for (size_t capacity : {0, 8, 16, 64, 128, 143}) {
    auto ch = Channel::Create(UniqueName("tiny"), {.capacity = capacity});
    ASSERT_FALSE(ch.ok()) << capacity;
    EXPECT_EQ(ch.status().code(), Code::kInvalidArgument) << capacity;
    EXPECT_NE(ch.status().message().find("144"), std::string::npos) << ch.status().ToString();
  }
  // The smallest accepted ring carries records, and says how large.
  Pair p = MakePair({.capacity = 144});
  EXPECT_EQ(p.tx->max_record(), 8u);
  ASSERT_TRUE(p.tx->Write(AsBytes(std::string("12345678")), Deadline::AfterMs(100)).ok());
  auto rec = p.rx->Read(Deadline::AfterMs(100));
  ASSERT_TRUE(rec.ok());
  EXPECT_EQ(rec->size(), 8u);
}

TEST(ChannelTest, RolesAreExclusiveWhileAlive) {
  Pair p = MakePair({.capacity = 4096});
  EXPECT_EQ(Channel::Open(p.name, Role::kConsumer).status().code(), Code::kBusy);
  EXPECT_EQ(Channel::Open(p.name, Role::kProducer).status().code(), Code::kBusy);
  EXPECT_EQ(p.rx->Reserve(1, Deadline::Now()).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(p.tx->Read(Deadline::Now()).status().code(), Code::kInvalidArgument);
  // A closed role can be taken again.
  ASSERT_TRUE(p.rx->Close().ok());
  auto again = Channel::Open(p.name, Role::kConsumer);
  EXPECT_TRUE(again.ok()) << again.status().ToString();
}

TEST(ChannelTest, OpeningAnotherKindFails) {
  std::string name = UniqueName("kind");
  auto seg = Segment::Create(name, SegmentKind::kPool, 1, 8192);
  ASSERT_TRUE(seg.ok());
  seg->Publish();
  EXPECT_EQ(Channel::Open(name, Role::kConsumer).status().code(), Code::kWrongKind);
  ASSERT_TRUE(Segment::Unlink(name).ok());
}

TEST(ChannelTest, CorruptConfigIsRejected) {
  Pair p = MakePair({.capacity = 4096});
  // Overwrite the config's capacity (offset 192) with one that does not fit the segment.
  auto seg = Segment::Open(p.name, 1, 1);
  ASSERT_TRUE(seg.ok());
  uint64_t huge = uint64_t{1} << 40;
  std::memcpy(seg->base() + 192, &huge, 8);
  ASSERT_TRUE(p.rx->Close().ok());
  Status s = Channel::Open(p.name, Role::kConsumer).status();
  EXPECT_EQ(s.code(), Code::kCorrupt);
  EXPECT_NE(s.message().find("capacity"), std::string::npos) << s.ToString();
}

TEST(ChannelTest, CorruptRecordHeaderIsReportedNotFollowed) {
  Pair p = MakePair({.capacity = 4096, .max_record = 100});
  ASSERT_TRUE(p.tx->Write(AsBytes("abc"), Deadline::Now()).ok());
  auto seg = Segment::Open(p.name, 1, 1);
  ASSERT_TRUE(seg.ok());
  uint32_t bogus = 5000;  // above max_record
  std::memcpy(seg->base() + 4096, &bogus, 4);
  EXPECT_EQ(p.rx->Read(Deadline::Now()).status().code(), Code::kCorrupt);
  EXPECT_EQ(p.rx->Read(Deadline::Now()).status().code(), Code::kCorrupt);
}

TEST(ChannelTest, RecordsNeverSplitAtTheWrap) {
  Pair p = MakePair({.capacity = 400, .max_record = 100});
  for (int i = 0; i < 200; ++i) {
    std::vector<uint8_t> rec(1 + (i * 37) % 100, static_cast<uint8_t>(i));
    ASSERT_TRUE(p.tx->Write(ByteView(rec), Deadline::Now()).ok()) << i;
    Result<ByteView> v = p.rx->Read(Deadline::Now());
    ASSERT_TRUE(v.ok());
    ASSERT_EQ(v->size(), rec.size());
    EXPECT_EQ(std::memcmp(v->data(), rec.data(), rec.size()), 0);
    ASSERT_TRUE(p.rx->Release().ok());
  }
}

TEST(ChannelTest, LargePayloadsAre64ByteAligned) {
  Pair p = MakePair({.capacity = 1 << 20});
  for (size_t n : {size_t{1}, size_t{4096}, size_t{3}, size_t{10000}, size_t{5000}, size_t{7}}) {
    auto buf = p.tx->Reserve(n, Deadline::Now());
    ASSERT_TRUE(buf.ok());
    if (n >= 4096) EXPECT_EQ(reinterpret_cast<uintptr_t>(buf->data()) % 64, 0u) << n;
    std::memset(buf->data(), static_cast<int>(n & 0xFF), n);
    ASSERT_TRUE(p.tx->Commit(n).ok());
  }
  for (size_t n : {size_t{1}, size_t{4096}, size_t{3}, size_t{10000}, size_t{5000}, size_t{7}}) {
    auto v = p.rx->Read(Deadline::Now());
    ASSERT_TRUE(v.ok());
    ASSERT_EQ(v->size(), n);
    if (n >= 4096) EXPECT_EQ(reinterpret_cast<uintptr_t>(v->data()) % 64, 0u) << n;
    EXPECT_EQ((*v)[n - 1], static_cast<uint8_t>(n & 0xFF));
    ASSERT_TRUE(p.rx->Release().ok());
  }
}

TEST(ChannelTest, SeveralBorrowsAtOnce) {
  Pair p = MakePair({.capacity = 4096});
  for (const char* s : {"one", "two", "three"}) ASSERT_TRUE(p.tx->Write(AsBytes(s), Deadline::Now()).ok());
  auto a = p.rx->Read(Deadline::Now());
  auto b = p.rx->Read(Deadline::Now());
  auto c = p.rx->Read(Deadline::Now());
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(p.rx->held(), 3u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(a->data()), a->size()), "one");
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(c->data()), c->size()), "three");
  EXPECT_EQ(p.rx->Release(4).code(), Code::kInvalidArgument);
  ASSERT_TRUE(p.rx->Release(2).ok());
  EXPECT_EQ(p.rx->held(), 1u);
  ASSERT_TRUE(p.rx->Release().ok());
}

TEST(ChannelTest, FullRingBlocksThenTimesOut) {
  Pair p = MakePair({.capacity = 256, .max_record = 64});
  int written = 0;
  while (p.tx->Write(ByteView(std::vector<uint8_t>(56).data(), 56), Deadline::Now()).ok()) ++written;
  EXPECT_EQ(written, 4);  // 4 x 64 bytes
  Status s = p.tx->Write(AsBytes("x"), Deadline::AfterMs(30));
  EXPECT_EQ(s.code(), Code::kTimeout);
  EXPECT_EQ(p.tx->Write(AsBytes("x"), Deadline::Now()).code(), Code::kWouldBlock);
  ASSERT_TRUE(p.rx->Read(Deadline::Now()).ok());
  ASSERT_TRUE(p.rx->Release().ok());
  EXPECT_TRUE(p.tx->Write(AsBytes("x"), Deadline::Now()).ok());
  EXPECT_EQ(p.tx->Stats().drops_newest, 0u);
}

TEST(ChannelTest, DropNewestCountsAndNeverBlocks) {
  Pair p = MakePair({.capacity = 256, .max_record = 56, .overflow = Overflow::kDropNewest});
  for (int i = 0; i < 10; ++i) {
    std::vector<uint8_t> rec(56, static_cast<uint8_t>(i));
    ASSERT_TRUE(p.tx->Write(ByteView(rec), Deadline::Never()).ok());
  }
  EXPECT_EQ(p.tx->Stats().drops_newest, 6u);
  for (int i = 0; i < 4; ++i) {
    auto v = p.rx->Read(Deadline::Now());
    ASSERT_TRUE(v.ok());
    EXPECT_EQ((*v)[0], i);  // the oldest four survive
    ASSERT_TRUE(p.rx->Release().ok());
  }
  EXPECT_EQ(p.rx->Read(Deadline::Now()).status().code(), Code::kWouldBlock);
}

TEST(ChannelTest, FailRefusesAtOnceWhenFullAndLosesNothing) {
  Pair p = MakePair({.capacity = 256, .max_record = 56, .overflow = Overflow::kFail});
  int written = 0;
  for (int i = 0; i < 10; ++i) {
    std::vector<uint8_t> rec(56, static_cast<uint8_t>(i));
    Status s = p.tx->Write(ByteView(rec), Deadline::Never());  // never waits, whatever the deadline
    if (!s.ok()) {
      EXPECT_EQ(s.code(), Code::kResourceExhausted);
      break;
    }
    ++written;
  }
  EXPECT_EQ(written, 4);
  for (int i = 0; i < 4; ++i) {
    auto v = p.rx->Read(Deadline::Now());
    ASSERT_TRUE(v.ok());
    EXPECT_EQ((*v)[0], i);
    ASSERT_TRUE(p.rx->Release().ok());
  }
  EXPECT_EQ(p.rx->Read(Deadline::Now()).status().code(), Code::kWouldBlock);
  EXPECT_TRUE(p.tx->Write(AsBytes("again"), Deadline::Now()).ok());  // room again
}

TEST(ChannelTest, DropOldestKeepsTheNewest) {
  Pair p = MakePair({.capacity = 256, .max_record = 56, .overflow = Overflow::kDropOldest});
  for (int i = 0; i < 10; ++i) {
    std::vector<uint8_t> rec(56, static_cast<uint8_t>(i));
    ASSERT_TRUE(p.tx->Write(ByteView(rec), Deadline::Never()).ok());
  }
  EXPECT_EQ(p.tx->Stats().drops_oldest, 6u);
  for (int i = 6; i < 10; ++i) {
    auto v = p.rx->Read(Deadline::Now());
    ASSERT_TRUE(v.ok());
    EXPECT_EQ((*v)[0], i);
    ASSERT_TRUE(p.rx->Release().ok());
  }
  EXPECT_EQ(p.rx->Read(Deadline::Now()).status().code(), Code::kWouldBlock);
}

TEST(ChannelTest, DropOldestNeverOverwritesAHeldRecord) {
  Pair p = MakePair({.capacity = 256, .max_record = 56, .overflow = Overflow::kDropOldest});
  std::vector<uint8_t> first(56, 0xAA);
  ASSERT_TRUE(p.tx->Write(ByteView(first), Deadline::Now()).ok());
  auto held = p.rx->Read(Deadline::Now());
  ASSERT_TRUE(held.ok());
  for (int i = 0; i < 20; ++i) {
    std::vector<uint8_t> rec(56, static_cast<uint8_t>(i));
    ASSERT_TRUE(p.tx->Write(ByteView(rec), Deadline::Now()).ok());
  }
  for (size_t i = 0; i < 56; ++i) ASSERT_EQ((*held)[i], 0xAA) << i;
  // The held record pins the ring: the three records behind it fit, the other 17 are
  // dropped as newest since nothing older can be freed.
  ChannelSnapshot st = p.tx->Stats();
  EXPECT_EQ(st.drops_newest, 17u);
  ASSERT_TRUE(p.rx->Release().ok());
  int last = -1;
  while (true) {
    auto v = p.rx->Read(Deadline::Now());
    if (!v.ok()) break;
    EXPECT_GT(static_cast<int>((*v)[0]), last);
    last = (*v)[0];
    ASSERT_TRUE(p.rx->Release().ok());
  }
  EXPECT_EQ(last, 2);
}

TEST(ChannelTest, BatchedCommitsPublishOnFlush) {
  Pair p = MakePair({.capacity = 4096});
  for (int i = 0; i < 5; ++i) {
    auto buf = p.tx->Reserve(1, Deadline::Now());
    ASSERT_TRUE(buf.ok());
    (*buf)[0] = static_cast<uint8_t>(i);
    ASSERT_TRUE(p.tx->CommitBatched(1).ok());
  }
  EXPECT_EQ(p.rx->Read(Deadline::Now()).status().code(), Code::kWouldBlock);
  p.tx->Flush();
  for (int i = 0; i < 5; ++i) {
    auto v = p.rx->Read(Deadline::Now());
    ASSERT_TRUE(v.ok());
    EXPECT_EQ((*v)[0], i);
  }
  ASSERT_TRUE(p.rx->Release(5).ok());
  std::vector<ByteView> recs = {AsBytes("a"), AsBytes("bb"), AsBytes("ccc")};
  auto n = p.tx->WriteBatch(recs, Deadline::Now());
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 3u);
  EXPECT_EQ(ReadString(*p.rx), "a");
  EXPECT_EQ(ReadString(*p.rx), "bb");
  EXPECT_EQ(ReadString(*p.rx), "ccc");
}

TEST(ChannelTest, ReadIntoCopiesAndKeepsOversizeRecord) {
  Pair p = MakePair({.capacity = 4096});
  ASSERT_TRUE(p.tx->Write(AsBytes("0123456789"), Deadline::Now()).ok());
  uint8_t small[4];
  EXPECT_EQ(p.rx->ReadInto(MutableBytes(small, 4), Deadline::Now()).status().code(), Code::kTooLarge);
  uint8_t big[32];
  auto n = p.rx->ReadInto(MutableBytes(big, 32), Deadline::Now());
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 10u);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(big), 10), "0123456789");
  EXPECT_EQ(p.rx->held(), 0u);
}

TEST(ChannelTest, ConsumerSeesClosedAfterDraining) {
  Pair p = MakePair({.capacity = 4096});
  ASSERT_TRUE(p.tx->Write(AsBytes("last"), Deadline::Now()).ok());
  ASSERT_TRUE(p.tx->Close().ok());
  EXPECT_EQ(ReadString(*p.rx), "last");
  EXPECT_EQ(p.rx->Read(Deadline::AfterMs(1000)).status().code(), Code::kClosed);
  EXPECT_EQ(p.tx->Write(AsBytes("x"), Deadline::Now()).code(), Code::kClosed);
}

TEST(ChannelTest, BlockedReaderWakesOnCommit) {
  // A long liveness interval: the sleep can only end by the producer's wake.
  Pair p = MakePair({.capacity = 4096}, WaitPolicy{.spin_ns = 0, .adaptive = false, .liveness_check_ns = 10'000'000'000});
  std::thread t([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    ASSERT_TRUE(p.tx->Write(AsBytes("wake"), Deadline::Now()).ok());
  });
  EXPECT_EQ(ReadString(*p.rx, Deadline::AfterMs(5000)), "wake");
  t.join();
  EXPECT_GE(p.rx->Stats().consumer_sleeps, 1u);
  EXPECT_GE(p.rx->Stats().producer_wakes, 1u);
}

TEST(ChannelTest, WaitFdTurnsReadableOnCommit) {
  Pair p = MakePair({.capacity = 4096});
  auto fd = p.rx->WaitFd();
  ASSERT_TRUE(fd.ok()) << fd.status().ToString();
  EXPECT_EQ(p.rx->Read(Deadline::Now()).status().code(), Code::kWouldBlock);  // arms
  pollfd pfd{*fd, POLLIN, 0};
  EXPECT_EQ(::poll(&pfd, 1, 0), 0);
  ASSERT_TRUE(p.tx->Write(AsBytes("ding"), Deadline::Now()).ok());
  EXPECT_EQ(::poll(&pfd, 1, 5000), 1);
  EXPECT_EQ(ReadString(*p.rx, Deadline::Now()), "ding");
  EXPECT_EQ(p.tx->Stats().producer_bells, 1u);
  // Not armed: a commit rings no bell.
  ASSERT_TRUE(p.tx->Write(AsBytes("quiet"), Deadline::Now()).ok());
  EXPECT_EQ(p.tx->Stats().producer_bells, 1u);
}

// A descriptor asked for after a non-blocking read already missed: the loop of an event library
// (poll when readable, read until kWouldBlock) still sees the next record.
TEST(ChannelTest, ADescriptorMadeAfterAMissStillWakes) {
  Pair p = MakePair({.capacity = 4096});
  EXPECT_EQ(p.rx->Read(Deadline::Now()).status().code(), Code::kWouldBlock);  // before any descriptor
  auto fd = p.rx->WaitFd();
  ASSERT_TRUE(fd.ok());
  pollfd pfd{*fd, POLLIN, 0};
  ASSERT_EQ(::poll(&pfd, 1, 5000), 1);  // it starts readable
  EXPECT_EQ(p.rx->Read(Deadline::Now()).status().code(), Code::kWouldBlock);  // nothing yet: arms
  EXPECT_EQ(::poll(&pfd, 1, 0), 0);
  ASSERT_TRUE(p.tx->Write(AsBytes("late"), Deadline::Now()).ok());
  EXPECT_EQ(::poll(&pfd, 1, 5000), 1);
  EXPECT_EQ(ReadString(*p.rx, Deadline::Now()), "late");
}

TEST(ChannelTest, ManyChannelsWithOnePoll) {
  std::vector<Pair> pairs;
  std::vector<pollfd> fds;
  for (int i = 0; i < 4; ++i) {
    pairs.push_back(MakePair({.capacity = 4096}));
    auto fd = pairs.back().rx->WaitFd();
    ASSERT_TRUE(fd.ok());
    fds.push_back({*fd, POLLIN, 0});
    EXPECT_EQ(pairs.back().rx->Read(Deadline::Now()).status().code(), Code::kWouldBlock);
  }
  ASSERT_TRUE(pairs[2].tx->Write(AsBytes("third"), Deadline::Now()).ok());
  ASSERT_EQ(::poll(fds.data(), fds.size(), 5000), 1);
  EXPECT_EQ(fds[2].revents & POLLIN, POLLIN);
  EXPECT_EQ(ReadString(*pairs[2].rx, Deadline::Now()), "third");
}

// The hot path takes no lock and makes no system call while the peer is awake: with a
// consumer that busy-polls (never sleeps), the producer issues no futex wake and no bell,
// and neither side ever sleeps.
TEST(ChannelTest, HotPathMakesNoSyscallWhileConsumerIsAwake) {
  Pair p = MakePair({.capacity = 1 << 16});
  constexpr int kRecords = 200'000;
  std::thread consumer([&] {
    int got = 0;
    while (got < kRecords) {
      auto v = p.rx->Read(Deadline::Now());
      if (!v.ok()) continue;
      ASSERT_TRUE(p.rx->Release().ok());
      ++got;
    }
  });
  uint8_t rec[64] = {};
  for (int i = 0; i < kRecords;) {
    if (p.tx->Write(ByteView(rec, 64), Deadline::Now()).ok()) ++i;
  }
  consumer.join();
  ChannelSnapshot st = p.tx->Stats();
  EXPECT_EQ(st.records_in, static_cast<uint64_t>(kRecords));
  EXPECT_EQ(st.records_out, static_cast<uint64_t>(kRecords));
  EXPECT_EQ(st.producer_wakes, 0u);
  EXPECT_EQ(st.consumer_wakes, 0u);
  EXPECT_EQ(st.producer_sleeps, 0u);
  EXPECT_EQ(st.consumer_sleeps, 0u);
  EXPECT_EQ(st.producer_bells + st.consumer_bells, 0u);
}

TEST(ChannelTest, SnapshotReadsWithoutAttaching) {
  Pair p = MakePair({.capacity = 4096});
  ASSERT_TRUE(p.tx->Write(AsBytes("abc"), Deadline::Now()).ok());
  auto snap = Channel::Snapshot(p.name);
  ASSERT_TRUE(snap.ok());
  EXPECT_EQ(snap->records_in, 1u);
  EXPECT_EQ(snap->bytes_in, 3u);
  EXPECT_EQ(snap->producer.state, "attached");
  EXPECT_TRUE(snap->producer.alive);
  EXPECT_EQ(snap->consumer.pid, ::getpid());
  EXPECT_EQ(snap->write_pos, 16u);
  // The snapshot detached cleanly: the roles are still held.
  EXPECT_EQ(Channel::Open(p.name, Role::kConsumer).status().code(), Code::kBusy);
}

}  // namespace
}  // namespace weft::shm
