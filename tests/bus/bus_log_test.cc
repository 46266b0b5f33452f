// The durable bus (log:): events and committed positions survive every process and the control
// segment; processes killed with SIGKILL lose nothing that was committed (with a negative
// control); retention drops only what it should and counts it; damaged files are reported.
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cinttypes>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "bus/cli_util.h"
#include "bus/internal/commits.h"
#include "log/log_util.h"
#include "shm/test_util.h"
#include "weft/bus/bus.h"
#include "weft/log/log.h"
#include "weft/shm/segment.h"

namespace weft::bus {
namespace {

using weft::testing::Join;
using weft::testing::Spawn;
using weft::testing::TempDir;

std::string Str(ByteView b) { return std::string(reinterpret_cast<const char*>(b.data()), b.size()); }

BusOptions LogBus(const TempDir& t, uint32_t shards = 2) {
  BusOptions o;
  o.url = "log:" + t.path + "/bus";
  o.shards = shards;
  o.backpressure = Overflow::kDropOldest;
  o.log.segment_bytes = 1 << 20;
  return o;
}

// The control segment's name, from bus.meta (to remove it as a reboot would).
std::string ControlName(const TempDir& t) {
  std::ifstream f(t.path + "/bus/bus.meta", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  auto m = internal::ParseMeta(AsBytes(bytes));
  char name[40];
  std::snprintf(name, sizeof(name), "lbus.%016" PRIx64, m.ok() ? m->id : 0);
  return name;
}

struct ControlCleanup {
  const TempDir& t;
  ~ControlCleanup() { Bus::Unlink("log:" + t.path + "/bus").IgnoreError(); }
};

// Polls until `want` events came or nothing came for 300 ms; returns "key:data" strings.
std::vector<std::string> Drain(Consumer& c, size_t want, std::vector<Position>* at = nullptr) {
  std::vector<std::string> got;
  while (got.size() < want) {
    auto b = c.Poll(64, Deadline::AfterMs(300));
    if (!b.ok()) break;
    for (const Event& e : *b) {
      got.push_back(Str(e.key) + ":" + Str(e.data));
      if (at != nullptr) at->push_back(e.position);
    }
  }
  return got;
}

TEST(BusLogTest, EventsAndCommittedPositionsSurviveEveryHandleAndTheControlSegment) {
  TempDir t;
  ControlCleanup cleanup{t};
  {
    auto bus = Bus::Open(LogBus(t));
    ASSERT_TRUE(bus.ok()) << bus.status().ToString();
    for (int i = 0; i < 100; ++i) {
      const std::string k = "k" + std::to_string(i % 5);
      ASSERT_TRUE((*bus)->IngestKeyed(AsBytes(k), AsBytes(std::to_string(i))).ok());
    }
    auto c = (*bus)->Subscribe("g", {.auto_commit = false});
    ASSERT_TRUE(c.ok());
    EXPECT_EQ(Drain(**c, 30).size() >= 30, true);
    ASSERT_TRUE((*c)->Commit().ok());
    const BusStats s = (*bus)->Stats();
    EXPECT_EQ(s.ingested, 100u);
    ASSERT_EQ(s.groups.size(), 1u);
  }
  uint64_t committed = 0;
  for (int round = 0; round < 2; ++round) {
    // Round 1 also loses the control segment (as a reboot would): the files alone tell.
    if (round == 1) {
      ASSERT_TRUE(Listed(ControlName(t)));
      ASSERT_TRUE(Bus::Unlink(LogBus(t).url).ok());
      ASSERT_FALSE(Listed(ControlName(t)));
    }
    auto bus = Bus::Open(LogBus(t));
    ASSERT_TRUE(bus.ok()) << bus.status().ToString();
    const BusStats s = (*bus)->Stats();
    ASSERT_EQ(s.groups.size(), 1u) << "the group comes back from its file";
    uint64_t c_sum = 0;
    for (const GroupShardStats& g : s.groups[0].shards) c_sum += g.committed;
    if (round == 0) committed = c_sum;
    EXPECT_EQ(c_sum, committed);
    EXPECT_GE(committed, 30u);
  }
  // A member resumes exactly there, in order per key; a new group sees everything.
  auto bus = Bus::Open(LogBus(t));
  ASSERT_TRUE(bus.ok());
  auto c = (*bus)->Subscribe("g");
  ASSERT_TRUE(c.ok());
  auto rest = Drain(**c, 1000);
  EXPECT_EQ(rest.size(), 100 - committed);
  auto fresh = (*bus)->Subscribe("all");
  ASSERT_TRUE(fresh.ok());
  auto all = Drain(**fresh, 1000);
  ASSERT_EQ(all.size(), 100u);
  std::map<std::string, int> last;
  for (const std::string& e : all) {
    const std::string key = e.substr(0, e.find(':'));
    const int v = std::stoi(e.substr(e.find(':') + 1));
    if (last.count(key)) EXPECT_LT(last[key], v) << "order per key";
    last[key] = v;
  }
  auto late = (*bus)->Subscribe("late", {.start = Start::kLatest});
  ASSERT_TRUE(late.ok());
  ASSERT_TRUE((*bus)->Ingest(AsBytes("new")).ok());
  auto l = Drain(**late, 1);
  ASSERT_EQ(l.size(), 1u);
  EXPECT_EQ(l[0], ":new");
}

TEST(BusLogTest, BatchesUnkeyedEventsAndTimestamps) {
  TempDir t;
  ControlCleanup cleanup{t};
  BusOptions o = LogBus(t, 1);
  o.timestamps = true;
  auto bus = Bus::Open(o);
  ASSERT_TRUE(bus.ok());
  std::vector<std::string> data;
  std::vector<ByteView> views;
  for (int i = 0; i < 50; ++i) data.push_back("e" + std::to_string(i));
  for (auto& d : data) views.push_back(AsBytes(d));
  auto n = (*bus)->IngestBatch(views);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 50u);
  auto c = (*bus)->Subscribe("g");
  ASSERT_TRUE(c.ok());
  auto b = (*c)->Poll(100, Deadline::AfterMs(100));
  ASSERT_TRUE(b.ok());
  ASSERT_EQ(b->size(), 50u);
  for (size_t i = 0; i < 50; ++i) {
    EXPECT_EQ(Str((*b)[i].data), data[i]);
    EXPECT_EQ((*b)[i].position.offset, i) << "positions are sequence numbers";
    EXPECT_GT((*b)[i].timestamp_ns, 0);
  }
}

TEST(BusLogTest, RetentionRemovesOnlyWhatItShouldAndALaggingGroupCountsItsLoss) {
  TempDir t;
  ControlCleanup cleanup{t};
  BusOptions o = LogBus(t, 1);
  o.log.segment_bytes = 4096;
  o.log.retention_events = 100;
  o.max_event = 512;
  auto bus = Bus::Open(o);
  ASSERT_TRUE(bus.ok()) << bus.status().ToString();
  auto keeping_up = (*bus)->Subscribe("fast");
  auto lagging = (*bus)->Subscribe("slow");
  ASSERT_TRUE(keeping_up.ok() && lagging.ok());
  std::vector<std::string> fast;
  for (int i = 0; i < 2000; ++i) {
    ASSERT_TRUE((*bus)->Ingest(AsBytes("event-" + std::to_string(i) + std::string(40, '.'))).ok());
    if (i % 50 == 49) {
      for (auto& e : Drain(**keeping_up, 50)) fast.push_back(e);
    }
  }
  EXPECT_EQ(fast.size(), 2000u) << "a group that keeps up loses nothing";
  auto slow = Drain(**lagging, 5000);
  const BusStats s = (*bus)->Stats();
  ASSERT_GT(s.per_shard[0].oldest, 0u) << "retention removed old segments";
  EXPECT_GE(s.per_shard[0].tail - s.per_shard[0].oldest, 100u) << "and kept at least retention_events";
  const GroupStats* slow_stats = nullptr;
  for (const GroupStats& g : s.groups) {
    if (g.name == "slow") slow_stats = &g;
    if (g.name == "fast") EXPECT_EQ(g.dropped, 0u);
  }
  ASSERT_NE(slow_stats, nullptr);
  EXPECT_EQ(slow_stats->dropped + slow.size(), 2000u) << "what the slow group lost is counted, exactly";
  EXPECT_GT(slow_stats->dropped, 0u);
  EXPECT_EQ(slow.back(), fast.back());
}

// A producer and a consumer process, both killed with SIGKILL, then restarted as new processes:
// the events are there, untorn, and the group resumes at its last durable commit.
TEST(BusLogTest, ProcessesKilledAndRestartedResumeAtTheirCommittedPositions) {
  TempDir t;
  ControlCleanup cleanup{t};
  const BusOptions o = LogBus(t, 2);
  { ASSERT_TRUE(Bus::Open(o).ok()); }
  struct Shared {
    std::atomic<int64_t> acked;          // events whose Ingest returned
    std::atomic<int64_t> committed_seen;  // events the consumer processed and committed
  };
  auto* sh = static_cast<Shared*>(::mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  new (sh) Shared{};
  const pid_t producer = Spawn([&] {
    auto bus = Bus::Open(o);
    if (!bus.ok()) return 1;
    for (int64_t i = 0;; ++i) {
      if (!(*bus)->IngestKeyed(AsBytes("k" + std::to_string(i % 7)), AsBytes(std::to_string(i))).ok()) return 2;
      sh->acked.store(i + 1);
    }
  });
  const pid_t consumer = Spawn([&] {
    auto bus = Bus::Open(o);
    if (!bus.ok()) return 1;
    auto c = (*bus)->Subscribe("g", {.auto_commit = false});
    if (!c.ok()) return 2;
    int64_t n = 0;
    for (;;) {
      auto b = (*c)->Poll(16, Deadline::AfterMs(100));
      if (!b.ok()) continue;
      n += static_cast<int64_t>(b->size());
      if (!(*c)->Commit().ok()) return 3;
      sh->committed_seen.store(n);
    }
  });
  while (sh->acked.load() < 3000 || sh->committed_seen.load() < 1000) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ::kill(producer, SIGKILL);
  ::kill(consumer, SIGKILL);
  EXPECT_EQ(Join(producer), 128 + SIGKILL);
  EXPECT_EQ(Join(consumer), 128 + SIGKILL);
  const int64_t acked = sh->acked.load();
  const int64_t committed = sh->committed_seen.load();

  // Restarted: every acknowledged event is there once, whole, in order per key.
  auto bus = Bus::Open(o);
  ASSERT_TRUE(bus.ok()) << bus.status().ToString();
  const BusStats s = (*bus)->Stats();
  EXPECT_GE(static_cast<int64_t>(s.ingested), acked);
  EXPECT_LE(static_cast<int64_t>(s.ingested), acked + 1) << "at most the one in flight";
  uint64_t durable = 0;
  for (const GroupShardStats& g : s.groups.at(0).shards) durable += g.committed;
  EXPECT_GE(static_cast<int64_t>(durable), committed) << "every commit that returned is on disk";
  auto c = (*bus)->Subscribe("g");
  ASSERT_TRUE(c.ok());
  auto rest = Drain(**c, s.ingested);
  EXPECT_EQ(rest.size() + durable, s.ingested) << "the group resumes exactly at its commit";
  auto all = (*bus)->Subscribe("audit");
  ASSERT_TRUE(all.ok());
  auto every = Drain(**all, s.ingested + 10);
  ASSERT_EQ(every.size(), s.ingested);
  std::set<int64_t> values;
  for (const std::string& e : every) values.insert(std::stoll(e.substr(e.find(':') + 1)));
  EXPECT_EQ(values.size(), every.size()) << "no duplicates";
  EXPECT_EQ(*values.rbegin() + 1, static_cast<int64_t>(values.size())) << "no gaps";

  // Negative control: without its file the group cannot know where it was and starts over;
  // the resume check above would fail.
  (*c)->Close().IgnoreError();
  c->reset();
  bus->reset();
  ASSERT_TRUE(shm::Segment::Unlink(ControlName(t)).ok());
  std::filesystem::remove(t.path + "/bus/group.g");
  auto again = Bus::Open(o);
  ASSERT_TRUE(again.ok());
  auto restarted = (*again)->Subscribe("g");
  ASSERT_TRUE(restarted.ok());
  EXPECT_EQ(Drain(**restarted, s.ingested + 10).size(), s.ingested);
  ::munmap(sh, sizeof(Shared));
}

TEST(BusLogTest, AKilledMembersShardsMoveToTheSurvivorFromTheCommittedPosition) {
  TempDir t;
  ControlCleanup cleanup{t};
  const BusOptions o = LogBus(t, 2);
  auto bus = Bus::Open(o);
  ASSERT_TRUE(bus.ok());
  for (int i = 0; i < 200; ++i) ASSERT_TRUE((*bus)->IngestKeyed(AsBytes(std::to_string(i % 4)), AsBytes(std::to_string(i))).ok());
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  // The victim joins first (all shards), reads without committing, and is killed mid-batch.
  const pid_t victim = Spawn([&] {
    auto b = Bus::Open(o);
    auto c = (*b)->Subscribe("g", {.auto_commit = false});
    if (!c.ok()) return 1;
    auto got = (*c)->Poll(50, Deadline::AfterMs(1000));
    const char one = got.ok() ? 1 : 0;
    (void)!::write(ready[1], &one, 1);
    ::pause();
    return 0;
  });
  char one = 0;
  ASSERT_EQ(::read(ready[0], &one, 1), 1);
  ASSERT_EQ(one, 1);
  auto survivor = (*bus)->Subscribe("g");
  ASSERT_TRUE(survivor.ok());
  // Negative control: while the victim lives it keeps (at least) one shard.
  auto while_alive = Drain(**survivor, 200);
  EXPECT_LT(while_alive.size(), 200u);
  ::kill(victim, SIGKILL);
  EXPECT_EQ(Join(victim), 128 + SIGKILL);
  auto after = Drain(**survivor, 200 - while_alive.size());
  std::set<std::string> all(while_alive.begin(), while_alive.end());
  all.insert(after.begin(), after.end());
  EXPECT_EQ(all.size(), 200u) << "everything the victim took but did not commit comes again";
  EXPECT_EQ((*survivor)->shards().size(), 2u);
  ::close(ready[0]);
  ::close(ready[1]);
}

TEST(BusLogTest, BadOptionsDamagedFilesAndASecondWriterAreClearErrors) {
  TempDir t;
  ControlCleanup cleanup{t};
  BusOptions o = LogBus(t, 2);
  BusOptions blocking = o;
  blocking.backpressure = Overflow::kBlock;
  auto refused = Bus::Open(blocking);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), Code::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("drop_oldest"), std::string::npos);
  BusOptions empty = o;
  empty.url = "log:";
  EXPECT_EQ(Bus::Open(empty).status().code(), Code::kInvalidArgument);
  BusOptions absent = o;
  absent.create = false;
  EXPECT_EQ(Bus::Open(absent).status().code(), Code::kNotFound);

