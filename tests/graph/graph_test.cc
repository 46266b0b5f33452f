// The graph in one process (weft/graph/graph.h, route.h): route names and schemas, refused when
// malformed or mismatched; publish, latest and observe with envelopes (sequence, ids, trace,
// causality, correlation); local values encoded once on demand; subscriptions that end; many
// publishing threads.
#include "weft/graph/graph.h"

#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <thread>

namespace weft::graph {
namespace {

struct Pose {
  double x, y, theta;
};

RouteName Name(const std::string& stream) { return RouteName{.owner = "robot", .family = "nav", .stream = stream}; }

TEST(RouteNameTest, ParsesWhatItPrintsAndRefusesMalformedNames) {
  RouteName n{.owner = "cam-0", .family = "vision", .stream = "frame", .variant = "payload", .plane = "read", .layer = "bulk"};
  EXPECT_EQ(n.ToString(), "cam-0/vision/frame/payload/read/bulk");
  auto back = RouteName::Parse(n.ToString());
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, n);
  for (const char* bad : {"", "a/b/c", "a/b/c/d/e/f/g", "a/b/c/d/e/", "a/b/c d/d/e/f", "a/b/c/d/e/f.g", "a//c/d/e/f"}) {
    auto r = RouteName::Parse(bad);
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << bad;
  }
  RouteName long_owner = Name("x");
  long_owner.owner = std::string(65, 'a');
  EXPECT_NE(long_owner.Validate().message().find("owner"), std::string::npos);
}

TEST(SchemaTest, IdentityComesFromTheTextAndPodsCarryTheirSize) {
  auto pose = Schema::Pod<Pose>("pose.v1");
  EXPECT_EQ(pose.text(), "pod pose.v1 size 24 align 8");
  EXPECT_EQ(pose.fixed_size(), 24u);
  EXPECT_EQ(Schema::FromText(pose.text()).value(), pose);
  EXPECT_NE(Schema::Pod<double>("pose.v1").id(), pose.id());  // same name, another size
  EXPECT_EQ(Schema::Bytes().fixed_size(), 0u);
  for (const char* bad : {"", "pod x size 0 align 8", "pod x size 12", "pod x size big align 8", "pod x size 8 align ",
                          "line\nbreak"}) {
    EXPECT_EQ(Schema::FromText(bad).status().code(), Code::kInvalidArgument) << bad;
  }
  EXPECT_EQ(Schema::FromText(std::string(4097, 'a')).status().code(), Code::kInvalidArgument);
}

TEST(GraphTest, ARouteIsDeclaredOnceWithOneSchema) {
  auto g = Graph::Create();
  auto a = g->Declare(Name("pose"), Schema::Pod<Pose>("pose.v1"));
  ASSERT_TRUE(a.ok());
  EXPECT_TRUE(g->Declare(Name("pose"), Schema::Pod<Pose>("pose.v1")).ok());  // the same route again
  auto other = g->Declare(Name("pose"), Schema::Pod<double>("pose.v2"));
  EXPECT_EQ(other.status().code(), Code::kSchemaMismatch);
  EXPECT_NE(other.status().message().find("pose.v1"), std::string::npos);
  EXPECT_NE(other.status().message().find("pose.v2"), std::string::npos);
  EXPECT_EQ(g->Find(Name("nothing")).status().code(), Code::kNotFound);
  RouteName bad = Name("x");
  bad.plane = "no spaces";
  EXPECT_EQ(g->Declare(bad, Schema::Bytes()).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(g->Routes().size(), 1u);
}

TEST(GraphTest, PublishLatestAndObserveWithEnvelopes) {
  auto g = Graph::Create();
  Route pose = g->Declare(Name("pose"), Schema::Pod<Pose>("pose.v1")).value();
  Route plan = g->Declare(Name("plan"), Schema::Bytes()).value();
  EXPECT_EQ(pose.Latest(), nullptr);
  std::vector<SampleRef> seen;
  Subscription sub = pose.Observe([&](const SampleRef& s) { seen.push_back(s); });
  ASSERT_TRUE(pose.Publish(Pose{1, 2, 3}, Meta{.producer = 7, .correlation = 99}).ok());
  ASSERT_TRUE(pose.Publish(Pose{4, 5, 6}).ok());
  EXPECT_EQ(pose.Publish(std::string("short")).code(), Code::kInvalidArgument);  // not 24 bytes
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0]->as<Pose>().y, 2);
  EXPECT_EQ(pose.Latest()->as<Pose>().theta, 6);
  EXPECT_EQ(pose.Latest(), seen[1]);  // the same sample, not a copy
  const Envelope& e0 = seen[0]->envelope();
  const Envelope& e1 = seen[1]->envelope();
  EXPECT_EQ(e0.seq, 1u);
  EXPECT_EQ(e1.seq, 2u);
  EXPECT_EQ(e0.producer, 7u);
  EXPECT_EQ(e0.correlation, 99u);
  EXPECT_NE(e0.id, 0u);
  EXPECT_NE(e0.id, e1.id);
  EXPECT_EQ(e0.trace, e0.id);  // no cause: a trace of its own
  EXPECT_GT(e0.ingest_ns, 0);
  EXPECT_EQ(e0.event_ns, e0.ingest_ns);
  // A value made from another carries its trace, causality and correlation.
  ASSERT_TRUE(plan.Publish(std::string("go left"), Meta{.event_ns = 123, .cause = &e0}).ok());
  const Envelope& p = plan.Latest()->envelope();
  EXPECT_EQ(p.trace, e0.trace);
  EXPECT_EQ(p.causality, e0.id);
  EXPECT_EQ(p.correlation, 99u);
  EXPECT_EQ(p.event_ns, 123);
  EXPECT_EQ(pose.published(), 2u);
}

