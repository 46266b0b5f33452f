// Interval joins and the repartition planner (weft/graph/join.h).
//
// Each key's buffered values of each side are kept sorted by event time (values mostly come in
// order: an append); a new value finds its partners with two binary searches over the other
// side. The watermark prunes each key's oldest values; keys whose buffers empty go.
#include "weft/graph/join.h"

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <unordered_map>

#include "weft/core/crc32c.h"

namespace weft::graph {

struct IntervalJoin::Impl {
  struct Key {
    std::vector<JoinSide> side[2];  // 0 left, 1 right; each by event time
  };
  IntervalJoinOptions o;
  OnPair on_pair;
  OnDrop on_drop;
  std::unordered_map<uint64_t, Key> keys;
  int64_t watermark = INT64_MIN;
  uint64_t count[2] = {0, 0};
  uint64_t pairs = 0, pruned = 0, late = 0;
  size_t buffered[2] = {0, 0};

  bool Add(int s, uint64_t key, int64_t t, uint64_t id, double v) {
    // Behind the watermark: late (its partners may be pruned already), dropped, counted. So
    // pruning at watermark - within is exact: a value to come pairs with nothing older.
    if (watermark != INT64_MIN && t < watermark) {
      ++late;
      return false;
    }
    ++count[s];
    Key& k = keys[key];
    const JoinSide me{key, t, id, v};
    const std::vector<JoinSide>& other = k.side[1 - s];
    auto by_time = [](const JoinSide& a, int64_t x) { return a.event_ns < x; };
    auto from = std::lower_bound(other.begin(), other.end(), t - o.within_ns, by_time);
    for (auto it = from; it != other.end() && it->event_ns <= t + o.within_ns; ++it) {
      ++pairs;
      on_pair(s == 0 ? JoinPair{me, *it} : JoinPair{*it, me});
    }
    std::vector<JoinSide>& mine = k.side[s];
    if (mine.empty() || mine.back().event_ns <= t) {
      mine.push_back(me);
    } else {
      mine.insert(std::upper_bound(mine.begin(), mine.end(), t, [](int64_t x, const JoinSide& a) { return x < a.event_ns; }), me);
    }
    ++buffered[s];
    return true;
  }

