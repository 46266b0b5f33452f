// Windows (weft/graph/window.h) against reference models: random events out of order under
// random watermarks (every value either in its window's aggregate or counted late, windows
// emitted only once the watermark passed them, in order of end); the late policies (drop, side,
// update within the allowed lateness); watermarks going backwards refused; a silent partition
// holding the watermark back until it goes idle (the control: without idleness nothing closes);
// percentiles; count windows tumbling and sliding.
#include "weft/graph/window.h"

#include "weft/graph/graph.h"

#include <gtest/gtest.h>

#include <cmath>

#include <map>
#include <random>
#include <tuple>

namespace weft::graph {
namespace {

struct Agg {
  uint64_t count = 0;
  double sum = 0, min = 1e300, max = -1e300;
  void Add(double v) {
    ++count;
    sum += v;
    min = std::min(min, v);
    max = std::max(max, v);
  }
};

TEST(TimeWindowsTest, MatchesAReferenceModelUnderRandomOrderAndWatermarks) {
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    std::mt19937_64 rng(seed);
    const int64_t width = 100;
    std::map<std::pair<uint64_t, int64_t>, Agg> emitted;
    int64_t last_end = INT64_MIN, wm = INT64_MIN;
    bool bad_order = false, early = false;
    TimeWindowOptions o;
    o.width_ns = width;
    o.min_max = seed % 2 == 0;  // odd seeds: counts and sums only
    auto w = TimeWindows::Create(o, [&](const WindowResult& r) {
      if (r.end_ns < last_end) bad_order = true;
      if (wm < r.end_ns) early = true;
      last_end = r.end_ns;
      Agg& a = emitted[{r.partition, r.start_ns}];
      EXPECT_EQ(a.count, 0u) << "emitted twice";
      a.count = r.count;
      a.sum = r.sum;
      a.min = r.min;
      a.max = r.max;
    }).value();
    std::map<std::pair<uint64_t, int64_t>, Agg> model;
    uint64_t late = 0;
    int64_t clock = 0;
    for (int i = 0; i < 5000; ++i) {
      clock += static_cast<int64_t>(rng() % 5);
      if (rng() % 50 == 0) {
        const int64_t next = clock - static_cast<int64_t>(rng() % 150);  // lags the events
        if (wm == INT64_MIN || next >= wm) {
          wm = next;
          ASSERT_TRUE(w->Advance(wm).ok());
        }
        continue;
      }
      const uint64_t part = rng() % 7;
      const int64_t t = clock - static_cast<int64_t>(rng() % 300);  // out of order, some late
      const double v = static_cast<double>(rng() % 1000) / 10.0;
      const int64_t start = (t >= 0 ? t / width : (t - width + 1) / width) * width;
      if (wm != INT64_MIN && start + width <= wm) {
        ++late;
      } else {
        model[{part, start}].Add(v);
      }
      w->Add(part, t, v);
    }
    wm = INT64_MAX;  // Flush emits what is left, as at the end
    w->Flush();
    ASSERT_FALSE(bad_order);
    ASSERT_FALSE(early);
    ASSERT_EQ(emitted.size(), model.size()) << "seed " << seed;
    for (const auto& [k, a] : model) {
      const Agg& e = emitted[k];
      ASSERT_EQ(e.count, a.count);
      ASSERT_NEAR(e.sum, a.sum, 1e-6);
      if (o.min_max) {
        ASSERT_EQ(e.min, a.min);
        ASSERT_EQ(e.max, a.max);
      } else {
        ASSERT_TRUE(std::isnan(e.min) && std::isnan(e.max));
      }
    }
    EXPECT_EQ(w->snapshot().late_dropped, late);
    EXPECT_EQ(w->snapshot().open_windows, 0u);
  }
}

TEST(TimeWindowsTest, LateValuesAreDroppedSidedOrUpdateTheirWindow) {
  std::vector<WindowResult> out;
  std::vector<LateValue> side;
  auto keep = [&](const WindowResult& r) { out.push_back(r); };
  auto sided = TimeWindows::Create({.width_ns = 10, .late = LatePolicy::kSide}, keep, [&](const LateValue& l) { side.push_back(l); }).value();
  sided->Add(1, 5, 1.0);
  ASSERT_TRUE(sided->Advance(10).ok());
  sided->Add(1, 7, 2.0);  // its window [0, 10) has closed
  ASSERT_EQ(side.size(), 1u);
  EXPECT_EQ(side[0].event_ns, 7);
  EXPECT_EQ(side[0].watermark_ns, 10);
  EXPECT_EQ(sided->snapshot().late_sided, 1u);

  out.clear();
  auto upd = TimeWindows::Create({.width_ns = 10, .late = LatePolicy::kUpdate, .allowed_lateness_ns = 20}, keep).value();
  upd->Add(1, 5, 1.0);
  ASSERT_TRUE(upd->Advance(10).ok());
  ASSERT_EQ(out.size(), 1u);
  EXPECT_FALSE(out[0].update);
  upd->Add(1, 6, 3.0);  // within the lateness: the window again, updated
  ASSERT_EQ(out.size(), 2u);
  EXPECT_TRUE(out[1].update);
  EXPECT_EQ(out[1].count, 2u);
  EXPECT_EQ(out[1].sum, 4.0);
  ASSERT_TRUE(upd->Advance(30).ok());  // the lateness is over: the window is gone
  upd->Add(1, 7, 5.0);
  EXPECT_EQ(out.size(), 2u);
  EXPECT_EQ(upd->snapshot().late_dropped, 1u);
  EXPECT_EQ(upd->snapshot().updates, 1u);
}

TEST(TimeWindowsTest, AWatermarkGoingBackwardsIsRefusedAndChangesNothing) {
  int emitted = 0;
  auto w = TimeWindows::Create({.width_ns = 10}, [&](const WindowResult&) { ++emitted; }).value();
  w->Add(1, 15, 1.0);
  ASSERT_TRUE(w->Advance(12).ok());
  Status s = w->Advance(11);
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_NE(s.message().find("backwards"), std::string::npos) << s.ToString();
  EXPECT_EQ(w->snapshot().watermark_ns, 12);
  EXPECT_EQ(w->AdvancePartition(3, 50, 0).code(), Code::kOk);
  EXPECT_EQ(w->AdvancePartition(3, 40, 0).code(), Code::kInvalidArgument);
  EXPECT_EQ(TimeWindows::Create({.width_ns = 0}, [](const WindowResult&) {}).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(TimeWindows::Create({.percentiles = {1.5}}, [](const WindowResult&) {}).status().code(), Code::kInvalidArgument);
}

TEST(TimeWindowsTest, ASilentPartitionHoldsTheWatermarkUntilItGoesIdle) {
  for (const bool idleness : {false, true}) {
    std::vector<WindowResult> out;
    auto w = TimeWindows::Create({.width_ns = 10, .idle_after_ns = idleness ? 1000 : 0},
                                 [&](const WindowResult& r) { out.push_back(r); }).value();
    ASSERT_TRUE(w->AdvancePartition(1, 0, 0).ok());
    ASSERT_TRUE(w->AdvancePartition(2, 0, 0).ok());
    w->Add(1, 3, 1.0);
    w->Add(1, 13, 2.0);
    ASSERT_TRUE(w->AdvancePartition(1, 20, 500).ok());  // partition 2 says nothing more
    EXPECT_TRUE(out.empty());                            // held back by partition 2
    w->Tick(1200);  // partition 2 has been silent 1200 ns, partition 1 only 700
    if (!idleness) {
      EXPECT_TRUE(out.empty());  // the control: without idleness, for ever
      EXPECT_TRUE(w->snapshot().idle.empty());
      continue;
    }
    ASSERT_EQ(out.size(), 2u);  // [0,10) and [10,20) close at partition 1's watermark
    EXPECT_EQ(w->snapshot().idle, std::vector<uint64_t>{2});
    EXPECT_EQ(w->snapshot().watermark_ns, 20);
    ASSERT_TRUE(w->AdvancePartition(2, 25, 2100).ok());  // it speaks again
    EXPECT_TRUE(w->snapshot().idle.empty());
    EXPECT_EQ(w->snapshot().watermark_ns, 20);  // never back; the least of the two is 20
  }
}

TEST(TimeWindowsTest, APartitionKnownOnlyByItsValuesHoldsTheWatermarkUntilIdle) {
  std::vector<WindowResult> out;
  auto w = TimeWindows::Create({.width_ns = 10, .idle_after_ns = 100}, [&](const WindowResult& r) { out.push_back(r); }).value();
  w->Add(1, 3, 1.0);
  w->Add(2, 4, 2.0);  // partition 2 never gives a watermark
  ASSERT_TRUE(w->AdvancePartition(1, 50, 0).ok());
  EXPECT_TRUE(out.empty());
  w->Tick(10);   // first seen without a watermark now
  w->Tick(105);  // partition 1 (moved at 0) goes idle; 2 has been silent only 95
  EXPECT_TRUE(out.empty());  // 2 holds it back
  ASSERT_TRUE(w->AdvancePartition(1, 60, 106).ok());
  EXPECT_TRUE(out.empty());  // 2 not idle yet
  w->Tick(111);
  ASSERT_EQ(out.size(), 2u);
}

TEST(TimeWindowsTest, AWindowCarriesTheTaintsOfItsValues) {
  std::vector<WindowResult> out;
  auto w = TimeWindows::Create({.width_ns = 10}, [&](const WindowResult& r) { out.push_back(r); }).value();
  w->Add(1, 1, 1.0, kNondeterministic);
  w->Add(1, 2, 1.0);
  w->Add(2, 3, 1.0);  // the control: a window of untainted values
  w->Add(1, 12, 1.0, kSensitive);
  w->Flush();
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].taints, kNondeterministic);
  EXPECT_EQ(out[1].taints, 0);
  EXPECT_EQ(out[2].taints, kSensitive);
  std::vector<WindowResult> counted;
  auto c = CountWindows::Create({.size = 2}, [&](const WindowResult& r) { counted.push_back(r); }).value();
  c->Add(1, 1, 1.0, kRepaired);
  c->Add(1, 2, 1.0);
  c->Add(1, 3, 1.0);
  c->Add(1, 4, 1.0);
  ASSERT_EQ(counted.size(), 2u);
  EXPECT_EQ(counted[0].taints, kRepaired);
  EXPECT_EQ(counted[1].taints, 0);
}

