// The bus on Redis Streams, against a real redis-server started by each test on a free
// loopback port (stopped by pid): delivery and order, groups shared by members, a dead
// member's pending events taken over, a producer killed mid-batch and restarted (with and
// without its nonce file), the server killed mid-ingest, and bad input.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "support/servers.h"
#include "weft/bus/bus.h"
#include "weft/bus/dedup.h"
#include "weft/net/redis.h"

namespace weft::bus {
namespace {

using testing::RedisServer;

std::string Str(ByteView b) { return std::string(reinterpret_cast<const char*>(b.data()), b.size()); }

BusOptions Options(const RedisServer& srv, const std::string& name, uint32_t shards = 2) {
  BusOptions o;
  o.url = srv.url(name);
  o.shards = shards;
  o.remote.op_timeout_ms = 5000;
  return o;
}

// Polls `c` until `want` events came or nothing comes for a while; the events' data, in order.
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

// Every entry's data over the bus's streams, read straight from Redis, with its dedup id.
std::vector<std::pair<std::string, std::string>> StreamContents(const RedisServer& srv, const std::string& name,
                                                                uint32_t shards) {
  std::vector<std::pair<std::string, std::string>> out;
  net::RedisOptions ro;
  ro.port = srv.port();
  auto c = net::RedisConnection::Connect(ro);
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  if (!c.ok()) return out;
  for (uint32_t s = 0; s < shards; ++s) {
    const std::string key = "weft:bus:" + name + ":" + std::to_string(s);
    std::string_view argv[] = {"XRANGE", key, "-", "+"};
    auto r = (*c)->Command(argv, Deadline::AfterMs(5000));
    EXPECT_TRUE(r.ok());
    if (!r.ok()) continue;
    for (size_t i = 0; i < r->root().size(); ++i) {
      net::RedisValue f = r->root()[i][1];
      std::string id, d;
      for (size_t j = 0; j + 1 < f.size(); j += 2) {
        if (f[j].str() == "id") id = f[j + 1].str();
        if (f[j].str() == "d") d = f[j + 1].str();
      }
      out.emplace_back(id, d);
    }
  }
  return out;
}

TEST(BusRedisTest, EventsReachTheGroupInShardOrderWithKeysAndStats) {
  RedisServer srv;
  ASSERT_TRUE(srv.up());
  BusOptions o = Options(srv, "basic", 3);
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
  std::vector<ByteView> batch;
  std::vector<std::string> texts;
  for (int i = 0; i < 100; ++i) texts.push_back("b" + std::to_string(i));
  for (const std::string& t : texts) batch.push_back(AsBytes(t));
  auto n = (*bus)->IngestBatch(batch);
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, 100u);
  // The batch went to this thread's shard, after the keyed events there.
  auto one = (*bus)->Ingest(AsBytes("last"));
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
  EXPECT_EQ(st.groups[0].lag_bytes, 0u);  // all acked

