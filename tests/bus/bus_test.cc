// The bus on the memory backend: options, keyed routing and per-shard order, groups and their
// members, every backpressure policy against a model (exact counts), blocking and waking,
// batches, pads at the ring's end, timestamps, interrupt.
#include "weft/bus/bus.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace weft::bus {
namespace {

std::unique_ptr<Bus> OpenBus(BusOptions o) {
  auto b = Bus::Open(o);
  EXPECT_TRUE(b.ok()) << b.status().ToString();
  return b.ok() ? std::move(b).value() : nullptr;
}

std::unique_ptr<Consumer> Join(Bus& bus, const std::string& group, ConsumerOptions o = {}) {
  auto c = bus.Subscribe(group, o);
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  return c.ok() ? std::move(c).value() : nullptr;
}

std::string Str(ByteView b) { return std::string(reinterpret_cast<const char*>(b.data()), b.size()); }

// Polls until `want` events came (or a poll times out); returns their data.
std::vector<std::string> Drain(Consumer& c, size_t want, int64_t timeout_ms = 5000) {
  std::vector<std::string> out;
  while (out.size() < want) {
    auto batch = c.Poll(64, Deadline::AfterMs(timeout_ms));
    if (!batch.ok()) break;
    for (const Event& e : *batch) out.push_back(Str(e.data));
  }
  return out;
}

TEST(BusTest, OptionsAreChecked) {
  struct Case {
    BusOptions o;
    Code code;
  } cases[] = {
      {{.url = "carrier-pigeon:"}, Code::kInvalidArgument},
      {{.shards = 257}, Code::kInvalidArgument},
      {{.shard_bytes = 5000}, Code::kInvalidArgument},
      {{.shard_bytes = 2048}, Code::kInvalidArgument},
      {{.shard_bytes = 4096, .max_event = 2000}, Code::kInvalidArgument},
      {{.backpressure = static_cast<Overflow>(9)}, Code::kInvalidArgument},
      {{.groups = {"bad name"}}, Code::kInvalidArgument},
      {{.groups = {std::string(64, 'g')}}, Code::kInvalidArgument},
  };
  for (const Case& c : cases) {
    auto b = Bus::Open(c.o);
    ASSERT_FALSE(b.ok());
    EXPECT_EQ(b.status().code(), c.code) << b.status().ToString();
  }
  auto b = OpenBus({.shards = 2, .shard_bytes = 4096});
  ASSERT_TRUE(b);
  EXPECT_EQ(b->shards(), 2u);
  EXPECT_EQ(b->options().max_event, 4096u / 4 - 16 - 8);
  auto big = b->Ingest(AsBytes(std::string(2000, 'x')));
  EXPECT_EQ(big.status().code(), Code::kTooLarge);
  EXPECT_EQ(b->IngestKeyed(AsBytes(std::string(70000, 'k')), AsBytes("x")).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(b->Subscribe("no spaces").status().code(), Code::kInvalidArgument);
  auto c = Join(*b, "g");
  EXPECT_EQ(c->Poll(0, Deadline::Now()).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(c->Poll(1, Deadline::Now()).status().code(), Code::kWouldBlock);
}

TEST(BusTest, AKeyAlwaysLandsOnItsShardAndOrderIsKeptPerShard) {
  auto bus = OpenBus({.shards = 4, .groups = {"all"}});
  std::map<std::string, uint32_t> shard_of;
  std::map<uint32_t, uint64_t> last;  // offsets grow within a shard
  for (int i = 0; i < 400; ++i) {
    const std::string key = "user-" + std::to_string(i % 10);
    const std::string data = key + "#" + std::to_string(i);
    auto p = bus->IngestKeyed(AsBytes(key), AsBytes(data));
    ASSERT_TRUE(p.ok());
    EXPECT_EQ(p->shard, bus->ShardOf(AsBytes(key)));
    if (shard_of.count(key)) {
      EXPECT_EQ(shard_of[key], p->shard);
    }
    shard_of[key] = p->shard;
    if (last.count(p->shard)) {
      EXPECT_GT(p->offset, last[p->shard]);
    }
    last[p->shard] = p->offset;
  }
  std::set<uint32_t> used;
  for (auto& [k, s] : shard_of) used.insert(s);
  EXPECT_GT(used.size(), 1u);  // ten keys spread over more than one shard
  auto c = Join(*bus, "all");
  std::map<std::string, int> next_of;  // per key, the index it must show next
  size_t seen = 0;
  while (seen < 400) {
    auto batch = c->Poll(37, Deadline::AfterMs(5000));
    ASSERT_TRUE(batch.ok()) << batch.status().ToString();
    for (const Event& e : *batch) {
      const std::string key = Str(e.key), data = Str(e.data);
      ASSERT_EQ(data.rfind(key + "#", 0), 0u);
      const int i = std::stoi(data.substr(key.size() + 1));
      EXPECT_GE(i, next_of[key]) << "order within a key (one shard) is kept";
      next_of[key] = i + 1;
      EXPECT_EQ(e.position.shard, shard_of[key]);
      ++seen;
    }
  }
  EXPECT_EQ(bus->Stats().ingested, 400u);
}

TEST(BusTest, EveryGroupSeesEveryEventAndMembersSplitTheShards) {
  auto bus = OpenBus({.shards = 4, .groups = {"a", "b"}});
  for (int i = 0; i < 1000; ++i) {
    const std::string k = std::to_string(i);
    ASSERT_TRUE(bus->IngestKeyed(AsBytes(k), AsBytes(k)).ok());
  }
  auto a1 = Join(*bus, "a"), a2 = Join(*bus, "a"), b = Join(*bus, "b");
  // Both members of `a` poll (the first poll of each takes its shards).
  std::multiset<std::string> got_a;
  std::vector<std::string> got_b = Drain(*b, 1000);
  for (int round = 0; got_a.size() < 1000 && round < 200; ++round) {
    for (Consumer* m : {a1.get(), a2.get()}) {
      auto batch = m->Poll(100, Deadline::AfterMs(10));
      if (!batch.ok()) continue;
      for (const Event& e : *batch) got_a.insert(Str(e.data));
    }
  }
  EXPECT_EQ(got_a.size(), 1000u);
  EXPECT_EQ(std::set<std::string>(got_a.begin(), got_a.end()).size(), 1000u) << "each event to one member";
  EXPECT_EQ(got_b.size(), 1000u);
  // The shards are split: two each, none shared.
  std::vector<uint32_t> s1 = a1->shards(), s2 = a2->shards();
  EXPECT_EQ(s1.size(), 2u);
  EXPECT_EQ(s2.size(), 2u);
  for (uint32_t s : s1) EXPECT_EQ(std::count(s2.begin(), s2.end(), s), 0);
  EXPECT_EQ(b->shards().size(), 4u);
  const BusStats st = bus->Stats();
  ASSERT_EQ(st.groups.size(), 2u);
  for (const GroupStats& g : st.groups) {
    EXPECT_EQ(g.delivered, 1000u) << g.name;
    EXPECT_EQ(g.members, g.name == "a" ? 2u : 1u);
  }
}

TEST(BusTest, AMemberThatLeavesHandsItsShardsOverFromTheCommittedPosition) {
  auto bus = OpenBus({.shards = 2, .groups = {"g"}});
  ConsumerOptions manual{.auto_commit = false};
  auto m1 = Join(*bus, "g", manual);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(bus->IngestKeyed(AsBytes(std::to_string(i)), AsBytes(std::to_string(i))).ok());
  // m1 alone reads everything, commits the first batch only.
  auto first = m1->Poll(4, Deadline::AfterMs(1000));
  ASSERT_TRUE(first.ok());
  std::vector<std::string> committed;
  for (const Event& e : *first) committed.push_back(Str(e.data));
  ASSERT_TRUE(m1->Commit().ok());
  std::vector<std::string> uncommitted = Drain(*m1, 10 - committed.size());
  ASSERT_EQ(committed.size() + uncommitted.size(), 10u);
  // m2 joins; m1 leaves without committing the rest: m2 gets the uncommitted events again.
  auto m2 = Join(*bus, "g", manual);
  ASSERT_TRUE(m1->Close().ok());
  std::vector<std::string> again = Drain(*m2, uncommitted.size());
  EXPECT_EQ(std::multiset<std::string>(again.begin(), again.end()),
            std::multiset<std::string>(uncommitted.begin(), uncommitted.end()));
  EXPECT_EQ(m2->shards().size(), 2u);
  // Negative control: what was committed is not delivered again.
  EXPECT_EQ(m2->Poll(10, Deadline::AfterMs(50)).status().code(), Code::kTimeout);
}

TEST(BusTest, MembersInThreadsReceiveEachEventOnceWhileMembersComeAndGo) {
  auto bus = OpenBus({.shards = 8, .shard_bytes = 1 << 16, .groups = {"g"}});
  constexpr int kEvents = 20000;
  std::atomic<bool> done{false};
  std::vector<std::multiset<int>> seen(3);
  auto run = [&](int who, int leave_after) {
    auto m = Join(*bus, "g");
    int polls = 0;
    while (!done.load()) {
      auto batch = m->Poll(128, Deadline::AfterMs(20));
      if (batch.ok()) {
        for (const Event& e : *batch) {
          int v;
          std::memcpy(&v, e.data.data(), 4);
          seen[who].insert(v);
        }
      }
      if (leave_after > 0 && ++polls == leave_after) {
        ASSERT_TRUE(m->Close().ok());
        m = Join(*bus, "g");  // and joins again
        polls = 0;
        leave_after = 0;
      }
    }
  };
  std::thread t0(run, 0, 0), t1(run, 1, 50), t2(run, 2, 0);
  std::thread producer([&] {
    for (int i = 0; i < kEvents; ++i) {
      ASSERT_TRUE(bus->IngestKeyed(AsBytes(std::to_string(i % 97)), ByteView(reinterpret_cast<const uint8_t*>(&i), 4)).ok());
    }
  });
  producer.join();
  // Wait until the group has taken everything, then stop the members.
  for (int i = 0; i < 500; ++i) {
    const BusStats st = bus->Stats();
    uint64_t lag = st.groups[0].lag_bytes;
    if (lag == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  done = true;
  t0.join();
  t1.join();
  t2.join();
  std::multiset<int> all;
  for (auto& s : seen) all.insert(s.begin(), s.end());
  // At-least-once: every event arrived; a handover may repeat what was not committed.
  for (int i = 0; i < kEvents; ++i) ASSERT_GE(all.count(i), 1u) << i;
  EXPECT_LE(all.size(), static_cast<size_t>(kEvents) + 8 * 128);
}

// The model: per shard, the events accepted in order; the group must see exactly those, in
// order, minus what drop_oldest counted as its drops.
void RunModel(Overflow policy, uint32_t seed) {
  SCOPED_TRACE(std::string("policy ") + OverflowName(policy) + " seed " + std::to_string(seed));
  auto bus = OpenBus({.shards = 3, .shard_bytes = 4096, .backpressure = policy, .groups = {"g"}});
  auto c = Join(*bus, "g");
  std::mt19937 rng(seed);
  std::map<uint32_t, std::vector<std::string>> accepted;  // per shard
  std::map<uint32_t, std::vector<std::string>> received;
  uint64_t refused = 0, dropped_newest = 0, n = 0;
  auto poll = [&](size_t limit) {
    auto batch = c->Poll(limit, Deadline::Now());
    if (!batch.ok()) {
      EXPECT_EQ(batch.status().code(), Code::kWouldBlock);
      return;
    }
    for (const Event& e : *batch) received[e.position.shard].push_back(Str(e.data));
  };
  for (int step = 0; step < 3000; ++step) {
    if (rng() % 10 == 0) {  // slower than the producer: the shards fill up
      poll(1 + rng() % 8);
      continue;
    }
    const std::string key = "k" + std::to_string(rng() % 7);
    std::string data = std::to_string(n++) + ":" + std::string(rng() % 300, 'a' + static_cast<char>(rng() % 26));
    auto p = bus->IngestKeyed(AsBytes(key), AsBytes(data), Deadline::Now());
    if (!p.ok()) {
      ASSERT_TRUE(policy == Overflow::kBlock || policy == Overflow::kFail) << p.status().ToString();
      EXPECT_EQ(p.status().code(), policy == Overflow::kBlock ? Code::kTimeout : Code::kResourceExhausted);
      ++refused;
      continue;
    }
    if (p->dropped()) {
      ASSERT_TRUE(policy == Overflow::kDropNewest || policy == Overflow::kDropOldest);
      ++dropped_newest;
      continue;
    }
    accepted[p->shard].push_back(data);
  }
  for (int i = 0; i < 1000; ++i) poll(50);
  const BusStats st = bus->Stats();
  uint64_t total_accepted = 0, total_received = 0;
  for (auto& [s, events] : accepted) {
    total_accepted += events.size();
    const std::vector<std::string>& got = received[s];
    total_received += got.size();
    // In order, no duplicates, only accepted events: a subsequence of what was accepted.
    size_t i = 0;
    for (const std::string& e : got) {
      while (i < events.size() && events[i] != e) ++i;
      ASSERT_LT(i, events.size()) << "shard " << s << ": an event out of order or never accepted: " << e;
      ++i;
    }
    EXPECT_EQ(st.groups[0].shards[s].dropped, events.size() - got.size()) << "shard " << s;
    if (policy != Overflow::kDropOldest) {
      EXPECT_EQ(got, events) << "shard " << s;
    }
  }
  EXPECT_EQ(st.ingested, total_accepted);
  EXPECT_EQ(st.groups[0].delivered, total_received);
  // A producer that timed out still has its event: not a drop. Refused (fail) events are counted.
  EXPECT_EQ(st.dropped_newest, (policy == Overflow::kBlock ? 0 : refused) + dropped_newest);
  EXPECT_EQ(st.dropped_oldest, total_accepted - total_received);
  if (policy == Overflow::kDropOldest) {
    EXPECT_GT(st.dropped_oldest, 0u) << "the model never filled a shard";
  }
  if (policy != Overflow::kDropOldest) {
    EXPECT_GT(refused + dropped_newest, 0u) << "the model never filled a shard";
  }
}

TEST(BusTest, EveryPolicyMatchesTheModel) {
  for (Overflow p : {Overflow::kBlock, Overflow::kDropNewest, Overflow::kDropOldest, Overflow::kFail}) {
    for (uint32_t seed = 1; seed <= 4; ++seed) RunModel(p, seed);
  }
}

// Producers in threads race for one shard while a slow member reads it: under every policy
// each producer's events arrive in order, none twice, and the counts add up exactly.
TEST(BusTest, ProducersRacingForOneShardKeepTheirOrderAndTheCountsAddUp) {
  for (Overflow policy : {Overflow::kBlock, Overflow::kDropNewest, Overflow::kDropOldest, Overflow::kFail}) {
    SCOPED_TRACE(OverflowName(policy));
    auto bus = OpenBus({.shards = 2, .shard_bytes = 8192, .backpressure = policy, .groups = {"g"}});
    constexpr int kProducers = 3, kEach = 20000;
    std::atomic<uint64_t> accepted{0};
    std::atomic<int> running{kProducers};
    std::vector<std::thread> producers;
    for (int p = 0; p < kProducers; ++p) {
      producers.emplace_back([&, p] {
        for (int i = 0; i < kEach; ++i) {
          const int v[2] = {p, i};
          auto r = bus->IngestKeyed(AsBytes("same"), ByteView(reinterpret_cast<const uint8_t*>(v), sizeof(v)),
                                    Deadline::AfterMs(policy == Overflow::kBlock ? 10000 : 0));
          if (r.ok() && !r->dropped()) accepted.fetch_add(1);
          if (!r.ok()) {
            ASSERT_EQ(policy, Overflow::kFail) << r.status().ToString();
            ASSERT_EQ(r.status().code(), Code::kResourceExhausted);
          }
        }
        running.fetch_sub(1);
      });
    }
    // Commits by hand and then yields: between a commit and the next poll the member holds
    // nothing, which is when drop_oldest can take events from it.
    auto c = Join(*bus, "g", {.auto_commit = false});
    std::vector<int> last(kProducers, -1);
    uint64_t received = 0;
    for (;;) {
      const bool producing = running.load() > 0;
      auto batch = c->Poll(policy == Overflow::kBlock ? 256 : 7, Deadline::AfterMs(producing ? 5 : 50));
      if (!batch.ok()) {
        ASSERT_EQ(batch.status().code(), Code::kTimeout);
        if (!producing) break;
        continue;
      }
      for (const Event& e : *batch) {
        int v[2];
        ASSERT_EQ(e.data.size(), sizeof(v));
        std::memcpy(v, e.data.data(), sizeof(v));
        ASSERT_GT(v[1], last[v[0]]) << "producer " << v[0] << "'s order";
        last[v[0]] = v[1];
        ++received;
      }
      ASSERT_TRUE(c->Commit().ok());
      if (policy != Overflow::kBlock) std::this_thread::yield();  // a slow member: the shard fills
    }
    for (auto& t : producers) t.join();
    const BusStats st = bus->Stats();
    EXPECT_EQ(st.ingested, accepted.load());
    EXPECT_EQ(st.groups[0].delivered, received);
    EXPECT_EQ(received + st.groups[0].dropped, accepted.load())
        << "tail " << st.per_shard[bus->ShardOf(AsBytes("same"))].tail << " next "
        << st.groups[0].shards[bus->ShardOf(AsBytes("same"))].next << " committed "
        << st.groups[0].shards[bus->ShardOf(AsBytes("same"))].committed << " dropped_newest " << st.dropped_newest;
    EXPECT_EQ(st.dropped_newest + accepted.load(), uint64_t{kProducers} * kEach);
    if (policy == Overflow::kBlock) {
      EXPECT_EQ(received, uint64_t{kProducers} * kEach);
    }
    if (policy == Overflow::kDropOldest) {
      EXPECT_GT(st.groups[0].dropped, 0u) << "the shard never filled";
    }
    if (policy == Overflow::kDropNewest || policy == Overflow::kFail) {
      EXPECT_GT(st.dropped_newest, 0u);
    }
  }
}

TEST(BusTest, ABlockedProducerWaitsForTheGroupToCommit) {
  auto bus = OpenBus({.shards = 1, .shard_bytes = 4096, .groups = {"g"}});
  const std::string data(200, 'x');
  int accepted = 0;
  while (bus->Ingest(AsBytes(data), Deadline::Now()).ok()) ++accepted;
  ASSERT_GT(accepted, 10);
  auto c = Join(*bus, "g");
  std::atomic<bool> in{false};
  std::thread producer([&] {
    auto p = bus->Ingest(AsBytes(data), Deadline::AfterMs(10000));
    EXPECT_TRUE(p.ok()) << p.status().ToString();
    in = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(in.load()) << "the shard is full: the producer waits";
  ASSERT_TRUE(c->Poll(8, Deadline::AfterMs(1000)).ok());
  ASSERT_TRUE(c->Commit().ok());  // frees space: wakes the producer
  producer.join();
  EXPECT_TRUE(in.load());
  EXPECT_EQ(Drain(*c, accepted + 1 - 8).size(), static_cast<size_t>(accepted + 1 - 8));
}

TEST(BusTest, BatchesIngestAPrefixAndCountTheRest) {
  for (Overflow policy : {Overflow::kDropNewest, Overflow::kFail, Overflow::kBlock}) {
    auto bus = OpenBus({.shards = 1, .shard_bytes = 4096, .backpressure = policy, .groups = {"g"}});
    std::vector<std::string> data;
    for (int i = 0; i < 100; ++i) data.push_back(std::to_string(i) + std::string(60, '.'));
    std::vector<ByteView> views;
    for (auto& d : data) views.push_back(AsBytes(d));
    auto n = bus->IngestBatch(views, Deadline::Now());
    ASSERT_TRUE(n.ok()) << n.status().ToString();
    EXPECT_GT(*n, 0u);
    EXPECT_LT(*n, 100u);
    const BusStats st = bus->Stats();
    EXPECT_EQ(st.ingested, *n);
    EXPECT_EQ(st.dropped_newest, policy == Overflow::kDropNewest ? 100 - *n : 0);
    auto again = bus->IngestBatch(views, Deadline::Now());
    if (policy == Overflow::kDropNewest) {
      EXPECT_EQ(*again, 0u);
    } else {
      EXPECT_EQ(again.status().code(), policy == Overflow::kFail ? Code::kResourceExhausted : Code::kTimeout);
    }
    auto c = Join(*bus, "g");
    std::vector<std::string> got = Drain(*c, *n);
    ASSERT_EQ(got.size(), *n);
    for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], data[i]);
    EXPECT_TRUE(bus->IngestBatch({}, Deadline::Now()).ok());
  }
}

TEST(BusTest, RecordsWrapAroundTheRingIntact) {
  auto bus = OpenBus({.shards = 1, .shard_bytes = 4096, .groups = {"g"}});
  auto c = Join(*bus, "g");
  std::mt19937 rng(7);
  uint64_t last = 0;
  for (int i = 0; i < 5000; ++i) {
    std::string data = std::to_string(i) + "|" + std::string(rng() % 900, static_cast<char>('A' + i % 26));
    auto p = bus->Ingest(AsBytes(data), Deadline::AfterMs(1000));
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    EXPECT_GT(p->offset + 1, last);
    last = p->offset + 1;
    auto batch = c->Poll(1, Deadline::AfterMs(1000));
    ASSERT_TRUE(batch.ok());
    ASSERT_EQ(batch->size(), 1u);
    EXPECT_EQ(Str((*batch)[0].data), data);
    EXPECT_EQ((*batch)[0].position.offset, p->offset);
  }
  EXPECT_GT(last, 4096u * 100) << "many laps";
}

TEST(BusTest, TimestampsAreStampedWhenAsked) {
  auto bus = OpenBus({.shards = 1, .timestamps = true, .groups = {"g"}});
  const int64_t before = WallNs();
  ASSERT_TRUE(bus->IngestKeyed(AsBytes("k"), AsBytes("v")).ok());
  auto c = Join(*bus, "g");
  auto batch = c->Poll(1, Deadline::AfterMs(1000));
  ASSERT_TRUE(batch.ok());
  EXPECT_GE((*batch)[0].timestamp_ns, before);
  EXPECT_LE((*batch)[0].timestamp_ns, WallNs());
  EXPECT_EQ(Str((*batch)[0].key), "k");
  EXPECT_EQ(Str((*batch)[0].data), "v");
}

TEST(BusTest, InterruptEndsAWaitingPoll) {
  auto bus = OpenBus({.shards = 2});
  auto c = Join(*bus, "g");
  std::thread t([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    c->Interrupt();
  });
  EXPECT_EQ(c->Poll(10, Deadline::AfterMs(60000)).status().code(), Code::kClosed);
  t.join();
}

TEST(BusTest, AGroupCreatedLaterStartsAtTheOldestEventOrTheLatest) {
  auto bus = OpenBus({.shards = 1});
  ASSERT_TRUE(bus->Ingest(AsBytes("before")).ok());  // no group yet: kept while there is room
  auto oldest = Join(*bus, "from-oldest");
  auto latest = Join(*bus, "from-latest", {.start = Start::kLatest});
  ASSERT_TRUE(bus->Ingest(AsBytes("after")).ok());
  EXPECT_EQ(Drain(*oldest, 2), (std::vector<std::string>{"before", "after"}));
  EXPECT_EQ(Drain(*latest, 1), (std::vector<std::string>{"after"}));
}

}  // namespace
}  // namespace weft::bus

namespace weft::bus {
namespace {

TEST(BusLingerTest, GatheredEventsArePublishedAsABatchByCountFlushKeyOrThreadExit) {
  for (const char* url : {"memory:", "shm:test.bus.linger"}) {
    Bus::Unlink(url).IgnoreError();
    auto bus = OpenBus({.url = url, .shards = 1, .shard_bytes = 1 << 16, .groups = {"g"},
                        .linger_ns = int64_t{3600} * 1'000'000'000, .linger_events = 4});
    ASSERT_NE(bus, nullptr);
    auto c = Join(*bus, "g");
    for (int i = 0; i < 3; ++i) {
      auto p = bus->Ingest(AsBytes(std::to_string(i)));
      ASSERT_TRUE(p.ok());
      EXPECT_TRUE(p->pending());
    }
    EXPECT_EQ(c->Poll(10, Deadline::Now()).status().code(), Code::kWouldBlock) << "gathered, not published";
    ASSERT_TRUE(bus->Ingest(AsBytes("3")).ok());  // the fourth: the batch goes
    EXPECT_EQ(Drain(*c, 4), (std::vector<std::string>{"0", "1", "2", "3"}));
    ASSERT_TRUE(bus->Ingest(AsBytes("4")).ok());
    EXPECT_EQ(c->Poll(10, Deadline::Now()).status().code(), Code::kWouldBlock);
    ASSERT_TRUE(bus->Flush().ok());
    EXPECT_EQ(Drain(*c, 1), std::vector<std::string>{"4"});
    // A keyed event goes at once, after the thread's gathered ones.
    ASSERT_TRUE(bus->Ingest(AsBytes("5")).ok());
    auto keyed = bus->IngestKeyed(AsBytes("k"), AsBytes("6"));
    ASSERT_TRUE(keyed.ok());
    EXPECT_FALSE(keyed->pending());
    EXPECT_EQ(Drain(*c, 2), (std::vector<std::string>{"5", "6"}));
    // A thread's gathered events are published when it exits.
    std::thread([&] {
      bus->Ingest(AsBytes("7")).status().IgnoreError();
      bus->Ingest(AsBytes("8")).status().IgnoreError();
    }).join();
    EXPECT_EQ(Drain(*c, 2), (std::vector<std::string>{"7", "8"}));
    EXPECT_EQ(bus->Stats().ingested, 9u);
    EXPECT_EQ(bus->Ingest(ByteView(std::vector<uint8_t>(1 << 15).data(), 1 << 15)).status().code(), Code::kTooLarge);
    c.reset();
    bus.reset();
    Bus::Unlink(url).IgnoreError();
  }
}

TEST(BusLingerTest, AnOldGatheredEventIsPublishedByTheNextIngestAndOptionsAreChecked) {
  auto bus = OpenBus({.shards = 1, .shard_bytes = 1 << 16, .groups = {"g"}, .linger_ns = 1'000'000, .linger_events = 1000});
  auto c = Join(*bus, "g");
  ASSERT_TRUE(bus->Ingest(AsBytes("a")).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_TRUE(bus->Ingest(AsBytes("b")).ok());  // the oldest is past linger_ns: both go
  EXPECT_EQ(Drain(*c, 2), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(Bus::Open({.backpressure = Overflow::kFail, .linger_ns = 1000}).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(Bus::Open({.linger_ns = 1000, .linger_events = 0}).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(Bus::Open({.linger_ns = -1}).status().code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace weft::bus