TEST(TimeWindowsTest, AWindowNamesTheInputsItCameFrom) {
  std::vector<std::vector<uint64_t>> ins;
  auto w = TimeWindows::Create({.width_ns = 10, .keep_inputs = true}, [&](const WindowResult& r) {
    ASSERT_NE(r.inputs, nullptr);
    ins.push_back(*r.inputs);
  }).value();
  w->Add(1, 1, 1.0, 0, 101);
  w->Add(2, 2, 1.0, 0, 102);
  w->Add(1, 3, 1.0, 0, 103);
  w->Add(1, 14, 1.0, 0, 104);
  w->Flush();
  EXPECT_EQ(ins, (std::vector<std::vector<uint64_t>>{{101, 103}, {102}, {104}}));
  auto plain = TimeWindows::Create({.width_ns = 10}, [&](const WindowResult& r) { EXPECT_EQ(r.inputs, nullptr); }).value();
  plain->Add(1, 1, 1.0);
  plain->Flush();
  std::vector<uint64_t> counted;
  auto c = CountWindows::Create({.size = 2, .keep_inputs = true}, [&](const WindowResult& r) { counted = *r.inputs; }).value();
  c->Add(1, 1, 1.0, 0, 7);
  c->Add(1, 2, 1.0, 0, 8);
  EXPECT_EQ(counted, (std::vector<uint64_t>{7, 8}));
}