struct CountingEncoder : Encoder {
  mutable std::atomic<int> calls{0};
  bool fail = false;
  Result<std::string> Encode(const LocalValue& v) const override {
    ++calls;
    if (fail) return Status(Code::kInvalidArgument, "cannot encode that");
    return "encoded:" + *static_cast<const std::string*>(v.object());
  }
};

TEST(GraphTest, ALocalValueIsEncodedOnceWhenBytesAreFirstNeeded) {
  auto g = Graph::Create();
  Route r = g->Declare(Name("text"), Schema::Bytes()).value();
  static const int kLanguage = 0;
  auto owned = std::make_shared<CountingEncoder>();
  CountingEncoder& enc = *owned;
  auto release = [](void* p) { delete static_cast<std::string*>(p); };
  ASSERT_TRUE(r.PublishLocal(LocalValue(new std::string("hi"), &kLanguage, release), owned).ok());
  SampleRef s = r.Latest();
  EXPECT_EQ(s->local().language(), &kLanguage);
  EXPECT_EQ(enc.calls.load(), 0);  // nobody asked for bytes yet
  std::vector<std::thread> readers;
  for (int i = 0; i < 4; ++i) {
    readers.emplace_back([&] {
      auto b = s->bytes();
      EXPECT_TRUE(b.ok());
      EXPECT_EQ(std::string(b->begin(), b->end()), "encoded:hi");
    });
  }
  for (auto& t : readers) t.join();
  EXPECT_EQ(enc.calls.load(), 1);
  auto failing_owned = std::make_shared<CountingEncoder>();
  CountingEncoder& failing = *failing_owned;
  failing.fail = true;
  ASSERT_TRUE(r.PublishLocal(LocalValue(new std::string("x"), &kLanguage, release), failing_owned).ok());
  EXPECT_EQ(r.Latest()->bytes().status().code(), Code::kInvalidArgument);
  EXPECT_EQ(r.Latest()->bytes().status().code(), Code::kInvalidArgument);  // the same answer, not encoded again
  EXPECT_EQ(failing.calls.load(), 1);
}