  auto bus = Bus::Open(o);
  ASSERT_TRUE(bus.ok());
  EXPECT_EQ((*bus)->Ingest(ByteView(std::vector<uint8_t>(o.log.segment_bytes).data(), o.log.segment_bytes)).status().code(),
            Code::kTooLarge);
  BusOptions other = o;
  other.shards = 3;
  other.must_match = true;
  EXPECT_EQ(Bus::Open(other).status().code(), Code::kInvalidArgument);
  ASSERT_TRUE((*bus)->Ingest(AsBytes("x")).ok());  // this process now writes its shard
  {
    auto c = (*bus)->Subscribe("g");
    ASSERT_TRUE(c.ok());
    ASSERT_EQ(Drain(**c, 1).size(), 1u);
  }
  // Another process that ingests to a shard this one writes is told who holds it.
  EXPECT_EQ(Join(Spawn([&] {
              auto b = Bus::Open(o);
              if (!b.ok()) return 1;
              for (int i = 0; i < 10; ++i) {
                auto r = (*b)->Ingest(AsBytes("y"));
                if (!r.ok()) return r.status().code() == Code::kBusy ? 0 : 2;
              }
              return 3;  // every shard took it: the exclusion did not work
            })),
            0);

  // Both copies of a committed position scribbled: the group refuses, naming the file.
  const std::string group = t.path + "/bus/group.g";
  const uint8_t junk[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17};
  weft::testing::Poke(group, sizeof(internal::GroupFileHeader), junk, sizeof(junk));
  bus->reset();
  ASSERT_TRUE(shm::Segment::Unlink(ControlName(t)).ok());
  auto reopened = Bus::Open(o);
  ASSERT_FALSE(reopened.ok());
  EXPECT_EQ(reopened.status().code(), Code::kCorrupt) << reopened.status().ToString();
  EXPECT_NE(reopened.status().message().find("group.g"), std::string::npos);
  std::filesystem::remove(group);
  ASSERT_TRUE(shm::Segment::Unlink(ControlName(t)).ok());  // (made by the open that failed)
  // A scribbled bus.meta is refused the same way.
  weft::testing::Poke(t.path + "/bus/bus.meta", 12, junk, 4);
  auto meta = Bus::Open(o);
  ASSERT_FALSE(meta.ok());
  EXPECT_EQ(meta.status().code(), Code::kCorrupt) << meta.status().ToString();
}

TEST(BusLogTest, ARecordWhoseKeyLengthExceedsItIsReportedNotFollowed) {
  TempDir t;
  ControlCleanup cleanup{t};
  const BusOptions o = LogBus(t, 1);
  {
    auto bus = Bus::Open(o);
    ASSERT_TRUE(bus.ok());
  }
  {
    // Someone with write access appends a record with an impossible key length.
    auto raw = log::Log::Open(t.path + "/bus/shard.0");
    ASSERT_TRUE(raw.ok()) << raw.status().ToString();
    ASSERT_TRUE((*raw)->Append(AsBytes("abc"), 1000).ok());
  }
  auto bus = Bus::Open(o);
  ASSERT_TRUE(bus.ok());
  auto c = (*bus)->Subscribe("g");
  ASSERT_TRUE(c.ok());
  auto b = (*c)->Poll(10, Deadline::AfterMs(100));
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), Code::kCorrupt);
  EXPECT_NE(b.status().message().find("record 0"), std::string::npos) << b.status().ToString();
}

