// Write bindings (weft/graph/write.h) on a clock moved by hand: an actuator that acknowledges,
// one that stays silent, one that drops sends, one that clamps; guards, coalescing, the minimum
// interval, drift, coherence taints, lifecycles, control loops, bad input.
#include "weft/graph/write.h"

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

namespace weft::graph {
namespace {

constexpr int64_t kMs = 1'000'000;

struct Fixture {
  std::shared_ptr<Graph> g = Graph::Create();
  ManualClock clock{0};
  std::shared_ptr<WriteBinding> w;
  std::vector<std::string> events;
  Subscription ev;
  Subscription actuator;
  int ignore_first = 0;                        // sends the actuator drops
  int32_t clamp = INT32_MAX;                   // the most it can do
  bool silent = false;
  int applied = 0;

  void Make(WriteBindingOptions o) {
    o.clock = &clock;
    w = WriteBinding::Create(*g, {.owner = "lamp", .family = "light", .stream = "level"},
                             Schema::Pod<int32_t>("level.v1"), o)
            .value();
    ev = w->events().Observe([this](const SampleRef& s) {
      std::string j(reinterpret_cast<const char*>(s->bytes()->data()), s->bytes()->size());
      const auto k = j.find("\"kind\":\"") + 8;
      events.push_back(j.substr(k, j.find('"', k) - k));
    });
    actuator = w->desired().Observe([this](const SampleRef& s) {
      if (silent) return;
      if (ignore_first > 0) {
        --ignore_first;
        return;
      }
      ++applied;
      w->reported().Publish(std::min(s->as<int32_t>(), clamp)).IgnoreError();
    });
  }
  int32_t effective() const { return w->effective().Latest()->as<int32_t>(); }
  uint8_t effective_taints() const { return w->effective().Latest()->envelope().taints; }
  bool saw(const std::string& kind) const { return std::find(events.begin(), events.end(), kind) != events.end(); }
};

RetryPolicy Retry(uint32_t attempts) {
  return {.max_attempts = attempts, .ack_timeout_ns = 100 * kMs, .backoff_ns = 50 * kMs, .multiplier = 2.0,
          .max_backoff_ns = 1000 * kMs};
}

TEST(WriteBindingTest, ARequestIsSentReportedAndTrusted) {
  Fixture f;
  f.Make({.retry = Retry(3)});
  EXPECT_EQ(f.w->snapshot().phase, WritePhase::kIdle);
  ASSERT_TRUE(f.w->request().Publish(int32_t{70}).ok());
  const SchedulerSnapshot s = f.w->snapshot();
  EXPECT_EQ(s.phase, WritePhase::kSynced);
  EXPECT_EQ(s.sends, 1u);
  EXPECT_EQ(s.acknowledged, 1u);
  EXPECT_TRUE(s.coherent);
  EXPECT_EQ(s.next_at_ns, 0);  // no timer left
  EXPECT_EQ(f.effective(), 70);
  EXPECT_EQ(f.effective_taints(), 0);
  EXPECT_EQ(f.events, (std::vector<std::string>{"requested", "sent", "acknowledged"}));
  // Lineage: desired was caused by the request, effective by the report.
  EXPECT_EQ(f.w->desired().Latest()->envelope().causality, f.w->request().Latest()->envelope().id);
  EXPECT_EQ(f.w->effective().Latest()->envelope().causality, f.w->reported().Latest()->envelope().id);
  EXPECT_NE(s.ToJson().find("\"phase\":\"synced\""), std::string::npos);
  // Nothing more happens with time.
  f.clock.Advance(10'000 * kMs);
  EXPECT_EQ(f.w->desired().published(), 1u);
}

TEST(WriteBindingTest, ASilentActuatorGetsTypedRetriesWithBackoffThenTheWriteFails) {
  Fixture f;
  f.silent = true;
  f.Make({.retry = Retry(3), .coherence_deadline_ns = 300 * kMs});
  ASSERT_TRUE(f.w->request().Publish(int32_t{70}).ok());
  EXPECT_EQ(f.w->snapshot().next_at_ns, 100 * kMs);  // the ack timeout
  f.clock.Advance(100 * kMs);
  SchedulerSnapshot s = f.w->snapshot();
  EXPECT_EQ(s.phase, WritePhase::kBackoff);
  EXPECT_EQ(s.last_failure, WriteFailure::kNoReport);
  EXPECT_EQ(s.next_at_ns, 150 * kMs);  // backoff 50 ms before the second send
  f.clock.Advance(50 * kMs);
  EXPECT_EQ(f.w->desired().published(), 2u);
  EXPECT_EQ(f.w->snapshot().attempt, 2u);
  f.clock.Advance(100 * kMs);                          // 250: the second ack timeout
  EXPECT_EQ(f.w->snapshot().next_at_ns, 350 * kMs);  // backoff doubled
  f.clock.Advance(50 * kMs);                           // 300: the coherence deadline
  EXPECT_FALSE(f.w->snapshot().coherent);
  EXPECT_TRUE(f.saw("incoherent"));
  f.clock.Advance(150 * kMs);  // 450: the third send's timeout, the last attempt
  s = f.w->snapshot();
  EXPECT_EQ(s.phase, WritePhase::kFailed);
  EXPECT_EQ(s.sends, 3u);
  EXPECT_EQ(s.retries, 2u);
  EXPECT_EQ(s.failures, 1u);
  EXPECT_EQ(s.incoherent, 1u);
  f.clock.Advance(10'000 * kMs);
  EXPECT_EQ(f.w->desired().published(), 3u);  // gave up: no fourth send
  // A report that disagrees now is trusted as it is, but tainted incoherent...
  ASSERT_TRUE(f.w->reported().Publish(int32_t{10}).ok());
  EXPECT_EQ(f.effective(), 10);
  EXPECT_EQ(f.effective_taints(), kIncoherent);
  // ... and one that matches is clean again.
  ASSERT_TRUE(f.w->reported().Publish(int32_t{70}).ok());
  EXPECT_EQ(f.effective_taints(), 0);
  s = f.w->snapshot();
  EXPECT_EQ(s.phase, WritePhase::kSynced);
  EXPECT_TRUE(s.coherent);
  EXPECT_TRUE(f.saw("coherent"));
  EXPECT_TRUE(f.saw("failed"));
}

TEST(WriteBindingTest, DroppedSendsAreRetriedUntilOneTakes) {
  Fixture f;
  f.ignore_first = 2;
  f.Make({.retry = Retry(5), .coherence_deadline_ns = 10'000 * kMs});
  ASSERT_TRUE(f.w->request().Publish(int32_t{30}).ok());
  EXPECT_EQ(f.w->snapshot().phase, WritePhase::kInFlight);
  f.clock.Advance(1000 * kMs);
  const SchedulerSnapshot s = f.w->snapshot();
  EXPECT_EQ(s.phase, WritePhase::kSynced);
  EXPECT_EQ(s.sends, 3u);
  EXPECT_EQ(s.retries, 2u);
  EXPECT_EQ(s.failures, 0u);
  EXPECT_TRUE(s.coherent);  // before the deadline: never incoherent
  EXPECT_EQ(f.applied, 1);
  EXPECT_EQ(f.effective(), 30);
  EXPECT_EQ(f.effective_taints(), 0);
  EXPECT_EQ(std::count(f.events.begin(), f.events.end(), "retry"), 2);
}

TEST(WriteBindingTest, AMismatchIsTypedAndTaintedPastTheDeadline) {
  Fixture f;
  f.clamp = 50;
  f.Make({.retry = Retry(2), .coherence_deadline_ns = 150 * kMs});
  ASSERT_TRUE(f.w->request().Publish(int32_t{80}).ok());
  EXPECT_EQ(f.effective(), 50);
  EXPECT_EQ(f.effective_taints(), 0);  // before the deadline a disagreeing report is not yet incoherent
  f.clock.Advance(100 * kMs);
  EXPECT_EQ(f.w->snapshot().last_failure, WriteFailure::kMismatch);
  f.clock.Advance(50 * kMs);  // the deadline: effective is published again, tainted
  EXPECT_EQ(f.effective(), 50);
  EXPECT_EQ(f.effective_taints(), kIncoherent);
  f.clock.Advance(1000 * kMs);
  EXPECT_EQ(f.w->snapshot().phase, WritePhase::kFailed);
  EXPECT_TRUE(f.saw("mismatch"));
}

TEST(WriteBindingTest, AMatchFunctionDecidesWhatAgrees) {
  Fixture f;
  f.clamp = 78;
  f.Make({.retry = Retry(2), .matches = [](const Sample& d, const Sample& r) {
            return std::abs(d.as<int32_t>() - r.as<int32_t>()) <= 2;
          }});
  ASSERT_TRUE(f.w->request().Publish(int32_t{80}).ok());
  EXPECT_EQ(f.w->snapshot().phase, WritePhase::kSynced);
}

TEST(WriteBindingTest, AClosedGuardQueuesAndCoalescesRequests) {
  Fixture f;
  auto guard = f.g->Declare({.owner = "lamp", .family = "light", .stream = "online"}, Schema::Pod<uint8_t>("flag")).value();
  f.Make({.retry = Retry(3), .guard = &guard});
  ASSERT_TRUE(f.w->request().Publish(int32_t{10}).ok());
  ASSERT_TRUE(f.w->request().Publish(int32_t{20}).ok());
  SchedulerSnapshot s = f.w->snapshot();
  EXPECT_EQ(s.phase, WritePhase::kQueued);
  EXPECT_FALSE(s.guard_open);
  EXPECT_EQ(s.coalesced, 1u);
  EXPECT_EQ(f.w->desired().published(), 0u);
  ASSERT_TRUE(guard.Publish(uint8_t{0}).ok());  // still closed
  EXPECT_EQ(f.w->desired().published(), 0u);
  ASSERT_TRUE(guard.Publish(uint8_t{1}).ok());
  EXPECT_EQ(f.w->desired().published(), 1u);
  EXPECT_EQ(f.w->desired().Latest()->as<int32_t>(), 20);  // only the newest went
  EXPECT_EQ(f.w->snapshot().phase, WritePhase::kSynced);
}

TEST(WriteBindingTest, AClosedGuardHoldsRetriesToo) {
  Fixture f;
  f.silent = true;
  auto guard = f.g->Declare({.owner = "lamp", .family = "light", .stream = "online"}, Schema::Pod<uint8_t>("flag")).value();
  ASSERT_TRUE(guard.Publish(uint8_t{1}).ok());
  f.Make({.retry = Retry(0), .guard = &guard});
  ASSERT_TRUE(f.w->request().Publish(int32_t{10}).ok());
  ASSERT_TRUE(guard.Publish(uint8_t{0}).ok());
  f.clock.Advance(10'000 * kMs);
  EXPECT_EQ(f.w->desired().published(), 1u);
  EXPECT_EQ(f.w->snapshot().phase, WritePhase::kBackoff);
  f.silent = false;
  ASSERT_TRUE(guard.Publish(uint8_t{1}).ok());
  EXPECT_EQ(f.w->desired().published(), 2u);
  EXPECT_EQ(f.w->snapshot().phase, WritePhase::kSynced);
}

TEST(WriteBindingTest, TheMinimumIntervalSpacesSends) {
  Fixture f;
  f.Make({.retry = Retry(3), .min_interval_ns = 200 * kMs});
  ASSERT_TRUE(f.w->request().Publish(int32_t{1}).ok());
  ASSERT_TRUE(f.w->request().Publish(int32_t{2}).ok());
  EXPECT_EQ(f.w->desired().published(), 1u);
  EXPECT_EQ(f.w->snapshot().phase, WritePhase::kQueued);
  EXPECT_EQ(f.w->snapshot().next_at_ns, 200 * kMs);
  f.clock.Advance(199 * kMs);
  EXPECT_EQ(f.w->desired().published(), 1u);
  f.clock.Advance(1 * kMs);
  EXPECT_EQ(f.w->desired().published(), 2u);
  EXPECT_EQ(f.effective(), 2);
}

TEST(WriteBindingTest, DriftFromASyncedValueIsCorrected) {
  Fixture f;
  f.Make({.retry = Retry(3)});
  ASSERT_TRUE(f.w->request().Publish(int32_t{40}).ok());
  ASSERT_EQ(f.w->snapshot().phase, WritePhase::kSynced);
  // The device resets on its own and says so: the reconciler sends desired again.
  ASSERT_TRUE(f.w->reported().Publish(int32_t{0}).ok());
  const SchedulerSnapshot s = f.w->snapshot();
  EXPECT_EQ(s.drifts, 1u);
  EXPECT_EQ(s.sends, 2u);
  EXPECT_EQ(s.phase, WritePhase::kSynced);
  EXPECT_EQ(f.effective(), 40);
  EXPECT_TRUE(f.saw("drift"));
}

TEST(WriteBindingTest, TaintsOfARequestReachDesired) {
  Fixture f;
  f.Make({.retry = Retry(3)});
  ASSERT_TRUE(f.w->request().Publish(int32_t{5}, {.taints = kSensitive}).ok());
  EXPECT_EQ(f.w->desired().Latest()->envelope().taints, kSensitive);
}

TEST(WriteBindingTest, BadInputIsRefused) {
  auto g = Graph::Create();
  const RouteName base{.owner = "lamp", .family = "light", .stream = "level"};
  const Schema s = Schema::Pod<int32_t>("level.v1");
  EXPECT_EQ(WriteBinding::Create(*g, base, s, {.retry = {.ack_timeout_ns = 0}}).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(WriteBinding::Create(*g, base, s, {.retry = {.multiplier = 0.5}}).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(WriteBinding::Create(*g, base, s, {.coherence_deadline_ns = -1}).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(WriteBinding::Create(*g, {.owner = "a b", .family = "f", .stream = "s"}, s).status().code(),
            Code::kInvalidArgument);
  ASSERT_TRUE(g->Declare({.owner = "lamp", .family = "light", .stream = "level", .variant = "reported", .layer = "shadow"},
                         Schema::Bytes())
                  .ok());
  EXPECT_EQ(WriteBinding::Create(*g, base, s).status().code(), Code::kSchemaMismatch);
  // The wrong size on the request is the route's error, and nothing is sent.
  auto ok = WriteBinding::Create(*g, {.owner = "lamp", .family = "light", .stream = "other"}, s).value();
  EXPECT_EQ(ok->request().Publish(std::string("xy")).code(), Code::kInvalidArgument);
  EXPECT_EQ(ok->snapshot().requests, 0u);
}

TEST(WriteBindingTest, CloseStopsReconciling) {
  Fixture f;
  f.silent = true;
  f.Make({.retry = Retry(0)});
  ASSERT_TRUE(f.w->request().Publish(int32_t{5}).ok());
  f.w->Close();
  f.clock.Advance(10'000 * kMs);
  EXPECT_EQ(f.w->desired().published(), 1u);
  ASSERT_TRUE(f.w->request().Publish(int32_t{6}).ok());
  EXPECT_EQ(f.w->desired().published(), 1u);
}

TEST(WriteBindingTest, ConcurrentRequestsEndSyncedOnTheNewest) {
  // Requests from two threads, an actuator on a third behind a mailbox, the system clock's
  // timers on a fourth: the binding ends synced on the last request, every request counted.
  auto g = Graph::Create();
  auto w = WriteBinding::Create(*g, {.owner = "lamp", .family = "light", .stream = "level"},
                                Schema::Pod<int32_t>("level.v1"),
                                {.retry = {.max_attempts = 0, .ack_timeout_ns = 5 * kMs, .backoff_ns = 1 * kMs,
                                           .max_backoff_ns = 2 * kMs},
                                 .coherence_deadline_ns = 2 * kMs})
               .value();
  auto box = Mailbox::Create(w->desired(), {.capacity = 8, .overflow = Overflow::kCoalesce}).value();
  std::atomic<bool> stop{false};
  std::thread actuator([&] {
    while (!stop.load()) {
      auto s = box->Take(Deadline::AfterMs(5));
      if (s.ok()) w->reported().Publish((*s)->as<int32_t>()).IgnoreError();
    }
  });
  auto asker = [&](int32_t from) {
    for (int32_t i = from; i < from + 2000; ++i) ASSERT_TRUE(w->request().Publish(i).ok());
  };
  std::thread a(asker, 0), b(asker, 10'000);
  a.join();
  b.join();
  ASSERT_TRUE(w->request().Publish(int32_t{-1}).ok());
  bool synced = false;
  for (int i = 0; i < 3000 && !synced; ++i) {
    const auto s = w->snapshot();
    synced = s.phase == WritePhase::kSynced && s.coherent && w->effective().Latest()->as<int32_t>() == -1;
    if (!synced) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  stop.store(true);
  actuator.join();
  box->Close();
  EXPECT_TRUE(synced) << w->snapshot().ToJson();
  const auto s = w->snapshot();
  EXPECT_EQ(s.requests, 4001u);
  EXPECT_EQ(w->effective().Latest()->envelope().taints, 0);
  w->Close();
}

TEST(LifecycleTest, IntentsWaitForHealth) {
  auto g = Graph::Create();
  ManualClock clock;
  auto lc = Lifecycle::Create(*g, "pump", "drive", Schema::Pod<int32_t>("mode.v1"),
                              {.write = {.clock = &clock}})
                .value();
  Subscription act = lc->binding()->desired().Observe(
      [&](const SampleRef& s) { lc->binding()->reported().Publish(s->as<int32_t>()).IgnoreError(); });
  EXPECT_EQ(lc->intent().name().ToString(), "pump/drive/lifecycle/request/write/logical");
  EXPECT_EQ(lc->health().name().ToString(), "pump/drive/lifecycle/health/read/logical");
  ASSERT_TRUE(lc->intent().Publish(int32_t{2}).ok());
  EXPECT_EQ(lc->binding()->snapshot().phase, WritePhase::kQueued);
  ASSERT_TRUE(lc->health().Publish(std::string(1, '\1')).ok());
  EXPECT_EQ(lc->binding()->snapshot().phase, WritePhase::kSynced);
  EXPECT_EQ(lc->binding()->effective().Latest()->as<int32_t>(), 2);
}

TEST(ControlLoopTest, EachEpochReadsAndWritesTheNext) {
  auto g = Graph::Create();
  auto in = g->Declare({.owner = "ctl", .family = "pid", .stream = "measured"}, Schema::Pod<double>("f64")).value();
  auto out = g->Declare({.owner = "ctl", .family = "pid", .stream = "command"}, Schema::Pod<double>("f64")).value();
  ControlLoop loop("pid");
  std::vector<double> seen;  // the shared write stream, as any observer sees it
  Subscription sub = out.Observe([&](const SampleRef& s) { seen.push_back(s->as<double>()); });
  ASSERT_TRUE(loop.Install({.name = "gain",
                            .read = in,
                            .output = out,
                            .next = [](const SampleRef& r, uint64_t epoch) -> Result<std::string> {
                              if (r == nullptr) return Status(Code::kNotFound, "nothing read yet");
                              const double v = r->as<double>() * 2 + static_cast<double>(epoch);
                              return std::string(reinterpret_cast<const char*>(&v), sizeof(v));
                            }})
                  .ok());
  EXPECT_EQ(loop.Install({.name = "gain", .read = in, .output = out, .next = [](const SampleRef&, uint64_t) {
                            return Result<std::string>(std::string(8, '\0'));
                          }}).code(),
            Code::kInvalidArgument);
  EXPECT_EQ(*loop.RunOnce(), 1u);  // nothing read: skipped
  EXPECT_TRUE(seen.empty());
  ASSERT_TRUE(in.Publish(10.0).ok());
  EXPECT_EQ(*loop.RunOnce(), 2u);
  ASSERT_TRUE(in.Publish(1.5).ok());
  EXPECT_EQ(*loop.RunOnce(), 3u);
  EXPECT_EQ(seen, (std::vector<double>{22.0, 6.0}));
  EXPECT_EQ(out.Latest()->envelope().causality, in.Latest()->envelope().id);
  EXPECT_EQ(loop.steps(), std::vector<std::string>{"gain"});
  // A step that makes a value of the wrong size fails the epoch with the route's error.
  ControlLoop bad("bad");
  ASSERT_TRUE(bad.Install({.name = "short", .read = in, .output = out, .next = [](const SampleRef&, uint64_t) {
                             return Result<std::string>(std::string("x"));
                           }}).ok());
  EXPECT_EQ(bad.RunOnce().status().code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace weft::graph