TEST(GraphTest, ASubscriptionEndsAndCancelWaitsForACallInFlight) {
  auto g = Graph::Create();
  Route r = g->Declare(Name("tick"), Schema::Pod<int64_t>("tick.v1")).value();
  int calls = 0;
  {
    Subscription s = r.Observe([&](const SampleRef&) { ++calls; });
    r.Publish(int64_t{1}).IgnoreError();
    EXPECT_EQ(r.observers(), 1u);
  }  // destroyed: cancelled
  r.Publish(int64_t{2}).IgnoreError();
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(r.observers(), 0u);
  // Cancelled from inside its own call: no wait for itself, no call after.
  Subscription self;
  self = r.Observe([&](const SampleRef&) {
    ++calls;
    self.Cancel();
  });
  r.Publish(int64_t{3}).IgnoreError();
  r.Publish(int64_t{4}).IgnoreError();
  EXPECT_EQ(calls, 2);
  // A call running on another thread: Cancel returns only after it finished.
  std::atomic<bool> inside{false}, release{false}, finished{false};
  Subscription slow = r.Observe([&](const SampleRef&) {
    inside = true;
    while (!release) std::this_thread::yield();
    finished = true;
  });
  std::thread publisher([&] { r.Publish(int64_t{5}).IgnoreError(); });
  while (!inside) std::this_thread::yield();
  std::thread releaser([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    release = true;
  });
  slow.Cancel();
  EXPECT_TRUE(finished.load());  // Cancel waited for the call in flight
  publisher.join();
  releaser.join();
}

TEST(GraphTest, ManyPublishingThreadsEveryValueOnceAndTheLatestIsTheNewest) {
  auto g = Graph::Create();
  Route r = g->Declare(Name("count"), Schema::Pod<int64_t>("count.v1")).value();
  constexpr int kThreads = 4, kEach = 20000;
  std::mutex mu;
  std::set<uint64_t> seqs, ids;
  std::atomic<int64_t> sum{0};
  Subscription s = r.Observe([&](const SampleRef& v) {
    sum += v->as<int64_t>();
    std::lock_guard<std::mutex> l(mu);
    seqs.insert(v->envelope().seq);
    ids.insert(v->envelope().id);
  });
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t) {
    ts.emplace_back([&] {
      for (int i = 1; i <= kEach; ++i) r.Publish(int64_t{i}).IgnoreError();
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(seqs.size(), size_t{kThreads * kEach});
  EXPECT_EQ(*seqs.rbegin(), uint64_t{kThreads * kEach});
  EXPECT_EQ(ids.size(), size_t{kThreads * kEach});
  EXPECT_EQ(sum.load(), int64_t{kThreads} * kEach * (kEach + 1) / 2);
  EXPECT_EQ(r.Latest()->envelope().seq, uint64_t{kThreads * kEach});
}

}  // namespace
}  // namespace weft::graph