  // A second open adopts the bus's shape; a must_match open with another shape is refused.
  BusOptions again = Options(srv, "basic", 8);
  auto b2 = Bus::Open(again);
  ASSERT_TRUE(b2.ok());
  EXPECT_EQ((*b2)->shards(), 3u);
  again.must_match = true;
  EXPECT_EQ(Bus::Open(again).status().code(), Code::kInvalidArgument);
}

TEST(BusRedisTest, MembersOfAGroupShareEveryEventExactlyOnceAndEveryGroupSeesAll) {
  RedisServer srv;
  ASSERT_TRUE(srv.up());
  BusOptions o = Options(srv, "share", 4);
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
      std::map<std::string, int> last;  // per producer: events of one producer keep their order
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
  for (int i = 0; i < 100; ++i) {
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
void DeadMemberCase(bool short_idle) {
  RedisServer srv;
  ASSERT_TRUE(srv.up());
  BusOptions o = Options(srv, short_idle ? "claim" : "noclaim", 1);
  o.groups = {"g"};
  o.remote.claim_idle_ms = short_idle ? 300 : 600'000;
  {
    auto bus = Bus::Open(o);
    ASSERT_TRUE(bus.ok());
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
  char x;
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

TEST(BusRedisTest, ADeadMembersPendingEventsAreTakenOverByAnother) { DeadMemberCase(true); }
TEST(BusRedisTest, ControlWithoutTakeoverTheyStayPending) { DeadMemberCase(false); }

// A producer sends one large batch and is SIGKILLed once part of it is in the stream; it is
// restarted and sends the batch again from where its nonce file says. With the file, after
// dedup every event is there once; the control without the file shows the duplicates.
void KilledProducerCase(bool persistent) {
  RedisServer srv;
  ASSERT_TRUE(srv.up());
  char tmpl[] = "/tmp/weft-nonce-XXXXXX";
  const std::string dir = ::mkdtemp(tmpl);
  const std::string name = persistent ? "nonce" : "nononce";
  BusOptions o = Options(srv, name, 1);
  o.groups = {"g"};
  if (persistent) o.remote.nonce_path = dir + "/producer.nonce";
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
    auto n = (*bus)->IngestBatch(v, Deadline::AfterMs(30'000));
    ::_exit(n.ok() ? 0 : 3);
  };
  const pid_t first = ::fork();
  if (first == 0) produce();
  // Kill it once part of the batch is in the stream, before all of it is.
  net::RedisOptions ro;
  ro.port = srv.port();
  auto c = net::RedisConnection::Connect(ro);
  ASSERT_TRUE(c.ok());
  const std::string key = "weft:bus:" + name + ":0";
  int64_t len = 0;
  for (int i = 0; i < 200'000 && len == 0; ++i) {
    std::string_view argv[] = {"XLEN", key};
    auto r = (*c)->Command(argv, Deadline::AfterMs(1000));
    ASSERT_TRUE(r.ok());
    len = r->root().integer();
  }
  ::kill(first, SIGKILL);
  int st;
  ::waitpid(first, &st, 0);
  ASSERT_GT(len, 0);
  ASSERT_LT(len, kBatch) << "the batch completed before the kill";
  const pid_t second = ::fork();
  if (second == 0) produce();
  ::waitpid(second, &st, 0);
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);

  auto contents = StreamContents(srv, name, 1);
  RedisStreamDedup dedup(1 << 20);
  std::map<std::string, int> after;
  for (auto& [id, d] : contents) {
    if (!dedup.Seen(id)) ++after[d];
  }
  EXPECT_EQ(after.size(), static_cast<size_t>(kBatch));  // every event is there
  int copies = 0;
  for (auto& [d, n] : after) copies += n - 1;
  if (persistent) {
    EXPECT_EQ(copies, 0);  // each once after dedup
    EXPECT_GT(contents.size(), static_cast<size_t>(kBatch));  // the stream itself held the resent copies
  } else {
    EXPECT_GT(copies, 0);  // a new nonce: the resent events are new events
  }
  // The consumer's own filter gives the same answer.
  auto bus = Bus::Open(o);
  ASSERT_TRUE(bus.ok());
  auto cons = (*bus)->Subscribe("g");
  ASSERT_TRUE(cons.ok());
  auto got = Drain(**cons, contents.size(), 1000);
  std::map<std::string, int> seen;
  for (auto& [s, d] : got) ++seen[d];
  EXPECT_EQ(seen.size(), static_cast<size_t>(kBatch));
  if (persistent) {
    EXPECT_EQ(got.size(), static_cast<size_t>(kBatch));
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

TEST(BusRedisTest, AProducerKilledMidBatchAndRestartedWithItsNonceLeavesNoDuplicates) { KilledProducerCase(true); }
TEST(BusRedisTest, ControlWithoutANonceFileTheResentEventsAreDuplicates) { KilledProducerCase(false); }

// redis-server (append-only, fsync always) SIGKILLed and restarted during ingest: the
// producer retries through it; every acknowledged event is there after the restart, once
// after dedup.
TEST(BusRedisTest, TheServerKilledMidIngestLosesNoAcknowledgedEvent) {
  RedisServer srv({"--appendonly", "yes", "--appendfsync", "always"});
  ASSERT_TRUE(srv.up());
  BusOptions o = Options(srv, "crash", 2);
  o.groups = {"g"};
  o.remote.op_timeout_ms = 20'000;
  auto bus = Bus::Open(o);
  ASSERT_TRUE(bus.ok());
  std::atomic<int> acked{0};
  std::atomic<bool> failed{false};
  std::thread producer([&] {
    for (int b = 0; b < 60; ++b) {
      std::vector<std::string> texts;
      for (int i = 0; i < 200; ++i) texts.push_back(std::to_string(b * 200 + i));
      std::vector<ByteView> v;
      for (const std::string& t : texts) v.push_back(AsBytes(t));
      auto n = (*bus)->IngestBatch(v, Deadline::AfterMs(20'000));
      if (!n.ok() || *n != v.size()) {
        failed = true;
        return;
      }
      acked.store((b + 1) * 200);
    }
  });
  while (acked.load() < 2000 && !failed) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  srv.Kill();
  EXPECT_LT(acked.load(), 12'000);  // killed while the producer was still at work
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  ASSERT_TRUE(srv.Start());
  producer.join();
  ASSERT_FALSE(failed);
  ASSERT_EQ(acked.load(), 12'000);
  auto contents = StreamContents(srv, "crash", 2);
  RedisStreamDedup dedup(1 << 20);
  std::set<std::string> after;
  for (auto& [id, d] : contents) {
    if (!dedup.Seen(id)) {
      EXPECT_TRUE(after.insert(d).second) << d;
    }
  }
  EXPECT_EQ(after.size(), 12'000u);
}

TEST(BusRedisTest, BadInputGetsClearErrorsWithinTheDeadline) {
  RedisServer srv({"--requirepass", "sesame"});
  ASSERT_TRUE(srv.up());
  BusOptions o = Options(srv, "auth");
  // No password, then a wrong one: kUnauthenticated.
  auto none = Bus::Open(o);
  EXPECT_EQ(none.status().code(), Code::kUnauthenticated) << none.status().ToString();
  o.url = srv.url("auth", ":wrong");
  auto wrong = Bus::Open(o);
  EXPECT_EQ(wrong.status().code(), Code::kUnauthenticated) << wrong.status().ToString();
  o.url = srv.url("auth", ":sesame");
  auto right = Bus::Open(o);
  ASSERT_TRUE(right.ok()) << right.status().ToString();
  EXPECT_TRUE((*right)->Ingest(AsBytes("x")).ok());

  // Nothing listening: kUnavailable, within the deadline.
  BusOptions down;
  down.url = "redis://127.0.0.1:" + std::to_string(testing::FreePort()) + "/x";
  down.remote.op_timeout_ms = 300;
  const auto t0 = std::chrono::steady_clock::now();
  auto d = Bus::Open(down);
  EXPECT_EQ(d.status().code(), Code::kUnavailable) << d.status().ToString();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10));  // bounded, not a timing claim

  // Urls, names and options.
  for (const char* bad : {"redis://127.0.0.1:1", "redis://127.0.0.1:99999/x", "redis:///x", "rediss://h:1/x",
                          "redis://h:1/a b", "redis://h:1/x?tls=1"}) {
    BusOptions b;
    b.url = bad;
    EXPECT_EQ(Bus::Open(b).status().code(), Code::kInvalidArgument) << bad;
  }
  BusOptions bounded = Options(srv, "bounded");
  bounded.url = srv.url("bounded", ":sesame");
  bounded.remote.max_len = 100;
  EXPECT_EQ(Bus::Open(bounded).status().code(), Code::kInvalidArgument);  // block with max_len
  bounded.backpressure = Overflow::kDropOldest;
  auto ok = Bus::Open(bounded);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  std::string big(2 << 20, 'b');
  EXPECT_EQ((*ok)->Ingest(AsBytes(big)).status().code(), Code::kTooLarge);
  // A key of another type where a shard's stream belongs: the server's refusal, typed.
  net::RedisOptions ro;
  ro.port = srv.port();
  ro.password = "sesame";
  auto raw = net::RedisConnection::Connect(ro);
  ASSERT_TRUE(raw.ok());
  std::string_view del[] = {"DEL", "weft:bus:bounded:0", "weft:bus:bounded:1"};
  ASSERT_TRUE((*raw)->Command(del, Deadline::AfterMs(1000)).ok());
  std::string_view set0[] = {"SET", "weft:bus:bounded:0", "not a stream"};
  std::string_view set1[] = {"SET", "weft:bus:bounded:1", "not a stream"};
  ASSERT_TRUE((*raw)->Command(set0, Deadline::AfterMs(1000)).ok());
  ASSERT_TRUE((*raw)->Command(set1, Deadline::AfterMs(1000)).ok());
  auto p = (*ok)->Ingest(AsBytes("x"));
  EXPECT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("WRONGTYPE"), std::string::npos) << p.status().ToString();
}

TEST(BusRedisTest, MaxLenTrimsTheOldestAndCountsTheDrops) {
  RedisServer srv;
  ASSERT_TRUE(srv.up());
  BusOptions o = Options(srv, "trim", 1);
  o.groups = {"g"};
  o.backpressure = Overflow::kDropOldest;
  o.remote.max_len = 100;
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
  ASSERT_EQ(st.groups.size(), 1u);
  EXPECT_EQ(st.groups[0].delivered, 250u);  // Redis counts the trimmed as read past
}

TEST(RedisStreamDedupTest, RemembersUpToItsCapacityAndForgetsTheLeastRecent) {
  RedisStreamDedup d(3);
  EXPECT_FALSE(d.Seen("a"));
  EXPECT_FALSE(d.Seen("b"));
  EXPECT_FALSE(d.Seen("c"));
  EXPECT_TRUE(d.Seen("a"));  // a is now the most recent
  EXPECT_FALSE(d.Seen("d"));  // b forgotten
  EXPECT_FALSE(d.Seen("b"));
  EXPECT_TRUE(d.Seen("a"));
  EXPECT_EQ(d.size(), 3u);
  EXPECT_EQ(d.duplicates(), 2u);
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
