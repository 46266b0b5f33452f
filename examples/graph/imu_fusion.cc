// IMU fusion in C++: accelerometer and gyro samples come at their own rates and out of step.
// Two capacitors stage each stream until the fusion step asks (explicit demand); an event-time
// interval join binds each accelerometer sample to the gyro samples within 2 ms of it, and the
// watermark lets the join forget what can pair with nothing to come.
#include "check.h"

#include <cstdio>
#include <vector>

#include "weft/graph/flow.h"
#include "weft/graph/join.h"

using namespace weft;

constexpr int64_t kMs = 1'000'000;

struct Sample3 {
  int64_t t_ns;
  double x;
};

int main() {
  auto g = graph::Graph::Create();
  const auto imu = graph::Schema::Pod<Sample3>("imu.sample.v1");
  auto accel_raw = g->Declare({.owner = "imu", .family = "motion", .stream = "accel", .layer = "raw"}, imu).value();
  auto gyro_raw = g->Declare({.owner = "imu", .family = "motion", .stream = "gyro", .layer = "raw"}, imu).value();
  auto accel = g->Declare({.owner = "imu", .family = "motion", .stream = "accel"}, imu).value();
  auto gyro = g->Declare({.owner = "imu", .family = "motion", .stream = "gyro"}, imu).value();
  auto pull = g->Declare({.owner = "fusion", .family = "motion", .stream = "pull"}, graph::Schema::Pod<int64_t>("i64")).value();

  graph::CapacitorOptions staging;  // up to 64 samples each, one released per demand value
  staging.capacity = 64;
  staging.demand = &pull;
  auto a_cap = graph::Capacitor::Create(accel_raw, accel, staging).value();
  auto g_cap = graph::Capacitor::Create(gyro_raw, gyro, staging).value();

  std::vector<graph::JoinPair> fused;
  auto join = graph::IntervalJoin::Create({.within_ns = 2 * kMs}, [&](const graph::JoinPair& p) { fused.push_back(p); })
                  .value();
  auto on_accel = accel.Observe([&](const graph::SampleRef& s) {
    const Sample3 v = s->as<Sample3>();
    join->AddLeft(0, v.t_ns, s->envelope().id, v.x);
  });
  auto on_gyro = gyro.Observe([&](const graph::SampleRef& s) {
    const Sample3 v = s->as<Sample3>();
    join->AddRight(0, v.t_ns, s->envelope().id, v.x);
  });

  // 10 accel samples every 5 ms; gyro every 5 ms, 1 ms later.
  for (int i = 0; i < 10; ++i) {
    const int64_t t = i * 5 * kMs;
    CHECK(accel_raw.Publish(Sample3{t, static_cast<double>(i)}).ok());
    CHECK(gyro_raw.Publish(Sample3{t + kMs, -static_cast<double>(i)}).ok());
  }
  CHECK(fused.empty());  // staged: nothing moves until the fusion step asks
  for (int i = 0; i < 10; ++i) {
    CHECK(pull.Publish(int64_t{i}).ok());
    CHECK(join->Advance(i * 5 * kMs).ok());
  }
  CHECK(fused.size() == 10);
  for (const graph::JoinPair& p : fused) {
    CHECK(p.right.event_ns - p.left.event_ns == kMs);
    CHECK(p.right.value == -p.left.value);
  }
  CHECK(a_cap->snapshot().delivered == 10 && g_cap->snapshot().delivered == 10);
  const graph::JoinSnapshot snap = join->snapshot();
  std::printf("%zu fused samples; %llu pruned by the watermark, %zu still buffered\n", fused.size(),
              static_cast<unsigned long long>(snap.pruned), snap.buffered_left + snap.buffered_right);
  std::printf("imu fusion example ok\n");
  return 0;
}