TEST(TimeWindowsTest, Percentiles) {
  std::vector<WindowResult> out;
  auto w = TimeWindows::Create({.width_ns = 100, .percentiles = {0.5, 0.9, 1.0}, .keep_values = true},
                               [&](const WindowResult& r) {
                                 out.push_back(r);
                                 EXPECT_EQ(r.values->size(), 10u);
                               }).value();
  for (int i = 10; i >= 1; --i) w->Add(0, i, double(i));
  ASSERT_TRUE(w->Advance(100).ok());
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].percentiles, (std::vector<double>{5, 9, 10}));
  EXPECT_EQ(out[0].mean(), 5.5);
}

TEST(CountWindowsTest, TumblingAndSlidingAgainstAModel) {
  std::mt19937_64 rng(3);
  for (const size_t trigger : {size_t{0}, size_t{2}}) {
    std::vector<WindowResult> out;
    std::vector<std::vector<double>> sums;
    auto w = CountWindows::Create({.size = 5, .trigger = trigger}, [&](const WindowResult& r) { out.push_back(r); }).value();
    std::map<uint64_t, std::vector<double>> seen;
    std::vector<std::tuple<uint64_t, uint64_t, double>> expect;  // partition, count, sum
    for (int i = 0; i < 200; ++i) {
      const uint64_t p = rng() % 3;
      const double v = static_cast<double>(rng() % 100);
      auto& s = seen[p];
      s.push_back(v);
      const size_t every = trigger == 0 ? 5 : trigger;
      if (s.size() % every == 0) {
        const size_t from = trigger == 0 ? s.size() - 5 : (s.size() > 5 ? s.size() - 5 : 0);
        double sum = 0;
        for (size_t k = from; k < s.size(); ++k) sum += s[k];
        expect.emplace_back(p, s.size() - from, sum);
      }
      w->Add(p, i, v);
    }
    ASSERT_EQ(out.size(), expect.size());
    for (size_t k = 0; k < out.size(); ++k) {
      EXPECT_EQ(out[k].partition, std::get<0>(expect[k]));
      EXPECT_EQ(out[k].count, std::get<1>(expect[k]));
      EXPECT_EQ(out[k].sum, std::get<2>(expect[k]));
    }
  }
  EXPECT_EQ(CountWindows::Create({.size = 0}, [](const WindowResult&) {}).status().code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace weft::graph
