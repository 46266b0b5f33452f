// A rolling aggregate released by watermarks, in C++: request latencies per service in
// 1-second event-time windows, out of order; a window is released only when every service's
// watermark passes its end, a late value goes to the side, and a silent service is declared
// idle so it cannot hold everyone back.
#include "check.h"

#include <cstdio>
#include <map>

#include "weft/graph/window.h"

using namespace weft;

constexpr int64_t kS = 1'000'000'000;
enum Service : uint64_t { kAuth = 1, kSearch = 2 };

int main() {
  std::map<uint64_t, double> means;  // partition -> mean of its last window
  int lates = 0;
  graph::TimeWindowOptions o;
  o.width_ns = kS;
  o.late = graph::LatePolicy::kSide;
  o.idle_after_ns = 5 * kS;  // a partition silent this long stops holding the watermark back
  auto w = graph::TimeWindows::Create(o,
                                      [&](const graph::WindowResult& r) { means[r.partition] = r.mean(); },
                                      [&](const graph::LateValue&) { ++lates; })
               .value();
  int64_t now = 0;  // processing time, for idleness
  w->Add(kAuth, kS * 3 / 10, 10);
  w->Add(kAuth, kS / 10, 30);
  w->Add(kSearch, kS / 2, 100);
  w->Add(kAuth, kS * 9 / 10, 20);
  w->Add(kSearch, kS / 5, 300);
  CHECK(w->AdvancePartition(kAuth, kS, now).ok());
  CHECK(means.empty());  // search has not said: it holds the window
  CHECK(w->AdvancePartition(kSearch, kS, now).ok());
  CHECK(means[kAuth] == 20.0 && means[kSearch] == 200.0);
  w->Add(kAuth, kS / 2, 99);  // behind the watermark: late, to the side
  CHECK(lates == 1);
  CHECK(!w->AdvancePartition(kAuth, kS / 2, now).ok());  // a watermark never goes back
  w->Add(kAuth, kS * 3 / 2, 40);
  now += 6 * kS;  // search is silent for 6 s: idle
  w->Tick(now);
  CHECK(w->AdvancePartition(kAuth, 2 * kS, now).ok());
  CHECK(means[kAuth] == 40.0);
  const auto snap = w->snapshot();
  CHECK(snap.idle.size() == 1 && snap.idle[0] == kSearch);
  std::printf("%llu windows released, %d late value sent aside, search idle\n",
              static_cast<unsigned long long>(snap.emitted), lates);
  std::printf("rolling window example ok\n");
  return 0;
}
