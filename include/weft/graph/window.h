// Windows over streams of (partition, event time, value), the state behind the graph's window
// operators: count windows, and event-time tumbling windows released by watermarks, with
// per-partition state, a stated policy for late values, and idle partitions that cannot hold
// the watermark back for ever. Aggregates: count, sum, mean, min, max and percentiles (the
// bindings add user functions over a window's values). Guide: docs/graph.md, "Windows".
//
//   graph::TimeWindows w({.width_ns = 1'000'000'000}, [](const graph::WindowResult& r) { ... });
//   w.Add(sensor_id, event_ns, reading);
//   w.Advance(watermark_ns).IgnoreError();   // closes every window that ends at or before it
//
// Thread rule: one thread at a time (the operator that feeds it).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "weft/core/status.h"

namespace weft::graph {

// One window's aggregate.
struct WindowResult {
  uint64_t partition = 0;
  int64_t start_ns = 0, end_ns = 0;  // [start, end) in event time; count windows: first and last event's
  uint64_t count = 0;
  double sum = 0, min = 0, max = 0;
  std::vector<double> percentiles;  // as asked, in the order asked
  const std::vector<double>* values = nullptr;  // the window's values, if kept (valid during the call)
  const std::vector<uint64_t>* inputs = nullptr;  // the ids its values came with, if kept (its lineage)
  bool update = false;  // a window emitted before, updated by a late value (LatePolicy::kUpdate)
  uint8_t taints = 0;   // the Taint bits of any of its values (weft/graph/graph.h)
  double mean() const { return count == 0 ? 0 : sum / static_cast<double>(count); }
};

// A value behind the watermark: its window has closed.
enum class LatePolicy : uint8_t {
  kDrop,    // dropped, counted
  kSide,    // handed to the late callback (a side route), counted
  kUpdate,  // within allowed_lateness_ns of its window's end: the window is updated and emitted
            // again (update = true); later than that: dropped, counted
};

struct LateValue {
  uint64_t partition = 0;
  int64_t event_ns = 0;
  double value = 0;
  int64_t watermark_ns = 0;  // the watermark it was behind
};

struct TimeWindowOptions {
  int64_t width_ns = 1'000'000'000;  // tumbling windows [k * width, (k + 1) * width)
  LatePolicy late = LatePolicy::kDrop;
  int64_t allowed_lateness_ns = 0;
  // With partition watermarks (AdvancePartition): a partition whose watermark has not moved for
  // this long (on the `now_ns` given) is idle, and no longer holds the watermark back until it
  // speaks again (0: partitions never go idle).
  int64_t idle_after_ns = 0;
  std::vector<double> percentiles;  // quantiles in [0, 1] (the window keeps its values)
  bool keep_values = false;         // keep each window's values (for user functions)
  bool keep_inputs = false;         // keep the ids given with its values (which inputs made it)
  // Track each window's min and max. Off when only counts, sums and means are wanted: the
  // results' min and max are then NaN, and a value costs an add and an increment.
  bool min_max = true;
};

struct WindowSnapshot {
  int64_t watermark_ns = INT64_MIN;  // the watermark windows are closed by
  size_t partitions = 0;             // partitions with state
  size_t open_windows = 0;
  uint64_t added = 0, emitted = 0, updates = 0;
  uint64_t late_dropped = 0, late_sided = 0;
  std::vector<uint64_t> idle;  // partitions idle now (partition watermarks only)
};

class TimeWindows {
 public:
  using OnWindow = std::function<void(const WindowResult&)>;
  using OnLate = std::function<void(const LateValue&)>;
  // kInvalidArgument (from Create) for a width of 0 or less, or a quantile outside [0, 1].
  static Result<std::unique_ptr<TimeWindows>> Create(TimeWindowOptions options, OnWindow on_window, OnLate on_late = nullptr);
  ~TimeWindows();

  // One value at its event time (with its Taint bits, passed on to its window). A value behind
  // the watermark is late (the policy says).
  void Add(uint64_t partition, int64_t event_ns, double value, uint8_t taints = 0, uint64_t id = 0);
  // Many values at once, in order (columns of equal length; the shortest decides).
  void AddBatch(std::span<const uint64_t> partitions, std::span<const int64_t> event_ns, std::span<const double> values);
  // The stream's watermark: no value older than it will come (those that do are late). Every
  // window that ends at or before it closes and is emitted, in order of end (windows of one end
  // in the order they opened).
  // kInvalidArgument for a watermark that goes backwards (nothing changes).
  Status Advance(int64_t watermark_ns);
  // A partition's own watermark: the stream's is the least of the partitions that are not
  // idle (a partition known by its values but without a watermark yet holds it back). `now_ns`
  // is processing time (for idleness; from the graph's clock).
  Status AdvancePartition(uint64_t partition, int64_t watermark_ns, int64_t now_ns);
  // Looks for partitions gone idle by `now_ns` (and lets the watermark move past them): silent
  // for idle_after_ns since their watermark last moved, or since the first Tick that saw them
  // without one.
  void Tick(int64_t now_ns);
  // Emits every open window, as at the end of the stream.
  void Flush();
  WindowSnapshot snapshot() const;

  struct Impl;

 private:
  explicit TimeWindows(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Count windows: each partition's last `size` values; every `trigger` values (default: size,
// tumbling) the window is emitted (start/end: its oldest and newest value's event time).
struct CountWindowOptions {
  size_t size = 100;
  size_t trigger = 0;  // 0: size
  std::vector<double> percentiles;
  bool keep_values = false;
  bool keep_inputs = false;
};

class CountWindows {
 public:
  using OnWindow = TimeWindows::OnWindow;
  static Result<std::unique_ptr<CountWindows>> Create(CountWindowOptions options, OnWindow on_window);
  ~CountWindows();
  void Add(uint64_t partition, int64_t event_ns, double value, uint8_t taints = 0, uint64_t id = 0);
  WindowSnapshot snapshot() const;

  struct Impl;

 private:
  explicit CountWindows(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace weft::graph
