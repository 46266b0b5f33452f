// `weft bench graph`: the reactive graph. Case `observe`: publish to an observer holding the
// typed value, per publish (p50/p99), in one process (placement memory), from C++ and Python;
// beside it the floor in each language (a plain list of callbacks, no envelope, no latest) and
// RxPY 3's Subject for Python. Case `throughput`: values per second through a capacitor and a
// filter into an observer; RxPY's Subject with a filter and a plain loop beside it.
#include <functional>
#include <vector>

#include "bench_util.h"
#include "suites.h"
#include "weft/core/clock.h"
#include "weft/graph/flow.h"
#include "weft/graph/graph.h"

namespace weft::bench {
namespace {

Row GraphRow(const std::string& case_name, const std::string& transport, const std::string& lang) {
  Row r = NewRow("graph", case_name, transport, 8, "");
  r.extra["placement"] = "memory";
  r.extra["lang"] = lang;
  return r;
}

graph::RouteName Name(const char* stream) { return {.owner = "bench", .family = "graph", .stream = stream}; }

// The time from before a publish to the observer holding the value, per publish.
template <typename Publish>
std::vector<int64_t> TimeEach(Publish publish, const int64_t* seen_at, int warm, int n) {
  std::vector<int64_t> out;
  out.reserve(static_cast<size_t>(n));
  for (int i = 0; i < warm + n; ++i) {
    const int64_t t0 = MonotonicNs();
    publish(static_cast<double>(i));
    if (i >= warm) out.push_back(*seen_at - t0);
  }
  return out;
}

Row ObserveCpp(int warm, int n) {
  auto g = graph::Graph::Create();
  graph::Route r = g->Declare(Name("observe"), graph::Schema::Pod<double>("value.v1")).value();
  double held = 0;
  int64_t at = 0;
  graph::Subscription s = r.Observe([&](const graph::SampleRef& v) {
    held = v->as<double>();
    at = MonotonicNs();
  });
  std::vector<int64_t> samples = TimeEach([&](double v) { r.Publish(v).IgnoreError(); }, &at, warm, n);
  Row row = GraphRow("observe", "weft", "cpp");
  SetLatency(row, samples);
  row.note = "Route::Publish(double) to one observer holding the value; envelope, latest, same thread";
  return row;
}

Row ObserveCppFloor(int warm, int n) {
  double held = 0;
  int64_t at = 0;
  std::vector<std::function<void(double)>> callbacks{[&](double v) {
    held = v;
    at = MonotonicNs();
  }};
  std::vector<int64_t> samples = TimeEach(
      [&](double v) {
        for (auto& c : callbacks) c(v);
      },
      &at, warm, n);
  Row row = GraphRow("observe", "floor", "cpp");
  SetLatency(row, samples);
  row.note = "a loop over a vector of std::function: no envelope, no latest";
  return row;
}

Row ThroughputCpp(uint64_t total) {
  constexpr size_t kBatch = 1024;
  total = total / kBatch * kBatch;
  auto g = graph::Graph::Create();
  graph::Route in = g->Declare(Name("in"), graph::Schema::Pod<int64_t>("n.v1")).value();
  graph::Route mid = g->Declare(Name("mid"), graph::Schema::Pod<int64_t>("n.v1")).value();
  auto cap = graph::Capacitor::Create(in, mid, {.capacity = kBatch}).value();
  uint64_t kept = 0;
  graph::Subscription s = mid.Observe([&](const graph::SampleRef& v) {
    if ((v->as<int64_t>() & 1) == 0) ++kept;  // the filter, then the observer
  });
  const int64_t t0 = MonotonicNs();
  for (uint64_t start = 0; start < total; start += kBatch) {
    for (uint64_t i = start; i < start + kBatch; ++i) in.Publish(static_cast<int64_t>(i)).IgnoreError();
    cap->Discharge(kBatch);
  }
  const int64_t elapsed = MonotonicNs() - t0;
  Row row = GraphRow("throughput", "weft", "cpp");
  SetThroughput(row, total, 8, elapsed);
  row.note = kept == total / 2 ? "publish into a capacitor of 1024, discharged per 1024 into a route, filter (half), observer"
                               : "LOST VALUES";
  return row;
}

std::vector<Row> PythonGraphRows(bool quick) {
  std::vector<Row> rows;
  for (const std::vector<std::string>& f : PythonLines("graph_observe.py", quick)) {
    if (f.size() != 10) continue;
    Row r = GraphRow(f[0], f[1], "python");
    r.extra["placement"] = f[2];
    if (f[3] == "latency") {
      r.latency = true;
      r.n = std::stoull(f[4]);
      r.p50_ns = std::stod(f[5]);
      r.p99_ns = std::stod(f[6]);
      r.p999_ns = std::stod(f[7]);
    } else {
      const double rate = std::stod(f[8]);
      const uint64_t n = std::stoull(f[4]);
      SetThroughput(r, n, 8, static_cast<int64_t>(static_cast<double>(n) / rate * 1e9));
    }
    r.note = f[9];
    rows.push_back(r);
  }
  return rows;
}

}  // namespace

void RunGraphSuite(const Options& opt) {
  const int rounds = opt.quick ? 1 : 3;
  const int n = opt.quick ? 200'000 : 1'000'000;
  Results res;
  auto want = [&](const char* c) { return opt.only.empty() || opt.only == c; };
  for (int round = 0; round < rounds; ++round) {
    if (want("observe")) {
      res.Add(ObserveCpp(20'000, n));
      res.Add(ObserveCppFloor(20'000, n));
    }
    if (want("throughput")) res.Add(ThroughputCpp(opt.quick ? 1'000'000 : 10'000'000));
    if (want("observe") || want("throughput")) {
      for (const Row& r : PythonGraphRows(opt.quick)) {
        if (want(r.case_name.c_str())) res.Add(r);
      }
    }
  }
  Emit("graph", res.Medians(), opt);
}

}  // namespace weft::bench
