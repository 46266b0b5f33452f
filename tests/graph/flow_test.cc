// Flow primitives (weft/graph/flow.h) against models: a mailbox's contents, counts and credit
// after random operations under each overflow policy; a blocked producer really waits and a
// timed-out one is refused; a capacitor never holds more than its capacity, releases on demand
// and passes through with immediate demand; a resistor passes, gates and releases on pulses; a
// watchdog fires exactly after its interval on a manual clock, and again while the silence lasts.
#include "weft/graph/flow.h"

#include <gtest/gtest.h>

#include <atomic>
#include <deque>
#include <random>
#include <thread>

namespace weft::graph {
namespace {

RouteName Name(const std::string& stream) { return RouteName{.owner = "t", .family = "flow", .stream = stream}; }

struct Fixture {
  std::shared_ptr<Graph> g = Graph::Create();
  Route Int(const std::string& stream) { return g->Declare(Name(stream), Schema::Pod<int64_t>("int.v1")).value(); }
};

int64_t V(const SampleRef& s) { return s->as<int64_t>(); }

TEST(MailboxTest, ContentsCountsAndCreditMatchAModelUnderEveryNonBlockingPolicy) {
  for (Overflow policy : {Overflow::kDropOldest, Overflow::kDropNewest, Overflow::kCoalesce}) {
    Fixture f;
    Route r = f.Int("m");
    const size_t cap = 5;
    auto box = Mailbox::Create(r, {.capacity = cap, .overflow = policy}).value();
    std::deque<int64_t> model;
    uint64_t dropped_oldest = 0, dropped_newest = 0, coalesced = 0, accepted = 0, delivered = 0;
    std::mt19937 rng(static_cast<unsigned>(policy) + 7);
    for (int step = 0; step < 5000; ++step) {
      if (rng() % 3 != 0) {
        const int64_t v = step;
        ASSERT_TRUE(r.Publish(v).ok());
        if (model.size() < cap) {
          model.push_back(v);
          ++accepted;
        } else if (policy == Overflow::kDropOldest) {
          model.pop_front();
          model.push_back(v);
          ++dropped_oldest;
          ++accepted;
        } else if (policy == Overflow::kDropNewest) {
          ++dropped_newest;
        } else {
          model.back() = v;
          ++coalesced;
          ++accepted;
        }
      } else {
        SampleRef s = box->TryTake();
        if (model.empty()) {
          EXPECT_EQ(s, nullptr);
        } else {
          ASSERT_NE(s, nullptr);
          EXPECT_EQ(V(s), model.front());
          model.pop_front();
          ++delivered;
        }
      }
      FlowSnapshot snap = box->snapshot();
      ASSERT_EQ(snap.depth, model.size());
      ASSERT_EQ(snap.credit(), cap - model.size());
    }
    FlowSnapshot snap = box->snapshot();
    EXPECT_EQ(snap.accepted, accepted) << OverflowName(policy);
    EXPECT_EQ(snap.delivered, delivered);
    EXPECT_EQ(snap.dropped_oldest, dropped_oldest);
    EXPECT_EQ(snap.dropped_newest, dropped_newest);
    EXPECT_EQ(snap.coalesced, coalesced);
  }
}

TEST(MailboxTest, ABlockedProducerReallyWaitsAndATimedOutOneIsRefused) {
  Fixture f;
  Route r = f.Int("m");
  auto box = Mailbox::Create(r, {.capacity = 2, .overflow = Overflow::kBlock}).value();
  ASSERT_TRUE(r.Publish(int64_t{1}).ok());
  ASSERT_TRUE(r.Publish(int64_t{2}).ok());
  std::atomic<bool> returned{false};
  std::thread producer([&] {
    EXPECT_TRUE(r.Publish(int64_t{3}).ok());
    returned = true;
  });
  for (int i = 0; i < 200 && box->snapshot().blocked == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_EQ(box->snapshot().blocked, 1u);
  EXPECT_FALSE(returned.load());  // waiting for room, not dropped
  EXPECT_EQ(V(box->Take(Deadline::AfterMs(1000)).value()), 1);
  producer.join();
  EXPECT_TRUE(returned.load());
  EXPECT_EQ(box->snapshot().depth, 2u);
  EXPECT_EQ(V(box->TryTake()), 2);
  EXPECT_EQ(V(box->TryTake()), 3);
  // With a block timeout: the publish is refused, the value is not in the mailbox.
  auto strict = Mailbox::Create(r, {.capacity = 1, .overflow = Overflow::kBlock, .block_timeout_ms = 20}).value();
  ASSERT_TRUE(r.Publish(int64_t{4}).ok());  // both mailboxes take it (the first has room)
  Status st = r.Publish(int64_t{5});
  EXPECT_EQ(st.code(), Code::kResourceExhausted) << st.ToString();
  EXPECT_EQ(strict->snapshot().refused, 1u);
  EXPECT_EQ(V(strict->TryTake()), 4);
  EXPECT_EQ(strict->TryTake(), nullptr);
  // Take: a deadline, then closed.
  EXPECT_EQ(strict->Take(Deadline::AfterMs(5)).status().code(), Code::kTimeout);
  std::thread closer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    strict->Close();
  });
  EXPECT_EQ(strict->Take(Deadline::Never()).status().code(), Code::kClosed);
  closer.join();
  EXPECT_EQ(Mailbox::Create(r, {.capacity = 0}).status().code(), Code::kInvalidArgument);
}

TEST(CapacitorTest, NeverHoldsMoreThanItsCapacityAndItsProducerWaits) {
  Fixture f;
  Route in = f.Int("in"), out = f.Int("out");
  auto cap = Capacitor::Create(in, out, {.capacity = 3}).value();  // several slots: the producer blocks when full
  std::vector<int64_t> got;
  std::mutex mu;
  Subscription s = out.Observe([&](const SampleRef& v) {
    std::lock_guard<std::mutex> l(mu);
    got.push_back(V(v));
  });
  std::atomic<int> published{0};
  std::thread producer([&] {
    for (int64_t i = 0; i < 20; ++i) {
      ASSERT_TRUE(in.Publish(i).ok());
      ++published;
    }
  });
  size_t max_depth = 0;
  while (true) {
    {
      std::lock_guard<std::mutex> l(mu);
      if (got.size() == 20) break;
    }
    FlowSnapshot snap = cap->snapshot();
    max_depth = std::max(max_depth, snap.depth);
    // The producer is at most capacity (+1 waiting inside its publish) ahead of what went out.
    EXPECT_LE(static_cast<size_t>(published.load()), snap.delivered + 3 + 1);
    std::this_thread::sleep_for(std::chrono::microseconds(200));
    cap->Discharge(1);
  }
  producer.join();
  EXPECT_LE(max_depth, 3u);
  for (int64_t i = 0; i < 20; ++i) EXPECT_EQ(got[static_cast<size_t>(i)], i);  // in order, none lost
  EXPECT_GT(cap->snapshot().blocked, 0u);
}

TEST(CapacitorTest, OneSlotCoalescesToTheFreshestAndDemandReleases) {
  Fixture f;
  Route in = f.Int("in"), out = f.Int("out"), tick = f.Int("tick");
  auto cap = Capacitor::Create(in, out, {.capacity = 1, .demand = &tick}).value();
  std::vector<int64_t> got;
  Subscription s = out.Observe([&](const SampleRef& v) { got.push_back(V(v)); });
  for (int64_t i = 0; i < 10; ++i) ASSERT_TRUE(in.Publish(i).ok());  // a burst
  EXPECT_TRUE(got.empty());
  ASSERT_TRUE(tick.Publish(int64_t{0}).ok());  // demand
  EXPECT_EQ(got, std::vector<int64_t>{9});
  EXPECT_EQ(cap->snapshot().coalesced, 9u);
  ASSERT_TRUE(tick.Publish(int64_t{0}).ok());  // nothing stored, not immediate: forgotten
  ASSERT_TRUE(in.Publish(int64_t{10}).ok());
  EXPECT_EQ(got.size(), 1u);
  // The released value keeps its cause.
  ASSERT_TRUE(tick.Publish(int64_t{0}).ok());
  EXPECT_EQ(out.Latest()->envelope().causality, in.Latest()->envelope().id);
  EXPECT_EQ(out.Latest()->envelope().trace, in.Latest()->envelope().trace);
  // Another schema: refused.
  Route text = f.g->Declare(Name("text"), Schema::Bytes()).value();
  EXPECT_EQ(Capacitor::Create(in, text, {}).status().code(), Code::kSchemaMismatch);
}

TEST(CapacitorTest, ImmediateDemandFindingItEmptyLetsTheNextValuesThrough) {
  Fixture f;
  Route in = f.Int("in"), out = f.Int("out");
  auto cap = Capacitor::Create(in, out, {.capacity = 2, .immediate = true}).value();
  std::vector<int64_t> got;
  Subscription s = out.Observe([&](const SampleRef& v) { got.push_back(V(v)); });
  EXPECT_EQ(cap->Discharge(5), 0u);  // empty: demand remembered, up to the capacity (2)
  EXPECT_EQ(cap->snapshot().pending_demand, 2u);
  for (int64_t i = 0; i < 4; ++i) ASSERT_TRUE(in.Publish(i).ok());
  EXPECT_EQ(got, (std::vector<int64_t>{0, 1}));  // straight through
  EXPECT_EQ(cap->snapshot().depth, 2u);          // then stored
  EXPECT_EQ(cap->Discharge(5), 2u);
  EXPECT_EQ(got, (std::vector<int64_t>{0, 1, 2, 3}));
}

TEST(ResistorTest, PassesGatesAndReleasesOnPulses) {
  Fixture f;
  Route in = f.Int("in"), out = f.Int("out"), pulse = f.Int("pulse");
  Route gate = f.g->Declare(Name("gate"), Schema::Pod<uint8_t>("gate.v1")).value();
  std::vector<int64_t> got;
  Subscription s = out.Observe([&](const SampleRef& v) { got.push_back(V(v)); });
  {
    auto pass = Resistor::Create(in, out, {}).value();
    ASSERT_TRUE(in.Publish(int64_t{1}).ok());
    EXPECT_EQ(got, std::vector<int64_t>{1});
  }
  got.clear();
  {
    auto gated = Resistor::Create(in, out, {.gate = &gate}).value();
    ASSERT_TRUE(in.Publish(int64_t{2}).ok());  // a gate nobody set is closed
    ASSERT_TRUE(gate.Publish(uint8_t{1}).ok());
    ASSERT_TRUE(in.Publish(int64_t{3}).ok());
    ASSERT_TRUE(gate.Publish(uint8_t{0}).ok());
    ASSERT_TRUE(in.Publish(int64_t{4}).ok());
    EXPECT_EQ(got, std::vector<int64_t>{3});
    EXPECT_EQ(gated->snapshot().gated, 2u);
  }
  got.clear();
  {
    auto pulsed = Resistor::Create(in, out, {.release = &pulse}).value();
    ASSERT_TRUE(in.Publish(int64_t{5}).ok());
    ASSERT_TRUE(in.Publish(int64_t{6}).ok());
    EXPECT_TRUE(got.empty());
    ASSERT_TRUE(pulse.Publish(int64_t{0}).ok());
    ASSERT_TRUE(pulse.Publish(int64_t{0}).ok());  // nothing held: nothing released
    EXPECT_EQ(got, std::vector<int64_t>{6});
    EXPECT_EQ(pulsed->snapshot().coalesced, 1u);
  }
}

TEST(WatchdogTest, FiresExactlyAfterItsIntervalOnAManualClock) {
  Fixture f;
  Route beat = f.Int("beat"), timeout = f.Int("timeout");
  ManualClock clock(1000);
  std::vector<std::pair<int64_t, int64_t>> fired;  // (clock time, misses)
  Subscription s = timeout.Observe([&](const SampleRef& v) { fired.emplace_back(clock.NowNs(), V(v)); });
  auto dog = Watchdog::Create(beat, timeout, 100, clock).value();
  clock.Advance(99);
  EXPECT_TRUE(fired.empty());
  clock.Advance(1);
  ASSERT_EQ(fired.size(), 1u);
  EXPECT_EQ(fired[0], std::make_pair(int64_t{1100}, int64_t{1}));
  clock.Advance(50);                           // t = 1150
  ASSERT_TRUE(beat.Publish(int64_t{0}).ok());  // the interval starts again
  clock.Advance(99);                           // t = 1249
  EXPECT_EQ(fired.size(), 1u);
  clock.Advance(201);                          // t = 1450: due at 1250 and 1350 and 1450
  ASSERT_EQ(fired.size(), 4u);
  EXPECT_EQ(fired[1], std::make_pair(int64_t{1250}, int64_t{1}));
  EXPECT_EQ(fired[2], std::make_pair(int64_t{1350}, int64_t{2}));
  EXPECT_EQ(fired[3], std::make_pair(int64_t{1450}, int64_t{3}));
  EXPECT_EQ(dog->fired(), 4u);
  dog->Close();
  clock.Advance(1000);
  EXPECT_EQ(fired.size(), 4u);
  Route text = f.g->Declare(Name("text"), Schema::Bytes()).value();
  EXPECT_EQ(Watchdog::Create(beat, text, 100, clock).status().code(), Code::kSchemaMismatch);
  EXPECT_EQ(Watchdog::Create(beat, timeout, 0, clock).status().code(), Code::kInvalidArgument);
}

TEST(WatchdogTest, TheSystemClockFires) {
  Fixture f;
  Route beat = f.Int("beat"), timeout = f.Int("timeout");
  std::atomic<int> fired{0};
  Subscription s = timeout.Observe([&](const SampleRef&) { ++fired; });
  auto dog = Watchdog::Create(beat, timeout, 2'000'000).value();  // 2 ms
  for (int i = 0; i < 2000 && fired.load() == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_GE(fired.load(), 1);
}

}  // namespace
}  // namespace weft::graph
