// The bus on Redis Streams and on NATS JetStream, against real servers (Debian's
// redis-server and nats-server) started by each test on free loopback ports and stopped by
// pid: delivery and order, groups shared by members, a dead member's events taken over, a
// producer killed mid-batch and restarted (with and without its nonce file), the server
// killed mid-ingest, a three-node NATS cluster losing a node, and bad input.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <sodium.h>

#include "support/servers.h"
#include "weft/bus/bus.h"
#include "weft/bus/dedup.h"

namespace weft::bus {
namespace {

using testing::NatsServer;
using testing::RedisServer;
using testing::RemoteServer;

enum class Kind { kRedis, kNats };

std::unique_ptr<RemoteServer> MakeServer(Kind k, std::vector<std::string> extra = {}) {
  if (k == Kind::kRedis) return std::make_unique<RedisServer>(std::move(extra));
  return std::make_unique<NatsServer>(std::move(extra));
}

std::string Str(ByteView b) { return std::string(reinterpret_cast<const char*>(b.data()), b.size()); }

BusOptions Options(const RemoteServer& srv, const std::string& name, uint32_t shards = 2) {
  BusOptions o;
  o.url = srv.url(name);
  o.shards = shards;
  o.remote.op_timeout_ms = 5000;
  return o;
}

// Polls `c` until `want` events came or nothing comes for `quiet_ms`; (shard, data) in order.
std::vector<std::pair<uint32_t, std::string>> Drain(Consumer& c, size_t want, int64_t quiet_ms = 1500) {
  std::vector<std::pair<uint32_t, std::string>> got;
  while (got.size() < want) {
    auto batch = c.Poll(256, Deadline::AfterMs(quiet_ms));
    if (!batch.ok()) break;
    for (const Event& e : *batch) got.emplace_back(e.position.shard, Str(e.data));
  }
  EXPECT_TRUE(c.Commit().ok());
  return got;
}

// Every event of the bus read by a new group `group`, with or without the consumer's dedup;
// empty (and why, on stderr) if the bus could not be opened or joined.
std::vector<std::string> ReadAll(const BusOptions& base, const std::string& group, bool dedup, size_t want) {
  BusOptions o = base;
  o.remote.dedup_capacity = dedup ? 1 << 20 : 0;
  o.groups.clear();
  auto bus = Bus::Open(o);
  if (!bus.ok()) {
    std::fprintf(stderr, "ReadAll: %s\n", bus.status().ToString().c_str());
    return {};
  }
  auto c = (*bus)->Subscribe(group);
  if (!c.ok()) {
    std::fprintf(stderr, "ReadAll: %s\n", c.status().ToString().c_str());
    return {};
  }
  std::vector<std::string> out;
  for (auto& [s, d] : Drain(**c, want, 1500)) out.push_back(d);
  return out;
}

class BusRemoteTest : public ::testing::TestWithParam<Kind> {};

TEST_P(BusRemoteTest, EventsReachTheGroupInShardOrderWithKeysAndStats) {
  auto srv = MakeServer(GetParam());
  ASSERT_TRUE(srv->up());
  BusOptions o = Options(*srv, "basic", 3);
  o.groups = {"g"};
  auto bus = Bus::Open(o);
  ASSERT_TRUE(bus.ok()) << bus.status().ToString();
  std::map<uint32_t, std::vector<std::string>> sent;
  for (int i = 0; i < 300; ++i) {
    const std::string key = "user" + std::to_string(i % 7), data = "e" + std::to_string(i);
    auto p = (*bus)->IngestKeyed(AsBytes(key), AsBytes(data));
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    EXPECT_EQ(p->shard, (*bus)->ShardOf(AsBytes(key)));
    sent[p->shard].push_back(data);
  }
  std::vector<std::string> texts;
  for (int i = 0; i < 100; ++i) texts.push_back("b" + std::to_string(i));
  std::vector<ByteView> batch;
  for (const std::string& t : texts) batch.push_back(AsBytes(t));
  auto n = (*bus)->IngestBatch(batch);
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, 100u);
  auto one = (*bus)->Ingest(AsBytes("last"));  // the batch's shard: this thread's
  ASSERT_TRUE(one.ok());
  for (const std::string& t : texts) sent[one->shard].push_back(t);
  sent[one->shard].push_back("last");

  auto c = (*bus)->Subscribe("g");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  auto got = Drain(**c, 401);
  ASSERT_EQ(got.size(), 401u);
  std::map<uint32_t, std::vector<std::string>> per_shard;
  for (auto& [s, d] : got) per_shard[s].push_back(d);
  EXPECT_EQ(per_shard, sent);  // every event once, in order within its shard

  BusStats st = (*bus)->Stats();
  EXPECT_EQ(st.shards, 3u);
  EXPECT_EQ(st.ingested, 401u);
  ASSERT_EQ(st.groups.size(), 1u);
  EXPECT_EQ(st.groups[0].name, "g");
  EXPECT_EQ(st.groups[0].delivered, 401u);
  for (int i = 0; i < 100 && (*bus)->Stats().groups[0].lag_bytes != 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // acks reach the server
  }
  EXPECT_EQ((*bus)->Stats().groups[0].lag_bytes, 0u);

