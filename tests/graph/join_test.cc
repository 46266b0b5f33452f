// Joins (weft/graph/join.h): the interval join against a reference model under random order and
// watermarks (every pair of on-time values of one key within the interval, exactly once, sides
// kept apart; late values counted; the buffers pruned by the watermark); watermarks going
// backwards refused; the repartition planner's loads, skew and hot keys.
#include "weft/graph/join.h"

#include <gtest/gtest.h>

#include <random>
#include <set>
#include <tuple>

#include "weft/core/crc32c.h"

namespace weft::graph {
namespace {

TEST(IntervalJoinTest, MatchesAReferenceModelUnderRandomOrderAndWatermarks) {
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    std::mt19937_64 rng(seed);
    const int64_t within = 30;
    std::multiset<std::tuple<uint64_t, uint64_t>> got;  // (left id, right id)
    bool wrong_key = false;
    auto j = IntervalJoin::Create({.within_ns = within}, [&](const JoinPair& p) {
      if (p.left.key != p.right.key || p.left.id % 2 != 0 || p.right.id % 2 != 1) wrong_key = true;  // left ids even
      got.insert({p.left.id, p.right.id});
    }).value();
    struct Ev {
      uint64_t key;
      int64_t t;
      uint64_t id;
    };
    std::vector<Ev> accepted_left, accepted_right;
    int64_t clock = 0, wm = INT64_MIN;
    uint64_t late = 0, next_id = 0;
    for (int i = 0; i < 3000; ++i) {
      clock += static_cast<int64_t>(rng() % 4);
      if (rng() % 40 == 0) {
        const int64_t w = clock - 100 - static_cast<int64_t>(rng() % 50);
        if (wm == INT64_MIN || w >= wm) {
          wm = w;
          ASSERT_TRUE(j->Advance(wm).ok());
        }
        continue;
      }
      const bool left = rng() % 2 == 0;
      const uint64_t key = rng() % 5;
      const int64_t t = clock - static_cast<int64_t>(rng() % 200);
      const uint64_t id = (next_id++) * 2 + (left ? 0 : 1);
      const bool on_time = wm == INT64_MIN || t >= wm;
      if (!on_time) ++late;
      if (left) {
        if (on_time) accepted_left.push_back({key, t, id});
        j->AddLeft(key, t, id, 1.0);
      } else {
        if (on_time) accepted_right.push_back({key, t, id});
        j->AddRight(key, t, id, 2.0);
      }
    }
    std::multiset<std::tuple<uint64_t, uint64_t>> want;
    for (const Ev& l : accepted_left) {
      for (const Ev& r : accepted_right) {
        if (l.key == r.key && std::llabs(l.t - r.t) <= within) want.insert({l.id, r.id});
      }
    }
    ASSERT_FALSE(wrong_key);
    ASSERT_EQ(got, want) << "seed " << seed;
    const JoinSnapshot s = j->snapshot();
    EXPECT_EQ(s.late, late);
    EXPECT_EQ(s.pairs, want.size());
    EXPECT_GT(s.pruned, 0u);  // the buffers do not grow for ever
    EXPECT_LT(s.buffered_left + s.buffered_right, accepted_left.size() + accepted_right.size());
  }
}

TEST(IntervalJoinTest, BadInputIsRefused) {
  EXPECT_EQ(IntervalJoin::Create({.within_ns = -1}, [](const JoinPair&) {}).status().code(), Code::kInvalidArgument);
  auto j = IntervalJoin::Create({.within_ns = 5}, [](const JoinPair&) {}).value();
  ASSERT_TRUE(j->Advance(100).ok());
  Status s = j->Advance(99);
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_NE(s.message().find("backwards"), std::string::npos);
  EXPECT_EQ(j->snapshot().watermark_ns, 100);
}

TEST(RepartitionPlanTest, LoadsSkewAndHotKeys) {
  std::vector<KeyCount> counts;
  for (uint64_t k = 0; k < 100; ++k) counts.push_back({k, 10});
  counts.push_back({12345, 2000});  // one hot key
  auto plan = PlanRepartition(counts, 8).value();
  ASSERT_EQ(plan.partition_of.size(), counts.size());
  EXPECT_EQ(plan.partition_of.back(), Crc32c(0, &counts.back().key, 8) % 8);
  uint64_t total = 0;
  for (uint64_t l : plan.load) total += l;
  EXPECT_EQ(total, 3000u);
  EXPECT_DOUBLE_EQ(plan.mean, 375.0);
  EXPECT_GT(plan.skew, 5.0);  // the hot key's partition carries 2000 and more
  ASSERT_EQ(plan.hot.size(), 1u);
  EXPECT_EQ(plan.hot[0].key, 12345u);
  EXPECT_EQ(plan.hot[0].split, 6u);  // ceil(2000 / 375)
  EXPECT_NE(plan.ToText().find("hot keys"), std::string::npos);
  EXPECT_NE(plan.ToJson().find("\"split\":6"), std::string::npos);
  auto even = PlanRepartition({{1, 10}, {2, 10}}, 1).value();
  EXPECT_DOUBLE_EQ(even.skew, 1.0);
  EXPECT_TRUE(even.hot.empty());
  EXPECT_EQ(PlanRepartition(counts, 0).status().code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace weft::graph
