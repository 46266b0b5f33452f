// Joins over streams of keyed values, the state behind the graph's join operators: an
// event-time interval join (a left and a right value of one key whose event times are at most
// `within` apart make a pair), pruned by the watermark; and the planner of a join across
// partitions: where each key goes, how loaded each partition is, and how skewed. Guide:
// docs/graph.md, "Joins".
//
//   auto j = graph::IntervalJoin::Create({.within_ns = 5'000'000}, [](const graph::JoinPair& p) { ... }).value();
//   j->AddLeft(imu, t_accel, accel_id, ax);
//   j->AddRight(imu, t_gyro, gyro_id, gx);
//   j->Advance(watermark_ns);   // values too old to pair with anything to come are dropped
//
// Thread rule: one thread at a time.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "weft/core/status.h"

namespace weft::graph {

// One side's value: its key, event time, an id the binding maps to its object, and a number.
struct JoinSide {
  uint64_t key = 0;
  int64_t event_ns = 0;
  uint64_t id = 0;
  double value = 0;
};

struct JoinPair {
  JoinSide left, right;
};

struct IntervalJoinOptions {
  int64_t within_ns = 0;  // |left.event_ns - right.event_ns| <= within_ns
};

struct JoinSnapshot {
  int64_t watermark_ns = INT64_MIN;
  size_t keys = 0;
  size_t buffered_left = 0, buffered_right = 0;
  uint64_t left = 0, right = 0, pairs = 0;
  uint64_t pruned = 0;  // values dropped by the watermark (they could pair with nothing to come)
  uint64_t late = 0;    // values that came behind the watermark (dropped: their partners may be gone)
};

class IntervalJoin {
 public:
  using OnPair = std::function<void(const JoinPair&)>;
  // Told of each buffered value the watermark prunes (a binding lets go of its object).
  using OnDrop = std::function<void(const JoinSide&)>;
  // kInvalidArgument for a negative interval.
  static Result<std::unique_ptr<IntervalJoin>> Create(IntervalJoinOptions options, OnPair on_pair, OnDrop on_drop = nullptr);
  ~IntervalJoin();
  // A value of each side: paired at once with every buffered value of the other side and the
  // same key within the interval (in the other side's order of event time), then buffered.
  // False for a late value (dropped, counted; it made no pairs and is not kept).
  bool AddLeft(uint64_t key, int64_t event_ns, uint64_t id, double value);
  bool AddRight(uint64_t key, int64_t event_ns, uint64_t id, double value);
  // The watermark: values older than watermark - within can pair with nothing to come, and go.
  // kInvalidArgument for a watermark that goes backwards.
  Status Advance(int64_t watermark_ns);
  JoinSnapshot snapshot() const;

  struct Impl;

 private:
  explicit IntervalJoin(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// How a join across `partitions` partitions would place its keys, from counts of the values
// seen per key: each key's partition (its hash, as the bus shards keys), each partition's load,
// the skew (the busiest partition's load over the mean), the hot keys (those that alone exceed
// the mean partition load), and for each hot key the number of ways to split it (salting) so
// that no piece exceeds the mean.
struct KeyCount {
  uint64_t key = 0;
  uint64_t values = 0;
};

struct RepartitionPlan {
  uint32_t partitions = 0;
  std::vector<uint32_t> partition_of;  // per key given, in order
  std::vector<uint64_t> load;          // per partition: values
  double mean = 0, skew = 0;           // skew: max load / mean (1: even)
  struct Hot {
    uint64_t key = 0;
    uint64_t values = 0;
    uint32_t split = 0;  // pieces to salt it into
  };
  std::vector<Hot> hot;
  std::string ToText() const;  // a table users can read
  std::string ToJson() const;
};

// kInvalidArgument for 0 partitions.
Result<RepartitionPlan> PlanRepartition(const std::vector<KeyCount>& counts, uint32_t partitions);

}  // namespace weft::graph
