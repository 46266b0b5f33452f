// A rate-matched sensor: bursts of readings far faster than a display refreshes. A one-slot
// capacitor between them keeps the freshest reading, and each refresh tick (explicit demand)
// releases exactly one; the rest are counted as coalesced.
#include "check.h"

#include <cstdio>
#include <vector>

#include "weft/graph/flow.h"

using namespace weft;

int main() {
  auto g = graph::Graph::Create();
  const auto celsius = graph::Schema::Pod<double>("celsius.v1");
  auto raw = g->Declare({.owner = "sensor", .family = "env", .stream = "temperature", .layer = "raw"}, celsius).value();
  auto shown = g->Declare({.owner = "display", .family = "env", .stream = "temperature"}, celsius).value();
  auto tick = g->Declare({.owner = "display", .family = "ui", .stream = "refresh"}, graph::Schema::Pod<int64_t>("i64")).value();
  graph::CapacitorOptions one_slot;
  one_slot.capacity = 1;  // keeps the freshest
  one_slot.demand = &tick;
  auto cap = graph::Capacitor::Create(raw, shown, one_slot).value();
  std::vector<double> screen;
  auto sub = shown.Observe([&](const graph::SampleRef& s) { screen.push_back(s->as<double>()); });
  for (int burst = 0; burst < 5; ++burst) {
    for (int i = 0; i < 100; ++i) CHECK(raw.Publish(20.0 + burst + i / 100.0).ok());
    CHECK(tick.Publish(int64_t{burst}).ok());  // the display refreshes: one reading, the freshest
  }
  CHECK(screen.size() == 5);
  for (int burst = 0; burst < 5; ++burst) CHECK(screen[burst] == 20.0 + burst + 0.99);
  const auto snap = cap->snapshot();
  CHECK(snap.coalesced == 5 * 99 && snap.delivered == 5);
  CHECK(shown.Latest()->envelope().causality != 0);  // it came from a sensor reading
  std::printf("5 refreshes showed the freshest of 500 readings; %llu coalesced\n",
              static_cast<unsigned long long>(snap.coalesced));
  std::printf("rate matched sensor example ok\n");
  return 0;
}