TEST(BusLogTest, TheControlSegmentServesStatsOnlyAndGcKeepsItWhileAProducerLives) {
  TempDir t;
  ControlCleanup cleanup{t};
  const BusOptions o = LogBus(t, 2);
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t producer = Spawn([&] {
    auto b = Bus::Open(o);
    if (!b.ok() || !(*b)->Ingest(AsBytes("one")).ok()) return 1;
    const char c = 'y';
    if (::write(ready[1], &c, 1) != 1) return 2;
    for (;;) ::pause();
  });
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  const std::string control = ControlName(t);
  // Opened as a shm: bus, the control segment shows its producers and refuses events.
  auto as_shm = Bus::Open({.url = "shm:" + control, .create = false});
  ASSERT_TRUE(as_shm.ok()) << as_shm.status().ToString();
  const BusStats st = (*as_shm)->Stats();
  ASSERT_EQ(st.producers.size(), 1u);
  EXPECT_EQ(st.producers[0].pid, producer);
  EXPECT_EQ((*as_shm)->Ingest(AsBytes("x")).status().code(), Code::kInvalidArgument);
  EXPECT_EQ((*as_shm)->Subscribe("g").status().code(), Code::kInvalidArgument);
  as_shm->reset();
#ifdef WEFT_CLI
  auto [kept, kept_code] = Weft("gc");
  EXPECT_EQ(kept_code, 0) << kept;
  EXPECT_TRUE(Listed(control)) << "a live producer keeps the control segment: " << kept;
#endif
  ::kill(producer, SIGKILL);
  EXPECT_EQ(Join(producer), 128 + SIGKILL);
#ifdef WEFT_CLI
  auto [removed, removed_code] = Weft("gc");
  EXPECT_EQ(removed_code, 0) << removed;
  EXPECT_FALSE(Listed(control)) << removed;
#endif
  // The bus goes on without it: a new control segment, the event still there.
  auto bus = Bus::Open(o);
  ASSERT_TRUE(bus.ok()) << bus.status().ToString();
  auto m = (*bus)->Subscribe("g");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(Drain(**m, 1), std::vector<std::string>{":one"});
  ::close(ready[0]);
  ::close(ready[1]);
}

// The first process to open a bus may only read it: creating the shards must not keep another
// process from writing them.
TEST(BusLogTest, AReaderThatCreatedTheBusLeavesItsShardsToProducersElsewhere) {
  TempDir t;
  ControlCleanup cleanup{t};
  const BusOptions o = LogBus(t, 2);
  auto reader = Bus::Open(o);  // creates bus.meta and both shard logs
  ASSERT_TRUE(reader.ok()) << reader.status().ToString();
  auto m = (*reader)->Subscribe("g");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(Join(Spawn([&] {
              auto b = Bus::Open(o);
              if (!b.ok()) return 1;
              for (int i = 0; i < 8; ++i) {
                if (!(*b)->IngestKeyed(AsBytes(std::to_string(i)), AsBytes("from a producer")).ok()) return 2;
              }
              return 0;
            })),
            0)
      << "the producer could not write a shard the reader had created";
  EXPECT_EQ(Drain(**m, 8).size(), 8u);
  EXPECT_TRUE((*reader)->Stats().producers.empty()) << "the reader holds no producer slot";
}

}  // namespace
}  // namespace weft::bus