  void Prune() {
    const int64_t keep_from = watermark - o.within_ns;
    for (auto it = keys.begin(); it != keys.end();) {
      for (int s = 0; s < 2; ++s) {
        std::vector<JoinSide>& v = it->second.side[s];
        auto end = std::lower_bound(v.begin(), v.end(), keep_from, [](const JoinSide& a, int64_t x) { return a.event_ns < x; });
        const size_t n = static_cast<size_t>(end - v.begin());
        if (n == 0) continue;
        if (on_drop) {
          for (auto d = v.begin(); d != end; ++d) on_drop(*d);
        }
        v.erase(v.begin(), end);
        pruned += n;
        buffered[s] -= n;
      }
      if (it->second.side[0].empty() && it->second.side[1].empty()) {
        it = keys.erase(it);
      } else {
        ++it;
      }
    }
  }
};

IntervalJoin::IntervalJoin(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
IntervalJoin::~IntervalJoin() = default;

Result<std::unique_ptr<IntervalJoin>> IntervalJoin::Create(IntervalJoinOptions options, OnPair on_pair, OnDrop on_drop) {
  if (options.within_ns < 0) return InvalidArgument("a join's interval is 0 or more");
  if (!on_pair) return InvalidArgument("a join needs somewhere to emit");
  auto impl = std::make_unique<Impl>();
  impl->o = options;
  impl->on_pair = std::move(on_pair);
  impl->on_drop = std::move(on_drop);
  return std::unique_ptr<IntervalJoin>(new IntervalJoin(std::move(impl)));
}

bool IntervalJoin::AddLeft(uint64_t key, int64_t event_ns, uint64_t id, double value) { return impl_->Add(0, key, event_ns, id, value); }
bool IntervalJoin::AddRight(uint64_t key, int64_t event_ns, uint64_t id, double value) { return impl_->Add(1, key, event_ns, id, value); }

Status IntervalJoin::Advance(int64_t watermark_ns) {
  Impl& m = *impl_;
  if (m.watermark != INT64_MIN && watermark_ns < m.watermark) {
    return InvalidArgument("a watermark went backwards: " + std::to_string(watermark_ns) + " after " + std::to_string(m.watermark));
  }
  m.watermark = watermark_ns;
  m.Prune();
  return Status::Ok();
}

JoinSnapshot IntervalJoin::snapshot() const {
  const Impl& m = *impl_;
  JoinSnapshot s;
  s.watermark_ns = m.watermark;
  s.keys = m.keys.size();
  s.buffered_left = m.buffered[0];
  s.buffered_right = m.buffered[1];
  s.left = m.count[0];
  s.right = m.count[1];
  s.pairs = m.pairs;
  s.pruned = m.pruned;
  s.late = m.late;
  return s;
}

// ---- the planner ------------------------------------------------------------------------

Result<RepartitionPlan> PlanRepartition(const std::vector<KeyCount>& counts, uint32_t partitions) {
  if (partitions == 0) return InvalidArgument("a plan needs at least one partition");
  RepartitionPlan p;
  p.partitions = partitions;
  p.load.assign(partitions, 0);
  uint64_t total = 0;
  for (const KeyCount& k : counts) {
    const uint32_t part = Crc32c(0, &k.key, sizeof(k.key)) % partitions;  // as the bus shards a key's 8 bytes
    p.partition_of.push_back(part);
    p.load[part] += k.values;
    total += k.values;
  }
  p.mean = static_cast<double>(total) / partitions;
  const uint64_t busiest = *std::max_element(p.load.begin(), p.load.end());
  p.skew = p.mean > 0 ? static_cast<double>(busiest) / p.mean : 1.0;
  for (const KeyCount& k : counts) {
    if (p.mean > 0 && static_cast<double>(k.values) > p.mean) {
      const auto split = static_cast<uint32_t>(std::min<double>(partitions, std::ceil(static_cast<double>(k.values) / p.mean)));
      p.hot.push_back({k.key, k.values, split});
    }
  }
  std::sort(p.hot.begin(), p.hot.end(), [](const RepartitionPlan::Hot& a, const RepartitionPlan::Hot& b) { return a.values > b.values; });
  return p;
}

std::string RepartitionPlan::ToText() const {
  std::string t;
  char line[160];
  std::snprintf(line, sizeof(line), "%u partitions, mean load %.1f values, skew %.2f (busiest / mean)\n", partitions, mean, skew);
  t += line;
  t += "partition  load\n";
  for (uint32_t i = 0; i < partitions; ++i) {
    std::snprintf(line, sizeof(line), "%9u  %" PRIu64 "%s\n", i, load[i],
                  mean > 0 && static_cast<double>(load[i]) > 1.5 * mean ? "  (over 1.5x the mean)" : "");
    t += line;
  }
  if (hot.empty()) {
    t += "no hot keys\n";
  } else {
    t += "hot keys (more values than a mean partition): key  values  split into\n";
    for (const Hot& h : hot) {
      std::snprintf(line, sizeof(line), "  %" PRIu64 "  %" PRIu64 "  %u\n", h.key, h.values, h.split);
      t += line;
    }
  }
  return t;
}

std::string RepartitionPlan::ToJson() const {
  std::string j = "{\"partitions\":" + std::to_string(partitions) + ",\"load\":[";
  for (uint32_t i = 0; i < partitions; ++i) j += (i ? "," : "") + std::to_string(load[i]);
  char buf[80];
  std::snprintf(buf, sizeof(buf), "],\"mean\":%.6g,\"skew\":%.6g,\"hot\":[", mean, skew);
  j += buf;
  for (size_t i = 0; i < hot.size(); ++i) {
    j += (i ? "," : "") + std::string("{\"key\":") + std::to_string(hot[i].key) + ",\"values\":" + std::to_string(hot[i].values) +
         ",\"split\":" + std::to_string(hot[i].split) + "}";
  }
  return j + "]}";
}

}  // namespace weft::graph