namespace weft::graph {
namespace {

TEST(RetentionTest, KeepsTheNewestWithinItsLimitsAndEphemeralRoutesNothing) {
  auto g = Graph::Create();
  Route r = g->Declare(Name("kept"), Schema::Pod<int64_t>("n.v1")).value();
  EXPECT_TRUE(r.History().empty());
  EXPECT_EQ(r.SetRetention({}).code(), Code::kInvalidArgument);  // no limit
  ASSERT_TRUE(r.SetRetention({.keep_last = 3}).ok());
  for (int64_t i = 1; i <= 5; ++i) ASSERT_TRUE(r.Publish(i).ok());
  auto h = r.History();
  ASSERT_EQ(h.size(), 3u);
  EXPECT_EQ(h[0]->as<int64_t>(), 3);
  EXPECT_EQ(h[2]->as<int64_t>(), 5);
  Route aged = g->Declare(Name("aged"), Schema::Pod<int64_t>("n.v1")).value();
  ASSERT_TRUE(aged.SetRetention({.max_age_ms = 1}).ok());
  ASSERT_TRUE(aged.Publish(int64_t{1}).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_TRUE(aged.History().empty());
  EXPECT_NE(aged.Latest(), nullptr);  // the latest stays
  Route eph = g->Declare(Name("eph"), Schema::Pod<int64_t>("n.v1")).value();
  ASSERT_TRUE(eph.MarkEphemeral().ok());
  EXPECT_EQ(eph.SetRetention({.keep_last = 1}).code(), Code::kInvalidArgument);
  EXPECT_EQ(r.MarkEphemeral().code(), Code::kInvalidArgument);
}

TEST(RetentionTest, ReplayThenLiveInOrderNoneTwiceWhilePublishersRun) {
  auto g = Graph::Create();
  Route r = g->Declare(Name("seq"), Schema::Pod<int64_t>("n.v1")).value();
  ASSERT_TRUE(r.SetRetention({.keep_last = 100000}).ok());
  for (int64_t i = 0; i < 1000; ++i) ASSERT_TRUE(r.Publish(i).ok());
  std::atomic<bool> stop{false};
  std::thread publisher([&] {
    for (int64_t i = 1000; i < 50000 && !stop; ++i) r.Publish(i).IgnoreError();
  });
  std::vector<uint64_t> seqs;
  std::mutex mu;
  Subscription s = r.Observe(
      [&](const SampleRef& v) {
        std::lock_guard<std::mutex> l(mu);
        seqs.push_back(v->envelope().seq);
      },
      true);
  publisher.join();
  std::lock_guard<std::mutex> l(mu);
  ASSERT_GE(seqs.size(), 1000u);
  EXPECT_EQ(seqs.front(), 1u);
  for (size_t i = 1; i < seqs.size(); ++i) ASSERT_EQ(seqs[i], seqs[i - 1] + 1) << "at " << i;
  EXPECT_EQ(seqs.back(), r.published());
}

TEST(TaintTest, ValuesPassTheirTaintsToWhatIsMadeFromThem) {
  auto g = Graph::Create();
  Route a = g->Declare({.owner = "t", .family = "f", .stream = "a"}, Schema::Pod<double>("x.v1")).value();
  Route b = g->Declare({.owner = "t", .family = "f", .stream = "b"}, Schema::Pod<double>("x.v1")).value();
  Route c = g->Declare({.owner = "t", .family = "f", .stream = "c"}, Schema::Pod<double>("x.v1")).value();
  ASSERT_TRUE(a.Publish(1.0, Meta{.taints = kNondeterministic}).ok());
  EXPECT_EQ(a.Latest()->envelope().taints, kNondeterministic);
  ASSERT_TRUE(b.Publish(2.0, Meta{.cause = &a.Latest()->envelope(), .taints = kSensitive}).ok());
  EXPECT_EQ(b.Latest()->envelope().taints, kNondeterministic | kSensitive);  // its own and its cause's
  ASSERT_TRUE(c.Forward(b.Latest()).ok());
  EXPECT_EQ(c.Latest()->envelope().taints, kNondeterministic | kSensitive);
  ASSERT_TRUE(c.Publish(3.0).ok());
  EXPECT_EQ(c.Latest()->envelope().taints, 0);  // the control: nothing tainted it
  ASSERT_TRUE(c.Publish(4.0, Meta{.taints = 0xF0}).ok());
  EXPECT_EQ(c.Latest()->envelope().taints, 0);  // bits that are no taint are not kept
  EXPECT_STREQ(TaintName(kRepaired), "repaired");
}

}  // namespace
}  // namespace weft::graph

namespace weft::graph {
namespace {

TEST(GraphTest, APublisherLearnsTheIdItsValueWasGiven) {
  auto g = Graph::Create();
  auto r = g->Declare({.owner = "a", .family = "b", .stream = "c"}, Schema::Pod<int32_t>("i")).value();
  auto fwd = g->Declare({.owner = "a", .family = "b", .stream = "d"}, Schema::Pod<int32_t>("i")).value();
  uint64_t id = 0, fid = 0;
  ASSERT_TRUE(r.Publish(int32_t{1}, {.published_id = &id}).ok());
  EXPECT_NE(id, 0u);
  EXPECT_EQ(id, r.Latest()->envelope().id);
  ASSERT_TRUE(fwd.Forward(r.Latest(), {.published_id = &fid}).ok());
  EXPECT_EQ(fid, fwd.Latest()->envelope().id);
  EXPECT_NE(fid, id);
  uint64_t refused = 7;
  EXPECT_FALSE(r.Publish(std::string("x"), {.published_id = &refused}).ok());
  EXPECT_EQ(refused, 7u);  // refused before it was a value: untouched
}

}  // namespace
}  // namespace weft::graph