  // A second open adopts the bus's shape; a must_match open with another shape is refused.
  BusOptions again = Options(*srv, "basic", 8);
  auto b2 = Bus::Open(again);
  ASSERT_TRUE(b2.ok());
  EXPECT_EQ((*b2)->shards(), 3u);
  again.must_match = true;
  EXPECT_EQ(Bus::Open(again).status().code(), Code::kInvalidArgument);
  // A bus that is not there, without create: kNotFound; so is one removed from the server.
  BusOptions absent = Options(*srv, "absent");
  absent.create = false;
  EXPECT_EQ(Bus::Open(absent).status().code(), Code::kNotFound);
  ASSERT_TRUE(Bus::Unlink(o.url).ok());
  BusOptions gone = Options(*srv, "basic");
  gone.create = false;
  EXPECT_EQ(Bus::Open(gone).status().code(), Code::kNotFound);
  EXPECT_EQ(Bus::Unlink(o.url).code(), Code::kNotFound);
}

TEST_P(BusRemoteTest, MembersOfAGroupShareEveryEventExactlyOnceAndEveryGroupSeesAll) {
  auto srv = MakeServer(GetParam());
  ASSERT_TRUE(srv->up());
  BusOptions o = Options(*srv, "share", 4);
  o.groups = {"a", "b"};
  auto bus = Bus::Open(o);
  ASSERT_TRUE(bus.ok()) << bus.status().ToString();
  constexpr int kProducers = 3, kEach = 400;
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      std::vector<std::string> texts;
      for (int i = 0; i < kEach; ++i) texts.push_back(std::to_string(p) + ":" + std::to_string(i));
      for (int i = 0; i < kEach; i += 50) {
        std::vector<ByteView> v;
        for (int j = i; j < i + 50; ++j) v.push_back(AsBytes(texts[j]));
        ASSERT_TRUE((*bus)->IngestBatch(v).ok());
      }
    });
  }
  std::mutex mu;
  std::multiset<std::string> seen_a;
  std::atomic<bool> stop{false};
  std::vector<std::thread> members;
  for (int m = 0; m < 2; ++m) {
    members.emplace_back([&] {
      auto c = (*bus)->Subscribe("a");
      ASSERT_TRUE(c.ok());
      while (!stop.load()) {
        auto batch = (*c)->Poll(64, Deadline::AfterMs(100));
        if (!batch.ok()) continue;
        std::lock_guard<std::mutex> g(mu);
        for (const Event& e : *batch) seen_a.insert(Str(e.data));
      }
      ASSERT_TRUE((*c)->Close().ok());
    });
  }
  for (auto& t : producers) t.join();
  auto b = (*bus)->Subscribe("b");
  ASSERT_TRUE(b.ok());
  auto got_b = Drain(**b, kProducers * kEach);
  for (int i = 0; i < 200; ++i) {
    {
      std::lock_guard<std::mutex> g(mu);
      if (seen_a.size() >= static_cast<size_t>(kProducers * kEach)) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  stop = true;
  for (auto& t : members) t.join();
  // Group a: each event to one member, none twice, none lost. Group b: all of them too.
  EXPECT_EQ(seen_a.size(), static_cast<size_t>(kProducers * kEach));
  EXPECT_EQ(std::set<std::string>(seen_a.begin(), seen_a.end()).size(), seen_a.size());
  EXPECT_EQ(got_b.size(), static_cast<size_t>(kProducers * kEach));
  // One producer's events, read by one member of b, are in the order it sent them.
  std::map<std::string, int> last;
  for (auto& [s, d] : got_b) {
    const std::string p = d.substr(0, d.find(':'));
    const int i = std::stoi(d.substr(d.find(':') + 1));
    EXPECT_GT(i, last.count(p) ? last[p] : -1) << d;
    last[p] = i;
  }
}

// A member in another process takes events and is SIGKILLed before it commits: another member
// of the group gets them once they were idle for claim_idle_ms. Control: with a long
// claim_idle_ms they stay with the dead member.
void DeadMemberCase(Kind kind, bool short_idle) {
  auto srv = MakeServer(kind);
  ASSERT_TRUE(srv->up());
  BusOptions o = Options(*srv, short_idle ? "claim" : "noclaim", 1);
  o.groups = {"g"};
  o.remote.claim_idle_ms = short_idle ? 300 : 600'000;
  {
    auto bus = Bus::Open(o);
    ASSERT_TRUE(bus.ok()) << bus.status().ToString();
    for (int i = 0; i < 20; ++i) ASSERT_TRUE((*bus)->Ingest(AsBytes("e" + std::to_string(i))).ok());
  }
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const pid_t child = ::fork();
  if (child == 0) {
    auto bus = Bus::Open(o);
    if (!bus.ok()) ::_exit(1);
    auto c = (*bus)->Subscribe("g", {.auto_commit = false});
    if (!c.ok()) ::_exit(2);
    size_t got = 0;
    while (got < 20) {
      auto b = (*c)->Poll(5, Deadline::AfterMs(2000));  // taken, never committed
      if (!b.ok()) ::_exit(3);
      got += b->size();
    }
    (void)!::write(fds[1], "x", 1);
    ::pause();
    ::_exit(0);
  }
  char x = 0;
  ASSERT_EQ(::read(fds[0], &x, 1), 1);
  ::kill(child, SIGKILL);
  int st;
  ::waitpid(child, &st, 0);
  ::close(fds[0]);
  ::close(fds[1]);

  auto bus = Bus::Open(o);
  ASSERT_TRUE(bus.ok());
  auto c = (*bus)->Subscribe("g");
  ASSERT_TRUE(c.ok());
  std::set<std::string> got;
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  while (std::chrono::steady_clock::now() < until && got.size() < 20) {
    auto b = (*c)->Poll(64, Deadline::AfterMs(100));
    if (!b.ok()) continue;
    for (const Event& e : *b) got.insert(Str(e.data));
  }
  if (short_idle) {
    EXPECT_EQ(got.size(), 20u);  // every event the dead member held, delivered again
  } else {
    EXPECT_EQ(got.size(), 0u);  // still pending on the dead member
  }
}

TEST_P(BusRemoteTest, ADeadMembersPendingEventsAreTakenOverByAnother) { DeadMemberCase(GetParam(), true); }
TEST_P(BusRemoteTest, ControlWithoutTakeoverTheyStayPending) { DeadMemberCase(GetParam(), false); }

// A producer sends one large batch and is SIGKILLed once part of it is in the bus; it is
// restarted and sends the batch again from where its nonce file says. With the file, after
// dedup every event is there once; the control without the file shows the duplicates.
void KilledProducerCase(Kind kind, bool persistent) {
  auto srv = MakeServer(kind);
  ASSERT_TRUE(srv->up());
  const std::string name = persistent ? "nonce" : "nononce";
  BusOptions o = Options(*srv, name, 1);
  o.groups = {"g"};
  if (persistent) o.remote.nonce_path = srv->dir() + "/producer.nonce";
  constexpr int kBatch = 100'000;
  auto produce = [&]() {
    // Resume where the nonce file says (0 the first time): the batch is events 0..kBatch-1.
    uint64_t from = 0;
    if (persistent) {
      auto n = ProducerNonce::Open(o.remote.nonce_path);
      if (!n.ok()) ::_exit(1);
      from = (*n)->durable_sequence();
    }
    if (from >= static_cast<uint64_t>(kBatch)) ::_exit(0);
    auto bus = Bus::Open(o);
    if (!bus.ok()) ::_exit(2);
    std::vector<std::string> texts;
    for (int i = 0; i < kBatch; ++i) texts.push_back("event-" + std::to_string(i) + std::string(40, 'x'));
    std::vector<ByteView> v;
    for (const std::string& t : texts) v.push_back(AsBytes(t));
    auto n = (*bus)->IngestBatch(v, Deadline::AfterMs(60'000));
    ::_exit(n.ok() ? 0 : 3);
  };
  auto watcher = Bus::Open(o);
  ASSERT_TRUE(watcher.ok()) << watcher.status().ToString();
  const pid_t first = ::fork();
  if (first == 0) produce();
  // Kill it once part of the batch is in the bus, before all of it is.
  uint64_t in = 0;
  for (int i = 0; i < 100'000 && in == 0; ++i) in = (*watcher)->Stats().ingested;
  ::kill(first, SIGKILL);
  int st;
  ::waitpid(first, &st, 0);
  ASSERT_GT(in, 0u);
  ASSERT_LT(in, static_cast<uint64_t>(kBatch)) << "the batch completed before the kill";
  const pid_t second = ::fork();
  if (second == 0) produce();
  ::waitpid(second, &st, 0);
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);

  const std::vector<std::string> deduped = ReadAll(o, "after", true, 3 * kBatch);
  std::map<std::string, int> count;
  for (const std::string& d : deduped) ++count[d];
  EXPECT_EQ(count.size(), static_cast<size_t>(kBatch));  // every event is there
  if (persistent) {
    EXPECT_EQ(deduped.size(), static_cast<size_t>(kBatch));  // each once after dedup
  } else {
    EXPECT_GT(deduped.size(), static_cast<size_t>(kBatch));  // a new nonce: the resent events are new events
  }
}

TEST_P(BusRemoteTest, AProducerKilledMidBatchAndRestartedWithItsNonceLeavesNoDuplicates) {
  KilledProducerCase(GetParam(), true);
}
TEST_P(BusRemoteTest, ControlWithoutANonceFileTheResentEventsAreDuplicates) { KilledProducerCase(GetParam(), false); }

// The server SIGKILLed and restarted during ingest (redis: append-only, fsync always): the
// producer retries through it; every acknowledged event is there after the restart, once
// after dedup.
TEST_P(BusRemoteTest, TheServerKilledMidIngestLosesNoAcknowledgedEvent) {
  std::vector<std::string> durable;
  if (GetParam() == Kind::kRedis) durable = {"--appendonly", "yes", "--appendfsync", "always"};
  auto srv = MakeServer(GetParam(), durable);
  ASSERT_TRUE(srv->up());
  BusOptions o = Options(*srv, "crash", 2);
  o.groups = {"g"};
  o.remote.op_timeout_ms = 20'000;
  auto bus = Bus::Open(o);
  ASSERT_TRUE(bus.ok()) << bus.status().ToString();
  std::atomic<int> acked{0};
  std::atomic<bool> failed{false};
  std::string why;
  std::thread producer([&] {
    for (int b = 0; b < 60; ++b) {
      std::vector<std::string> texts;
      for (int i = 0; i < 200; ++i) texts.push_back(std::to_string(b * 200 + i));
      std::vector<ByteView> v;
      for (const std::string& t : texts) v.push_back(AsBytes(t));
      auto n = (*bus)->IngestBatch(v, Deadline::AfterMs(20'000));
      if (!n.ok() || *n != v.size()) {
        why = n.ok() ? "short" : n.status().ToString();
        failed = true;
        return;
      }
      acked.store((b + 1) * 200);
    }
  });
  while (acked.load() < 2000 && !failed) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  srv->Kill();
  EXPECT_LT(acked.load(), 12'000);  // killed while the producer was still at work
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  ASSERT_TRUE(srv->Start());
  producer.join();
  ASSERT_FALSE(failed) << why;
  ASSERT_EQ(acked.load(), 12'000);
  const std::vector<std::string> all = ReadAll(o, "audit", true, 24'000);
  std::set<std::string> distinct(all.begin(), all.end());
  EXPECT_EQ(distinct.size(), 12'000u);  // every acknowledged event
  EXPECT_EQ(all.size(), 12'000u);       // each once after dedup
}

TEST_P(BusRemoteTest, MaxLenKeepsTheNewestAndCountsTheDrops) {
  auto srv = MakeServer(GetParam());
  ASSERT_TRUE(srv->up());
  BusOptions o = Options(*srv, "trim", 1);
  o.groups = {"g"};
  o.remote.max_len = 100;
  EXPECT_EQ(Bus::Open(o).status().code(), Code::kInvalidArgument);  // block with max_len
  o.backpressure = Overflow::kDropOldest;
  auto bus = Bus::Open(o);
  ASSERT_TRUE(bus.ok()) << bus.status().ToString();
  for (int i = 0; i < 250; ++i) ASSERT_TRUE((*bus)->Ingest(AsBytes(std::to_string(i))).ok());
  auto c = (*bus)->Subscribe("g");
  ASSERT_TRUE(c.ok());
  auto got = Drain(**c, 100);
  ASSERT_EQ(got.size(), 100u);
  EXPECT_EQ(got.front().second, "150");  // the newest 100 kept
  BusStats st = (*bus)->Stats();
  EXPECT_EQ(st.ingested, 250u);
  EXPECT_EQ(st.dropped_oldest, 150u);
}

TEST_P(BusRemoteTest, BadInputGetsClearErrorsWithinTheDeadline) {
  std::vector<std::string> auth = GetParam() == Kind::kRedis ? std::vector<std::string>{"--requirepass", "sesame"}
                                                             : std::vector<std::string>{"--user", "ann", "--pass", "sesame"};
  auto srv = MakeServer(GetParam(), auth);
  ASSERT_TRUE(srv->up());
  BusOptions o = Options(*srv, "auth");
  o.remote.op_timeout_ms = 2000;
  auto none = Bus::Open(o);
  EXPECT_EQ(none.status().code(), Code::kUnauthenticated) << none.status().ToString();
  o.url = srv->url("auth", GetParam() == Kind::kRedis ? ":wrong" : "ann:wrong");
  auto wrong = Bus::Open(o);
  EXPECT_EQ(wrong.status().code(), Code::kUnauthenticated) << wrong.status().ToString();
  o.url = srv->url("auth", GetParam() == Kind::kRedis ? ":sesame" : "ann:sesame");
  auto right = Bus::Open(o);
  ASSERT_TRUE(right.ok()) << right.status().ToString();
  EXPECT_TRUE((*right)->Ingest(AsBytes("x")).ok());
  std::string big(2 << 20, 'b');
  EXPECT_EQ((*right)->Ingest(AsBytes(big)).status().code(), Code::kTooLarge);
  EXPECT_EQ((*right)->Subscribe("no good").status().code(), Code::kInvalidArgument);

  // Nothing listening: kUnavailable, within the deadline.
  BusOptions down;
  const std::string scheme = GetParam() == Kind::kRedis ? "redis" : "nats";
  down.url = scheme + "://127.0.0.1:" + std::to_string(testing::FreePort()) + "/x";
  down.remote.op_timeout_ms = 300;
  const auto t0 = std::chrono::steady_clock::now();
  auto d = Bus::Open(down);
  EXPECT_EQ(d.status().code(), Code::kUnavailable) << d.status().ToString();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10));  // bounded: not a timing claim

  for (const std::string& bad : {scheme + "://127.0.0.1:1", scheme + "://127.0.0.1:99999/x", scheme + ":///x",
                                 scheme + "://h:1/a b", scheme + "://h:1/x?what=1", std::string("rediss://h:1/x")}) {
    BusOptions b;
    b.url = bad;
    EXPECT_EQ(Bus::Open(b).status().code(), Code::kInvalidArgument) << bad;
  }
}

// The pollable descriptor: readable at first; after a poll that found nothing, not readable
// until an event comes; Interrupt ends a waiting poll.
TEST_P(BusRemoteTest, WaitFdTurnsReadableWhenAnEventComesAndInterruptEndsAPoll) {
  auto srv = MakeServer(GetParam());
  ASSERT_TRUE(srv->up());
  BusOptions o = Options(*srv, "fd", 2);
  o.groups = {"g"};
  auto bus = Bus::Open(o);
  ASSERT_TRUE(bus.ok()) << bus.status().ToString();
  auto c = (*bus)->Subscribe("g");
  ASSERT_TRUE(c.ok());
  auto fd = (*c)->WaitFd();
  ASSERT_TRUE(fd.ok()) << fd.status().ToString();
  auto readable = [&](int ms) {
    pollfd p{*fd, POLLIN, 0};
    return ::poll(&p, 1, ms) == 1;
  };
  EXPECT_TRUE(readable(0));  // starts readable
  EXPECT_EQ((*c)->Poll(16, Deadline::Now()).status().code(), Code::kWouldBlock);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the watcher is in its read
  EXPECT_FALSE(readable(0));
  ASSERT_TRUE((*bus)->Ingest(AsBytes("ring")).ok());
  EXPECT_TRUE(readable(5000));
  auto got = (*c)->Poll(16, Deadline::AfterMs(2000));
  ASSERT_TRUE(got.ok());
  ASSERT_EQ(got->size(), 1u);
  EXPECT_EQ(Str((*got)[0].data), "ring");
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    (*c)->Interrupt();
  });
  EXPECT_EQ((*c)->Poll(16, Deadline::AfterMs(10'000)).status().code(), Code::kClosed);
  stopper.join();
}

// The server away: block retries until the deadline and then answers Unavailable (the events
// were not taken); fail answers Unavailable after one attempt; drop_newest drops and counts.
// When the server is back, the same handles work again.
TEST_P(BusRemoteTest, WhileTheServerIsAwayEachPolicyAnswersAsItSays) {
  auto srv = MakeServer(GetParam());
  ASSERT_TRUE(srv->up());
  std::vector<std::unique_ptr<Bus>> buses;
  for (Overflow policy : {Overflow::kBlock, Overflow::kFail, Overflow::kDropNewest}) {
    BusOptions o = Options(*srv, std::string("away") + OverflowName(policy), 1);
    o.backpressure = policy;
    o.remote.op_timeout_ms = 500;
    auto b = Bus::Open(o);
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    ASSERT_TRUE((*b)->Ingest(AsBytes("before")).ok());
    buses.push_back(std::move(b).value());
  }
  srv->Kill();
  const std::vector<ByteView> batch = {AsBytes("a"), AsBytes("b")};
  auto blocked = buses[0]->IngestBatch(batch, Deadline::AfterMs(700));
  EXPECT_EQ(blocked.status().code(), Code::kUnavailable) << blocked.status().ToString();
  auto failed = buses[1]->Ingest(AsBytes("x"), Deadline::AfterMs(10'000));
  EXPECT_EQ(failed.status().code(), Code::kUnavailable) << failed.status().ToString();
  auto dropped = buses[2]->IngestBatch(batch, Deadline::AfterMs(700));
  ASSERT_TRUE(dropped.ok()) << dropped.status().ToString();
  EXPECT_EQ(*dropped, 2u);
  auto one = buses[2]->Ingest(AsBytes("c"), Deadline::AfterMs(700));
  ASSERT_TRUE(one.ok()) << one.status().ToString();
  EXPECT_TRUE(one->dropped());
  ASSERT_TRUE(srv->Start());
  for (int i = 0; i < 100 && !buses[0]->Ingest(AsBytes("after"), Deadline::AfterMs(2000)).ok(); ++i) {
  }
  EXPECT_EQ(buses[2]->Stats().dropped_newest, 3u);  // counted, never silent
  EXPECT_TRUE(buses[1]->Ingest(AsBytes("after"), Deadline::AfterMs(5000)).ok());
}

std::string KindName(const ::testing::TestParamInfo<Kind>& i) { return i.param == Kind::kRedis ? "redis" : "nats"; }
INSTANTIATE_TEST_SUITE_P(Backends, BusRemoteTest, ::testing::Values(Kind::kRedis, Kind::kNats), KindName);

// ---- one backend ---------------------------------------------------------------------------------

// A key of another type where a shard's stream belongs: Redis's refusal, typed.
TEST(BusRedisTest, TheServersRefusalReachesTheProducer) {
  RedisServer srv;
  ASSERT_TRUE(srv.up());
  BusOptions o = Options(srv, "typed", 1);
  auto bus = Bus::Open(o);
  ASSERT_TRUE(bus.ok());
  ASSERT_TRUE((*bus)->Ingest(AsBytes("ok")).ok());
  // Replace the stream with a string (redis-cli, from redis-tools).
  const std::string cmd = "redis-cli -p " + std::to_string(srv.port()) + " SET weft:bus:typed:0 x > /dev/null && redis-cli -p " +
                          std::to_string(srv.port()) + " TYPE weft:bus:typed:0";
  FILE* f = ::popen(("redis-cli -p " + std::to_string(srv.port()) + " DEL weft:bus:typed:0 > /dev/null && " + cmd).c_str(), "r");
  char out[64] = {};
  ASSERT_NE(std::fgets(out, sizeof(out), f), nullptr);
  ::pclose(f);
  ASSERT_EQ(std::string(out), "string\n");
  auto p = (*bus)->Ingest(AsBytes("x"));
  EXPECT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("WRONGTYPE"), std::string::npos) << p.status().ToString();
}

// Three nats-server processes clustered on loopback ports, a stream with three replicas: one
// node SIGKILLed during ingest; every acknowledged event is there, read through another node.
TEST(BusNatsClusterTest, ANodeKilledDuringIngestLosesNothingAcknowledged) {
  std::vector<std::unique_ptr<NatsServer>> nodes;
  for (int i = 0; i < 3; ++i) nodes.push_back(std::make_unique<NatsServer>(std::vector<std::string>{}, false));
  std::vector<int> routes;
  for (auto& n : nodes) routes.push_back(n->cluster_port());
  for (int i = 0; i < 3; ++i) {
    nodes[i]->JoinCluster("n" + std::to_string(i), routes);
    ASSERT_TRUE(nodes[i]->Start()) << "node " << i;
  }
  auto all = [&](const std::vector<int>& which) {
    std::string u = "nats://";
    for (int i : which) u += (u.size() > 7 ? "," : "") + std::string("127.0.0.1:") + std::to_string(nodes[i]->port());
    return u + "/r3";
  };
  BusOptions o;
  o.url = all({0, 1, 2});
  o.shards = 2;
  o.groups = {"g"};
  o.remote.replicas = 3;
  o.remote.op_timeout_ms = 20'000;
  // The cluster elects its JetStream meta leader first: opening retries until it answers.
  Result<std::unique_ptr<Bus>> bus = Status(Code::kUnavailable, "");
  for (int i = 0; i < 100 && !bus.ok(); ++i) {
    bus = Bus::Open(o);
    if (!bus.ok()) std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  ASSERT_TRUE(bus.ok()) << bus.status().ToString();
  std::atomic<int> acked{0};
  std::string why;
  std::thread producer([&] {
    for (int b = 0; b < 40; ++b) {
      std::vector<std::string> texts;
      for (int i = 0; i < 100; ++i) texts.push_back(std::to_string(b * 100 + i));
      std::vector<ByteView> v;
      for (const std::string& t : texts) v.push_back(AsBytes(t));
      auto n = (*bus)->IngestBatch(v, Deadline::AfterMs(20'000));
      if (!n.ok()) {
        why = n.status().ToString();
        return;
      }
      acked.store((b + 1) * 100);
    }
  });
  while (acked.load() < 1000 && why.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  nodes[0]->Kill();  // the node the producer is connected to
  producer.join();
  ASSERT_TRUE(why.empty()) << why;
  ASSERT_EQ(acked.load(), 4000);
  BusOptions through = o;
  through.url = all({2});
  // The cluster may still be electing leaders after the loss: the reader retries its open.
  std::vector<std::string> got;
  for (int attempt = 0; attempt < 5 && got.empty(); ++attempt) got = ReadAll(through, "audit", false, 8000);
  std::set<std::string> distinct(got.begin(), got.end());
  EXPECT_EQ(distinct.size(), 4000u);
  EXPECT_EQ(got.size(), 4000u);  // the server's dedup dropped every resent copy
}

// ---- authentication ------------------------------------------------------------------------------

// NKeys as nats-server reads them: base32 (RFC 4648, no padding) of a prefix, the key and a
// CRC-16/XMODEM (little-endian).
std::string Base32(const std::vector<uint8_t>& in) {
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  std::string out;
  uint32_t buffer = 0;
  int bits = 0;
  for (uint8_t b : in) {
    buffer = (buffer << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out.push_back(kAlphabet[(buffer >> (bits - 5)) & 31]);
      bits -= 5;
    }
  }
  if (bits > 0) out.push_back(kAlphabet[(buffer << (5 - bits)) & 31]);
  return out;
}

std::string NKeyEncode(std::vector<uint8_t> raw) {
  uint16_t crc = 0;
  for (uint8_t b : raw) {
    crc ^= static_cast<uint16_t>(b) << 8;
    for (int i = 0; i < 8; ++i) crc = (crc & 0x8000) ? static_cast<uint16_t>((crc << 1) ^ 0x1021) : static_cast<uint16_t>(crc << 1);
  }
  raw.push_back(static_cast<uint8_t>(crc & 0xff));
  raw.push_back(static_cast<uint8_t>(crc >> 8));
  return Base32(raw);
}

// A user NKey: {public "U...", seed "SU..."}.
std::pair<std::string, std::string> MakeUserNKey() {
  constexpr uint8_t kUser = 20 << 3, kSeed = 18 << 3;
  uint8_t seed[crypto_sign_SEEDBYTES], pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
  randombytes_buf(seed, sizeof(seed));
  crypto_sign_seed_keypair(pk, sk, seed);
  std::vector<uint8_t> pub = {kUser};
  pub.insert(pub.end(), pk, pk + sizeof(pk));
  std::vector<uint8_t> sd = {static_cast<uint8_t>(kSeed | (kUser >> 5)), static_cast<uint8_t>((kUser & 31) << 3)};
  sd.insert(sd.end(), seed, seed + sizeof(seed));
  return {NKeyEncode(pub), NKeyEncode(sd)};
}

void WriteFile(const std::string& path, const std::string& text) {
  FILE* f = std::fopen(path.c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fputs(text.c_str(), f);
  std::fclose(f);
}

// Opens `url` and ingests one event; the status of the first step that failed.
Status TryBus(const std::string& url) {
  BusOptions o;
  o.url = url;
  o.shards = 1;
  o.remote.op_timeout_ms = 3000;
  auto b = Bus::Open(o);
  if (!b.ok()) return b.status();
  auto p = (*b)->Ingest(AsBytes("x"));
  return p.ok() ? Status::Ok() : p.status();
}

TEST(BusNatsAuthTest, ATokenIsCheckedByTheServer) {
  NatsServer srv({"--auth", "sesame"});
  ASSERT_TRUE(srv.up());
  EXPECT_TRUE(TryBus(srv.url("tok", "sesame")).ok());
  EXPECT_EQ(TryBus(srv.url("tok", "wrong")).code(), Code::kUnauthenticated);
  EXPECT_EQ(TryBus(srv.url("tok")).code(), Code::kUnauthenticated);
}

TEST(BusNatsAuthTest, AnNKeySignsTheConnection) {
  ASSERT_EQ(sodium_init() >= 0, true);
  auto [pub, seed] = MakeUserNKey();
  auto [other_pub, other_seed] = MakeUserNKey();
  NatsServer probe({}, false);  // for its directory
  const std::string conf = probe.dir() + "/nkey.conf", seed_file = probe.dir() + "/user.nk",
                    other_file = probe.dir() + "/other.nk";
  WriteFile(conf, "authorization { users = [ { nkey: " + pub + " } ] }\n");
  WriteFile(seed_file, seed + "\n");
  WriteFile(other_file, other_seed + "\n");
  NatsServer srv({"-c", conf});
  ASSERT_TRUE(srv.up());
  EXPECT_TRUE(TryBus(srv.url("nk") + "?nkey=" + pub + "&seed=" + seed_file).ok());
  // Another key, or the right public key with another key's seed: refused.
  EXPECT_EQ(TryBus(srv.url("nk") + "?nkey=" + other_pub + "&seed=" + other_file).code(), Code::kUnauthenticated);
  EXPECT_EQ(TryBus(srv.url("nk") + "?nkey=" + pub + "&seed=" + other_file).code(), Code::kUnauthenticated);
  EXPECT_EQ(TryBus(srv.url("nk") + "?nkey=" + pub).code(), Code::kInvalidArgument);  // no seed file
}

TEST(BusNatsAuthTest, TlsWithTheServersCaAndOnlyWithIt) {
  NatsServer probe({}, false);
  const std::string d = probe.dir();
  const std::string make =
      "cd " + d + " && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key "
      "-out ca.pem -days 1 -subj /CN=weft-test-ca 2>/dev/null && "
      "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout server.key -out server.csr "
      "-subj /CN=127.0.0.1 2>/dev/null && printf 'subjectAltName=IP:127.0.0.1\\n' > san.ext && "
      "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 1 "
      "-extfile san.ext 2>/dev/null && "
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout other.key -out other.pem "
      "-days 1 -subj /CN=someone-else 2>/dev/null";
  ASSERT_EQ(std::system(make.c_str()), 0);
  NatsServer srv({"--tls", "--tlscert", d + "/server.pem", "--tlskey", d + "/server.key"});
  ASSERT_TRUE(srv.up());
  const std::string host = "127.0.0.1:" + std::to_string(srv.port()) + "/sec";
  EXPECT_TRUE(TryBus("tls://" + host + "?ca=" + d + "/ca.pem").ok());
  EXPECT_TRUE(TryBus("nats://" + host + "?tls=1&ca=" + d + "/ca.pem").ok());
  // A CA that did not sign the server's certificate: the server is not trusted.
  EXPECT_EQ(TryBus("tls://" + host + "?ca=" + d + "/other.pem").code(), Code::kUnauthenticated);
  // Without TLS, a server that requires it refuses the connection.
  EXPECT_FALSE(TryBus("nats://" + host).ok());
}

TEST(BusRedisAuthTest, AnAclUserAndPassword) {
  RedisServer srv({"--user", "ann", "on", ">sesame", "~*", "&*", "+@all", "--user", "default", "off"});
  ASSERT_TRUE(srv.up());
  EXPECT_TRUE(TryBus(srv.url("acl", "ann:sesame")).ok());
  EXPECT_EQ(TryBus(srv.url("acl", "ann:wrong")).code(), Code::kUnauthenticated);
  EXPECT_EQ(TryBus(srv.url("acl", "bob:sesame")).code(), Code::kUnauthenticated);
  EXPECT_EQ(TryBus(srv.url("acl")).code(), Code::kUnauthenticated);
}

TEST(RedisStreamDedupTest, RemembersUpToItsCapacityAndForgetsTheLeastRecent) {
  RedisStreamDedup d(3);
  EXPECT_FALSE(d.Seen("a"));
  EXPECT_FALSE(d.Seen("b"));
  EXPECT_FALSE(d.Seen("c"));
  EXPECT_TRUE(d.Seen("a"));   // a is now the most recent
  EXPECT_FALSE(d.Seen("d"));  // b forgotten
  EXPECT_FALSE(d.Seen("b"));
  EXPECT_TRUE(d.Seen("a"));
  EXPECT_EQ(d.size(), 3u);
  EXPECT_EQ(d.duplicates(), 2u);
}

// Against a model (a list, most recent first) over random ids from a small space: the same
// answer to every call, and the same size.
TEST(RedisStreamDedupTest, AnswersAsAnLruModelDoes) {
  constexpr size_t kCapacity = 100;
  RedisStreamDedup d(kCapacity);
  std::list<std::string> model;
  std::mt19937_64 rng(7);
  for (int i = 0; i < 200'000; ++i) {
    const std::string id = "0123456789abcdef:" + std::to_string(rng() % 300) + ":" + std::to_string(rng() % 2);
    auto it = std::find(model.begin(), model.end(), id);
    const bool seen = it != model.end();
    if (seen) model.erase(it);
    model.push_front(id);
    if (model.size() > kCapacity) model.pop_back();
    ASSERT_EQ(d.Seen(id), seen) << "call " << i << " id " << id;
    ASSERT_EQ(d.size(), model.size());
  }
}

TEST(ProducerNonceTest, TheFileKeepsTheNonceAndTheAcknowledgedSequence) {
  char tmpl[] = "/tmp/weft-nonce-XXXXXX";
  const std::string dir = ::mkdtemp(tmpl);
  const std::string path = dir + "/p.nonce";
  uint64_t nonce = 0;
  {
    auto n = ProducerNonce::Open(path);
    ASSERT_TRUE(n.ok()) << n.status().ToString();
    nonce = (*n)->nonce();
    EXPECT_NE(nonce, 0u);
    const uint64_t a = (*n)->Reserve(10), b = (*n)->Reserve(5);
    EXPECT_EQ(a, 0u);
    EXPECT_EQ(b, 10u);
    ASSERT_TRUE((*n)->Acknowledged(b, 5).ok());  // out of order: not durable yet
    EXPECT_EQ((*n)->durable_sequence(), 0u);
    ASSERT_TRUE((*n)->Acknowledged(a, 10).ok());
    EXPECT_EQ((*n)->durable_sequence(), 15u);
    (*n)->Reserve(7);  // never acknowledged
  }
  auto again = ProducerNonce::Open(path);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)->nonce(), nonce);
  EXPECT_EQ((*again)->durable_sequence(), 15u);
  EXPECT_EQ((*again)->Reserve(1), 15u);
  EXPECT_EQ(EventId(0xabc, 2, 15, 3), "0000000000000abc:2:15:3");
  // A file that is not one is refused, not overwritten.
  const std::string junk = dir + "/junk";
  FILE* f = std::fopen(junk.c_str(), "w");
  std::fputs("not a nonce file, not at all, no", f);
  std::fclose(f);
  EXPECT_EQ(ProducerNonce::Open(junk).status().code(), Code::kCorrupt);
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

}  // namespace
}  // namespace weft::bus
