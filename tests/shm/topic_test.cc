// Topics: fan-out in order, several publishers, history for late joiners, every overflow
// policy with exact counters, and crashes of subscribers and publishers (with controls).
#include "weft/shm/topic.h"

#include <poll.h>
#include <signal.h>
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <thread>

#include <gtest/gtest.h>

#include "shm/internal/channel_layout.h"
#include "shm/test_util.h"

namespace weft::shm {
namespace {

using weft::testing::Join;
using weft::testing::Spawn;
using weft::testing::UniqueName;

struct TopicName {
  std::string name = UniqueName("topic");
  ~TopicName() {
    Segment::Unlink(name).IgnoreError();
    Pool::Unlink(name + ".pool").IgnoreError();
  }
};

TopicOptions Small(uint32_t depth = 64, uint32_t history = 0) {
  TopicOptions o;
  o.queue_depth = depth;
  o.history = history;
  o.pool.bytes = 1 << 20;
  return o;
}

void Fill(MutableBytes d, size_t n, uint64_t seq) {
  for (size_t i = 0; i < n; ++i) d[i] = static_cast<uint8_t>(seq * 7 + i);
}
bool Intact(ByteView d, size_t n, uint64_t seq) {
  if (d.size() != n) return false;
  for (size_t i = 0; i < n; ++i) {
    if (d[i] != static_cast<uint8_t>(seq * 7 + i)) return false;
  }
  return true;
}

Status PublishOne(Publisher& pub, uint64_t seq, size_t n, Deadline d = Deadline::AfterMs(10'000)) {
  auto s = pub.Loan(n);
  if (!s.ok()) return s.status();
  Fill(s->data, n, seq);
  return pub.Publish(*s, n, d);
}

uint64_t PoolInUse(const std::string& topic) {
  auto s = Pool::Snapshot(topic + ".pool");
  return s.ok() ? s->blocks_in_use + s->large_in_use : 999;
}

std::atomic<int>* SharedInt() {
  void* p = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  return new (p) std::atomic<int>(0);
}

TEST(TopicTest, FanOutToSubscribersInOtherProcessesInOrder) {
  TopicName t;
  // Deep enough that the in-process subscriber, which reads only at the end, never blocks us.
  auto pub = Publisher::Open(t.name, Small(4096)).value();
  std::atomic<int>* ready = SharedInt();
  constexpr int kSamples = 2000;
  auto consume = [&] {
    auto sub = Subscriber::Open(t.name);
    if (!sub.ok()) return 10;
    ready->fetch_add(1);
    for (int i = 1; i <= kSamples; ++i) {
      auto s = (*sub)->Take(Deadline::AfterMs(10'000));
      if (!s.ok()) return 11;
      if (s->seq != static_cast<uint64_t>(i) || !Intact(s->data, 100 + i % 500, i)) return 12;
      if (!(*sub)->Release(*s).ok()) return 13;
    }
    return 0;
  };
  pid_t a = Spawn(consume), b = Spawn(consume);
  auto local = Subscriber::Open(t.name).value();
  ASSERT_TRUE(weft::testing::WaitFor([&] { return ready->load() >= 2; }, 0));
  EXPECT_EQ(pub->subscribers_approx(), 3);
  for (int i = 1; i <= kSamples; ++i) ASSERT_TRUE(PublishOne(*pub, i, 100 + i % 500).ok()) << i;
  for (int i = 1; i <= kSamples; ++i) {
    auto s = local->Take(Deadline::AfterMs(10'000));
    ASSERT_TRUE(s.ok());
    ASSERT_EQ(s->seq, static_cast<uint64_t>(i));
    ASSERT_TRUE(local->Release(*s).ok());
  }
  EXPECT_EQ(Join(a), 0);
  EXPECT_EQ(Join(b), 0);
  EXPECT_EQ(local->counters().taken, static_cast<uint64_t>(kSamples));
  EXPECT_EQ(PoolInUse(t.name), 0u);  // every block freed by its last reader
}

TEST(TopicTest, SeveralPublishersKeepTheirOwnOrder) {
  TopicName t;
  auto p1 = Publisher::Open(t.name, Small()).value();
  auto p2 = Publisher::Open(t.name).value();
  auto sub = Subscriber::Open(t.name).value();
  for (int i = 1; i <= 30; ++i) {
    ASSERT_TRUE(PublishOne(*p1, i, 64).ok());
    if (i % 3 == 0) ASSERT_TRUE(PublishOne(*p2, i, 64).ok());
  }
  uint64_t last[2] = {0, 0};
  int got[2] = {0, 0};
  for (int k = 0; k < 40; ++k) {
    auto s = sub->Take(Deadline::Now());
    ASSERT_TRUE(s.ok()) << k;
    const int which = s->publisher == p1->index() ? 0 : 1;
    EXPECT_GT(s->seq, last[which]);
    last[which] = s->seq;
    ++got[which];
    ASSERT_TRUE(sub->Release(*s).ok());
  }
  EXPECT_EQ(got[0], 30);
  EXPECT_EQ(got[1], 10);
  EXPECT_EQ(sub->Take(Deadline::Now()).status().code(), Code::kWouldBlock);
}

TEST(TopicTest, APublisherNeverSendsToTheSubscriberItExcludes) {
  TopicName t;
  auto pub = Publisher::Open(t.name, Small()).value();
  auto own = Subscriber::Open(t.name).value();
  auto other = Subscriber::Open(t.name).value();
  pub->ExcludeSubscriber(own->index());
  for (int i = 1; i <= 5; ++i) ASSERT_TRUE(PublishOne(*pub, i, 64).ok());
  EXPECT_EQ(own->Take(Deadline::Now()).status().code(), Code::kWouldBlock);
  for (int i = 1; i <= 5; ++i) {
    auto s = other->Take(Deadline::Now());
    ASSERT_TRUE(s.ok()) << i;
    EXPECT_TRUE(Intact(ByteView(s->data.data(), s->data.size()), 64, static_cast<uint64_t>(i)));
    ASSERT_TRUE(other->Release(*s).ok());
  }
  pub->ExcludeSubscriber(-1);  // the control: delivered to both again
  ASSERT_TRUE(PublishOne(*pub, 6, 64).ok());
  auto s = own->Take(Deadline::Now());
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE(own->Release(*s).ok());
}

TEST(TopicTest, LateJoinerGetsTheHistoryFirst) {
  TopicName t;
  auto pub = Publisher::Open(t.name, Small(64, 4)).value();
  for (int i = 1; i <= 10; ++i) ASSERT_TRUE(PublishOne(*pub, i, 200).ok());
  EXPECT_EQ(PoolInUse(t.name), 4u);  // the publisher keeps the last 4
  auto sub = Subscriber::Open(t.name, {.history = 3}).value();
  ASSERT_TRUE(PublishOne(*pub, 11, 200).ok());
  for (uint64_t want : {8, 9, 10, 11}) {
    auto s = sub->Take(Deadline::AfterMs(1000));
    ASSERT_TRUE(s.ok());
    EXPECT_EQ(s->seq, want);
    EXPECT_TRUE(Intact(s->data, 200, want));
    ASSERT_TRUE(sub->Release(*s).ok());
  }
  auto none = Subscriber::Open(t.name).value();  // asks for no history
  EXPECT_EQ(none->Take(Deadline::Now()).status().code(), Code::kWouldBlock);
}

// Takes the samples with sequence numbers first..last from `sub`, in order, checking each.
void ExpectSeqs(Subscriber& sub, uint64_t first, uint64_t last, size_t size = 64) {
  for (uint64_t want = first; want <= last; ++want) {
    auto s = sub.Take(Deadline::Now());
    ASSERT_TRUE(s.ok()) << want;
    EXPECT_EQ(s->seq, want);
    EXPECT_TRUE(Intact(s->data, size, want));
    ASSERT_TRUE(sub.Release(*s).ok());
  }
}

TEST(TopicTest, OverflowPoliciesCountExactly) {
  TopicName t;
  auto pub = Publisher::Open(t.name, Small(4)).value();
  auto newest = Subscriber::Open(t.name, {.on_full = Overflow::kDropNewest}).value();
  auto oldest = Subscriber::Open(t.name, {.on_full = Overflow::kDropOldest}).value();
  for (int i = 1; i <= 10; ++i) ASSERT_TRUE(PublishOne(*pub, i, 64, Deadline::Now()).ok());
  EXPECT_EQ(newest->counters().drops_newest, 6u);
  EXPECT_EQ(oldest->counters().drops_oldest, 6u);
  ExpectSeqs(*newest, 1, 4);
  ExpectSeqs(*oldest, 7, 10);
  EXPECT_EQ(PoolInUse(t.name), 0u);  // dropped samples were freed too
  // A blocking subscriber makes the publisher wait, then time out.
  auto slow = Subscriber::Open(t.name, {.on_full = Overflow::kBlock}).value();
  for (int i = 11; i <= 14; ++i) ASSERT_TRUE(PublishOne(*pub, i, 64, Deadline::Now()).ok());
  EXPECT_EQ(PublishOne(*pub, 15, 64, Deadline::AfterMs(30)).code(), Code::kTimeout);
  auto s = slow->Take(Deadline::Now());
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE(slow->Release(*s).ok());
  EXPECT_TRUE(PublishOne(*pub, 15, 64, Deadline::Now()).ok());
}

// A subscriber whose policy is fail refuses a publish while its queue is full: the publisher
// gets ResourceExhausted at once and nobody (not even a subscriber with room) gets the sample.
TEST(TopicTest, AFailSubscriberRefusesThePublishForEveryone) {
  TopicName t;
  auto pub = Publisher::Open(t.name, Small(4)).value();
  auto strict = Subscriber::Open(t.name, {.on_full = Overflow::kFail}).value();
  auto other = Subscriber::Open(t.name, {.on_full = Overflow::kDropOldest}).value();
  for (int i = 1; i <= 4; ++i) ASSERT_TRUE(PublishOne(*pub, i, 64, Deadline::Never()).ok());
  EXPECT_EQ(PublishOne(*pub, 5, 64, Deadline::Never()).code(), Code::kResourceExhausted);
  EXPECT_EQ(strict->counters().drops_newest, 1u);
  EXPECT_EQ(other->counters().drops_oldest, 0u);  // nothing was dropped for the other either
  ExpectSeqs(*other, 1, 4);
  EXPECT_EQ(other->Take(Deadline::Now()).status().code(), Code::kWouldBlock);  // the refused one never came
  auto s = strict->Take(Deadline::Now());
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE(strict->Release(*s).ok());
  ASSERT_TRUE(PublishOne(*pub, 5, 64, Deadline::Now()).ok());  // room again
  ExpectSeqs(*other, 5, 5);  // no hole: the refused publish took no sequence number
}

TEST(TopicTest, WaitFdTurnsReadableOnPublish) {
  TopicName t;
  auto pub = Publisher::Open(t.name, Small()).value();
  auto sub = Subscriber::Open(t.name).value();
  auto fd = sub->WaitFd();
  ASSERT_TRUE(fd.ok()) << fd.status().ToString();
  EXPECT_EQ(sub->Take(Deadline::Now()).status().code(), Code::kWouldBlock);  // arms
  pollfd p{*fd, POLLIN, 0};
  EXPECT_EQ(::poll(&p, 1, 0), 0);
  ASSERT_TRUE(PublishOne(*pub, 1, 64).ok());
  EXPECT_EQ(::poll(&p, 1, 5000), 1);
  auto s = sub->Take(Deadline::Now());
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE(sub->Release(*s).ok());
}

// A descriptor asked for after a Take already missed still wakes the loop of an event library.
TEST(TopicTest, ADescriptorMadeAfterAMissStillWakes) {
  TopicName t;
  auto pub = Publisher::Open(t.name, Small()).value();
  auto sub = Subscriber::Open(t.name).value();
  EXPECT_EQ(sub->Take(Deadline::Now()).status().code(), Code::kWouldBlock);  // before any descriptor
  auto fd = sub->WaitFd();
  ASSERT_TRUE(fd.ok());
  pollfd p{*fd, POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 5000), 1);  // it starts readable
  EXPECT_EQ(sub->Take(Deadline::Now()).status().code(), Code::kWouldBlock);  // arms
  EXPECT_EQ(::poll(&p, 1, 0), 0);
  ASSERT_TRUE(PublishOne(*pub, 1, 64).ok());
  EXPECT_EQ(::poll(&p, 1, 5000), 1);
  auto s = sub->Take(Deadline::Now());
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE(sub->Release(*s).ok());
}

TEST(TopicTest, TakeWaitsForAPublishInAnotherProcess) {
  TopicName t;
  auto sub = Subscriber::Open(t.name, {}, Small()).value();
  pid_t child = Spawn([&] {
    auto pub = Publisher::Open(t.name);
    if (!pub.ok()) return 1;
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    return PublishOne(**pub, 1, 1000).ok() ? 0 : 2;
  });
  auto s = sub->Take(Deadline::AfterMs(10'000));
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_TRUE(Intact(s->data, 1000, 1));
  ASSERT_TRUE(sub->Release(*s).ok());
  EXPECT_EQ(Join(child), 0);
}

// A subscriber killed while holding samples and with samples queued: the publisher goes on
// (a dead blocking subscriber is skipped), and recovery frees everything it held.
uint64_t KillSubscriber(bool recover) {
  TopicName t;
  auto pub = Publisher::Open(t.name, Small(8)).value();
  // Attached before the kill, so that it cannot take over the dead holder's slot itself.
  auto pool = Pool::Open(t.name + ".pool").value();
  std::atomic<int>* ready = SharedInt();
  pid_t child = Spawn([&] {
    auto sub = Subscriber::Open(t.name, {.on_full = Overflow::kBlock});
    if (!sub.ok()) return 1;
    ready->store(1);
    const int64_t give_up = MonotonicNs() + 60'000'000'000;
    while (ready->load() != 2 && MonotonicNs() < give_up) {
    }
    for (int i = 0; i < 3; ++i) (void)(*sub)->Take(Deadline::AfterMs(5000));  // held, never released
    ready->store(3);
    for (;;) ::pause();
    return 0;
  });
  EXPECT_TRUE(weft::testing::WaitFor([&] { return ready->load() == 1; }, child));
  for (int i = 1; i <= 8; ++i) EXPECT_TRUE(PublishOne(*pub, i, 64, Deadline::Now()).ok());
  ready->store(2);
  EXPECT_TRUE(weft::testing::WaitFor([&] { return ready->load() == 3; }, child));
  ::kill(child, SIGKILL);
  Join(child);
  // The dead subscriber's queue has 5 entries and room for 3 more; publishing past that must
  // not block on it.
  for (int i = 9; i <= 20; ++i) EXPECT_TRUE(PublishOne(*pub, i, 64, Deadline::AfterMs(2000)).ok()) << i;
  if (recover) EXPECT_EQ(pool->RecoverDead(), 1u);
  return PoolInUse(t.name);
}

TEST(TopicCrashTest, KilledSubscribersHoldsComeBack) { EXPECT_EQ(KillSubscriber(true), 0u); }

// Without recovery the dead subscriber still holds 3 taken + 5 queued + 3 queued after its death.
TEST(TopicCrashTest, NegativeControlWithoutRecoveryTheHoldsStay) { EXPECT_EQ(KillSubscriber(false), 11u); }

TEST(TopicCrashTest, PublisherKilledMidLoanLosesNothingForOthers) {
  TopicName t;
  auto sub = Subscriber::Open(t.name, {}, Small()).value();
  auto pool = Pool::Open(t.name + ".pool").value();  // attached before the kill
  std::atomic<int>* ready = SharedInt();
  pid_t child = Spawn([&] {
    auto pub = Publisher::Open(t.name);
    if (!pub.ok()) return 1;
    if (!PublishOne(**pub, 1, 300).ok()) return 2;
    auto loan = (*pub)->Loan(5000);  // never published
    if (!loan.ok()) return 3;
    ready->store(1);
    for (;;) ::pause();
    return 0;
  });
  ASSERT_TRUE(weft::testing::WaitFor([&] { return ready->load() == 1; }, child));
  ::kill(child, SIGKILL);
  Join(child);
  auto s = sub->Take(Deadline::AfterMs(1000));
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE(Intact(s->data, 300, 1));  // the published sample is intact, still held by us
  EXPECT_EQ(PoolInUse(t.name), 2u);    // ours and the dead publisher's loan
  EXPECT_EQ(pool->RecoverDead(), 1u);  // the loan comes back
  EXPECT_EQ(PoolInUse(t.name), 1u);    // only the sample we hold
  ASSERT_TRUE(sub->Release(*s).ok());
  EXPECT_EQ(PoolInUse(t.name), 0u);
}

TEST(TopicRegistryTest, TopicsAreFoundByNameRacesAndDeathsIncluded) {
  TopicName a, b;
  // Several processes open the same two topics at once; one dies right after.
  std::vector<pid_t> kids;
  for (int k = 0; k < 4; ++k) {
    kids.push_back(Spawn([&, k] {
      auto p = Publisher::Open(k % 2 ? a.name : b.name, Small());
      if (!p.ok()) return 1;
      if (k == 3) ::kill(::getpid(), SIGKILL);
      return 0;
    }));
  }
  int killed = 0;
  for (pid_t k : kids) killed += Join(k) == 128 + SIGKILL;
  EXPECT_EQ(killed, 1);
  auto names = ListTopics();
  ASSERT_TRUE(names.ok()) << names.status().ToString();
  EXPECT_EQ(std::count(names->begin(), names->end(), a.name), 1);
  EXPECT_EQ(std::count(names->begin(), names->end(), b.name), 1);
  // A removed topic is no longer listed.
  ASSERT_TRUE(Segment::Unlink(a.name).ok());
  names = ListTopics();
  ASSERT_TRUE(names.ok());
  EXPECT_EQ(std::count(names->begin(), names->end(), a.name), 0);
}

std::string RegistryOfThisUser() { return "registry." + std::to_string(::geteuid()); }

TEST(TopicRegistryTest, RegistryOutlivesACreatorKilledRightAfterCreatingIt) {
  TopicName a, b;
  Segment::Unlink(RegistryOfThisUser()).IgnoreError();  // serial test: nobody else uses it meanwhile
  pid_t child = Spawn([&] {
    auto p = Publisher::Open(a.name, Small());  // creates the registry
    if (!p.ok()) return 1;
    ::kill(::getpid(), SIGKILL);
    return 0;
  });
  EXPECT_EQ(Join(child), 128 + SIGKILL);
  auto reg = Segment::Open(RegistryOfThisUser(), 3, 1);
  ASSERT_TRUE(reg.ok());
  EXPECT_EQ(reg->header()->creator_pid, child);
  auto pub = Publisher::Open(b.name, Small());
  ASSERT_TRUE(pub.ok());
  auto names = ListTopics();
  ASSERT_TRUE(names.ok());
  EXPECT_EQ(std::count(names->begin(), names->end(), a.name), 1);
  EXPECT_EQ(std::count(names->begin(), names->end(), b.name), 1);
  // A corrupted registry is reported, not followed.
  uint64_t bogus = 7;
  std::memcpy(reg->base() + 192, &bogus, 8);
  EXPECT_EQ(ListTopics().status().code(), Code::kCorrupt);
  EXPECT_EQ(Publisher::Open(UniqueName("other"), Small()).status().code(), Code::kCorrupt);
  ASSERT_TRUE(Segment::Unlink(RegistryOfThisUser()).ok());
  Pool::Unlink(UniqueName("x")).IgnoreError();
}

// A self-describing sample: its first 8 bytes say what the rest must be.
Status PublishTagged(Publisher& pub, uint64_t tag) {
  const size_t n = 64 + tag % 3000;
  auto s = pub.Loan(n);
  if (!s.ok()) return s.status();
  std::memcpy(s->data.data(), &tag, 8);
  for (size_t i = 8; i < n; ++i) s->data[i] = static_cast<uint8_t>(tag * 13 + i);
  return pub.Publish(*s, n, Deadline::Now());
}
bool TaggedIntact(ByteView d) {
  uint64_t tag;
  if (d.size() < 8) return false;
  std::memcpy(&tag, d.data(), 8);
  if (d.size() != 64 + tag % 3000) return false;
  for (size_t i = 8; i < d.size(); ++i) {
    if (d[i] != static_cast<uint8_t>(tag * 13 + i)) return false;
  }
  return true;
}

// A publisher killed at random points while publishing: subscribers never see a torn sample or
// a sequence going backwards, and every block comes back after recovery.
TEST(TopicCrashTest, PublisherKilledAtRandomPointsNoTornSample) {
  TopicName t;
  auto sub = Subscriber::Open(t.name, {.on_full = Overflow::kDropOldest}, Small(16)).value();
  auto pool = Pool::Open(t.name + ".pool").value();
  std::atomic<int>* progress = SharedInt();
  weft::testing::Rng rng(3);
  uint64_t taken = 0, torn = 0;
  for (int round = 0; round < 20; ++round) {
    const int before = progress->load();
    pid_t child = Spawn([&] {
      auto pub = Publisher::Open(t.name);
      if (!pub.ok()) return 1;
      for (uint64_t i = 1;; ++i) {
        if (!PublishTagged(**pub, i * 7919 + round).ok()) continue;
        progress->fetch_add(1);
      }
    });
    uint64_t last_seq = 0;
    const int target = before + 10 + static_cast<int>(rng.Below(500));
    const int64_t give_up = MonotonicNs() + 60'000'000'000;
    while (progress->load() < target) {
      int status;
      ASSERT_NE(::waitpid(child, &status, WNOHANG), child) << "the publisher stopped early, round " << round;
      ASSERT_LT(MonotonicNs(), give_up) << "round " << round;
      auto s = sub->Take(Deadline::Now());
      if (!s.ok()) continue;
      torn += !TaggedIntact(s->data);
      EXPECT_GT(s->seq, last_seq);
      last_seq = s->seq;
      ++taken;
      ASSERT_TRUE(sub->Release(*s).ok());
    }
    ::kill(child, SIGKILL);
    Join(child);
    for (;;) {  // what was published before the kill stays readable
      auto s = sub->Take(Deadline::Now());
      if (!s.ok()) break;
      torn += !TaggedIntact(s->data);
      EXPECT_GT(s->seq, last_seq);
      last_seq = s->seq;
      ++taken;
      ASSERT_TRUE(sub->Release(*s).ok());
    }
    pool->RecoverDead();
    sub->RecoverOrphans();  // holds granted for a publish the kill cut short
  }
  EXPECT_EQ(torn, 0u);
  EXPECT_GT(taken, 100u);
  // The queue is empty and nothing is taken: every block is back, including holds a kill cut
  // off mid-publish or mid-drop.
  auto snap = Pool::Snapshot(t.name + ".pool");
  ASSERT_TRUE(snap.ok());
  EXPECT_EQ(snap->blocks_in_use + snap->large_in_use, 0u);
}

// A publisher that dies after granting holds but before making its entries visible: the next
// publisher in its slot revokes those holds (negative control: without a successor they stay).
uint64_t DieAfterGrant(bool successor) {
  TopicName t;
  auto sub = Subscriber::Open(t.name, {}, Small()).value();
  auto pool = Pool::Open(t.name + ".pool").value();  // attached before the death
  pid_t child = Spawn([&] {
    auto pub = Publisher::Open(t.name);
    if (!pub.ok()) return 1;
    internal::Hooks().publish_stops_after_grant.store(true);
    (void)PublishOne(**pub, 1, 100);  // granted, never visible
    ::kill(::getpid(), SIGKILL);
    return 0;
  });
  EXPECT_EQ(Join(child), 128 + SIGKILL);
  pool->RecoverDead();  // the publisher's own hold goes; the subscriber's granted bit stays
  if (successor) EXPECT_TRUE(Publisher::Open(t.name).ok());
  EXPECT_EQ(sub->Take(Deadline::Now()).status().code(), Code::kWouldBlock);
  return PoolInUse(t.name);
}

TEST(TopicCrashTest, HoldsGrantedByAPublisherThatDiedMidPublishAreRevoked) { EXPECT_EQ(DieAfterGrant(true), 0u); }

TEST(TopicCrashTest, NegativeControlWithoutASuccessorTheGrantedHoldStays) { EXPECT_EQ(DieAfterGrant(false), 1u); }

// A publisher that dies between dropping a drop-oldest subscriber's oldest sample and revoking
// its hold: the subscriber revokes it once it sees the publisher gone. Returns the blocks in use
// with the three queued samples still queued (negative control: if the subscriber never looks,
// the dropped sample's hold stays, and 4 are in use instead of 3).
uint64_t DieMidDrop(bool recover) {
  TopicName t;
  auto sub = Subscriber::Open(t.name, {.on_full = Overflow::kDropOldest}, Small(4)).value();
  auto pool = Pool::Open(t.name + ".pool").value();
  pid_t child = Spawn([&] {
    auto pub = Publisher::Open(t.name);
    if (!pub.ok()) return 1;
    for (int i = 1; i <= 4; ++i) {
      if (!PublishOne(**pub, i, 100).ok()) return 2;  // the queue is now full
    }
    internal::Hooks().drop_stops_after_cas.store(true);
    (void)PublishOne(**pub, 5, 100);  // drops sample 1, stops before revoking its hold
    ::kill(::getpid(), SIGKILL);
    return 0;
  });
  EXPECT_EQ(Join(child), 128 + SIGKILL);
  pool->RecoverDead();  // the publisher's own holds go
  if (recover) EXPECT_EQ(sub->RecoverOrphans(), 1u);
  const uint64_t in_use = PoolInUse(t.name);
  for (uint64_t want = 2; want <= 4; ++want) {  // 2, 3, 4 are intact and in order
    auto s = sub->Take(Deadline::Now());
    EXPECT_TRUE(s.ok());
    if (!s.ok()) break;
    EXPECT_EQ(s->seq, want);
    EXPECT_TRUE(sub->Release(*s).ok());
  }
  EXPECT_EQ(sub->Take(Deadline::Now()).status().code(), Code::kWouldBlock);
  EXPECT_EQ(PoolInUse(t.name), 0u);  // taking found the record too, and resolved it
  return in_use;
}

TEST(TopicCrashTest, HoldOfASampleDroppedByAPublisherThatDiedMidDropIsRevoked) { EXPECT_EQ(DieMidDrop(true), 3u); }

TEST(TopicCrashTest, NegativeControlUnrecoveredTheDroppedHoldStays) { EXPECT_EQ(DieMidDrop(false), 4u); }

TEST(TopicTest, BadNamesAndOptionsAreRejected) {
  EXPECT_EQ(Publisher::Open("bad/name").status().code(), Code::kInvalidArgument);
  EXPECT_EQ(Publisher::Open(std::string(71, 't')).status().code(), Code::kInvalidArgument);
  TopicName t;
  TopicOptions o = Small(100);  // not a power of two
  EXPECT_EQ(Publisher::Open(t.name, o).status().code(), Code::kInvalidArgument);
  auto seg = Segment::Create(t.name, SegmentKind::kChannel, 1, 8192);
  ASSERT_TRUE(seg.ok());
  seg->Publish();
  EXPECT_EQ(Subscriber::Open(t.name).status().code(), Code::kWrongKind);
}

}  // namespace
namespace {

TEST(TopicTest, UnlinkRemovesTheTopicAndItsPoolAndOptionsMayBeRequired) {
  TopicName t;
  TopicOptions o = Small();
  auto pub = Publisher::Open(t.name, o);
  ASSERT_TRUE(pub.ok());
  // Joining with other options: refused only when asked to match.
  TopicOptions other = o;
  other.queue_depth = o.queue_depth * 2;
  EXPECT_TRUE(Publisher::Open(t.name, other).ok());  // control: silently the topic's own
  other.must_match = true;
  EXPECT_EQ(Publisher::Open(t.name, other).status().code(), Code::kInvalidArgument);
  o.must_match = true;
  EXPECT_TRUE(Publisher::Open(t.name, o).ok());
  // Unlink: the names go, the attached publisher keeps working.
  ASSERT_TRUE(UnlinkTopic(t.name).ok());
  EXPECT_EQ(Segment::Open(t.name, 0, 0).status().code(), Code::kNotFound);
  EXPECT_EQ(Segment::Open(t.name + ".pool", 0, 0).status().code(), Code::kNotFound);
  auto loan = (*pub)->Loan(8);
  ASSERT_TRUE(loan.ok());
  EXPECT_TRUE((*pub)->Publish(*loan, 8, Deadline::AfterMs(100)).ok());
  EXPECT_EQ(UnlinkTopic(t.name).code(), Code::kNotFound);
  EXPECT_EQ(UnlinkTopic("bad/name").code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace weft::shm
