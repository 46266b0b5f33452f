// `weft bench graph`: the reactive graph. Cases `window` and `join` (C++ and, for window,
// Python beside RxPY) are described at their rows. Case `observe`: publish to an observer holding the
// typed value, per publish (p50/p99), in one process (placement memory), from C++ and Python;
// beside it the floor in each language (a plain list of callbacks, no envelope, no latest) and
// RxPY 3's Subject for Python. Case `throughput`: values per second through a capacitor and a
// filter into an observer; RxPY's Subject with a filter and a plain loop beside it. Placement
// shm: a publish here to an observer in another process, beside the topic alone; placement
// nats: a publish to an observer of another graph on its own connection through a nats-server
// on loopback, beside nats.c alone carrying the same bytes.
#include <nats/nats.h>

#include <atomic>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <thread>
#include <unistd.h>
#include <vector>

#include "bench_util.h"
#include "suites.h"
#include "weft/core/clock.h"
#include "weft/graph/flow.h"
#include "weft/graph/graph.h"
#include "weft/graph/placement.h"
#include "weft/graph/window.h"
#include "weft/graph/join.h"
#include "weft/shm/topic.h"
#include "support/servers.h"

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

// The same work by hand: values stored in a plain buffer of 1024, released per 1024 to a list
// of callbacks whose one filters and counts.
Row ThroughputCppFloor(uint64_t total) {
  constexpr size_t kBatch = 1024;
  total = total / kBatch * kBatch;
  std::vector<int64_t> stored;
  stored.reserve(kBatch);
  uint64_t kept = 0;
  std::vector<std::function<void(int64_t)>> observers{[&](int64_t v) {
    if ((v & 1) == 0) ++kept;
  }};
  const int64_t t0 = MonotonicNs();
  for (uint64_t start = 0; start < total; start += kBatch) {
    for (uint64_t i = start; i < start + kBatch; ++i) stored.push_back(static_cast<int64_t>(i));
    for (int64_t v : stored) {
      for (auto& o : observers) o(v);
    }
    stored.clear();
  }
  const int64_t elapsed = MonotonicNs() - t0;
  Row row = GraphRow("throughput", "floor", "cpp");
  SetThroughput(row, total, 8, elapsed);
  row.note = kept == total / 2 ? "a vector of 1024 filled, then given to a list of std::function (filter, count)" : "LOST VALUES";
  return row;
}

// Case `window`: events through an event-time tumbling window with a sum per partition, 1,000
// partitions, released by a watermark every 10,000 events; beside it the same arithmetic by
// hand (sums in an array indexed by partition, emitted when a window ends). The events are made
// before the clock starts, the same for both.
struct WindowEvents {
  std::vector<uint64_t> part;
  std::vector<int64_t> time;
  std::vector<double> value;
};

const WindowEvents& MakeWindowEvents(size_t n) {
  static WindowEvents e;
  if (e.part.size() == n) return e;
  e.part.resize(n);
  e.time.resize(n);
  e.value.resize(n);
  uint64_t x = 88172645463325252ull;
  for (size_t i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    e.part[i] = x % 1000;
    e.time[i] = static_cast<int64_t>(i) * 100 + static_cast<int64_t>(x >> 54);  // 100 ns apart, a little out of order
    e.value[i] = static_cast<double>(x & 1023);
  }
  return e;
}

constexpr int64_t kWindowWidth = 1'000'000;  // 1 ms of event time: 10,000 events, 10 per partition
constexpr size_t kWatermarkEvery = 10'000;
constexpr int64_t kWatermarkLag = 2'000;     // behind the newest event time (covers the disorder)

Row WindowCpp(size_t n) {
  const WindowEvents& e = MakeWindowEvents(n);
  double total = 0;
  uint64_t windows = 0;
  graph::TimeWindowOptions o;
  o.width_ns = kWindowWidth;
  o.min_max = false;  // a sum per partition is asked: counts and sums only, as the floor
  auto w = graph::TimeWindows::Create(o, [&](const graph::WindowResult& r) {
    total += r.sum;
    ++windows;
  }).value();
  const int64_t t0 = MonotonicNs();
  for (size_t i = 0; i < n; i += kWatermarkEvery) {  // columns of 10,000 events, then a watermark
    const size_t m = std::min(kWatermarkEvery, n - i);
    w->AddBatch({e.part.data() + i, m}, {e.time.data() + i, m}, {e.value.data() + i, m});
    w->Advance(e.time[i + m - 1] - kWatermarkLag).IgnoreError();
  }
  w->Flush();
  const int64_t elapsed = MonotonicNs() - t0;
  Row row = GraphRow("window", "weft", "cpp");
  SetThroughput(row, n, 8, elapsed);
  row.note = "TimeWindows::AddBatch per 10,000: tumbling 1 ms, sum per partition, 1,000 partitions, a watermark every 10,000 events (" +
             std::to_string(windows) + " windows)";
  (void)total;
  return row;
}

Row WindowCppFloor(size_t n) {
  const WindowEvents& e = MakeWindowEvents(n);
  // By hand: the open windows of each partition in a small ring by window number (the events
  // are at most two windows apart), emitted in order when the watermark passes their end.
  constexpr int kRing = 4;
  std::vector<double> sum(1000 * kRing, 0.0);
  std::vector<uint64_t> count(1000 * kRing, 0);
  double total = 0;
  uint64_t windows = 0;
  int64_t next_close = 0;  // the first window number not yet emitted
  auto close_to = [&](int64_t wm) {
    for (; (next_close + 1) * kWindowWidth <= wm; ++next_close) {
      const int slot = static_cast<int>(next_close % kRing);
      for (int p = 0; p < 1000; ++p) {
        const size_t k = static_cast<size_t>(p) * kRing + slot;
        if (count[k] == 0) continue;
        total += sum[k];
        ++windows;
        sum[k] = 0;
        count[k] = 0;
      }
    }
  };
  const int64_t t0 = MonotonicNs();
  for (size_t i = 0; i < n; ++i) {
    const int64_t win = e.time[i] / kWindowWidth;
    const size_t k = static_cast<size_t>(e.part[i]) * kRing + static_cast<size_t>(win % kRing);
    sum[k] += e.value[i];
    ++count[k];
    if ((i + 1) % kWatermarkEvery == 0) close_to(e.time[i] - kWatermarkLag);
  }
  close_to(e.time[n - 1] + 2 * kWindowWidth);  // the end of the stream
  const int64_t elapsed = MonotonicNs() - t0;
  Row row = GraphRow("window", "floor", "cpp");
  SetThroughput(row, n, 8, elapsed);
  row.note = "the same sums by hand: an array per partition and window slot (" + std::to_string(windows) + " windows)";
  (void)total;
  return row;
}

// Case `join`: values of two streams (alternating sides, 100 keys, 100 ns apart, a little out of
// order) through an event-time interval join of 20 us, a watermark every 10,000 values; beside
// it the same by hand (per key and side a deque of (time, id), the other side scanned from its
// newest, pruned by the same watermarks). Pairs are counted; both make the same number.
Row JoinCpp(size_t n, bool floor) {
  const WindowEvents& e = MakeWindowEvents(n);
  constexpr int64_t kWithin = 20'000;
  uint64_t pairs = 0;
  int64_t elapsed = 0;
  if (!floor) {
    auto j = graph::IntervalJoin::Create({.within_ns = kWithin}, [&](const graph::JoinPair&) { ++pairs; }).value();
    const int64_t t0 = MonotonicNs();
    for (size_t i = 0; i < n; ++i) {
      const uint64_t key = e.part[i] % 100;
      if (i & 1) {
        j->AddRight(key, e.time[i], i, e.value[i]);
      } else {
        j->AddLeft(key, e.time[i], i, e.value[i]);
      }
      if ((i + 1) % kWatermarkEvery == 0) j->Advance(e.time[i] - kWatermarkLag).IgnoreError();
    }
    elapsed = MonotonicNs() - t0;
  } else {
    struct Side {
      std::deque<std::pair<int64_t, uint64_t>> v;  // by time
    };
    std::vector<Side> sides(200);
    int64_t wm = INT64_MIN;
    const int64_t t0 = MonotonicNs();
    for (size_t i = 0; i < n; ++i) {
      const uint64_t key = e.part[i] % 100;
      const int s = static_cast<int>(i & 1);
      const int64_t t = e.time[i];
      if (t < wm) continue;  // late, as the join drops them
      Side& other = sides[key * 2 + (1 - s)];
      for (auto it = other.v.rbegin(); it != other.v.rend() && it->first >= t - kWithin; ++it) {
        if (it->first <= t + kWithin) ++pairs;
      }
      Side& mine = sides[key * 2 + s];
      auto at = mine.v.end();
      while (at != mine.v.begin() && std::prev(at)->first > t) --at;
      mine.v.insert(at, {t, i});
      if ((i + 1) % kWatermarkEvery == 0) {
        wm = e.time[i] - kWatermarkLag;
        for (Side& sd : sides) {
          while (!sd.v.empty() && sd.v.front().first < wm - kWithin) sd.v.pop_front();
        }
      }
    }
    elapsed = MonotonicNs() - t0;
  }
  Row row = GraphRow("join", floor ? "floor" : "weft", "cpp");
  SetThroughput(row, n, 8, elapsed);
  row.note = (floor ? std::string("by hand: deques per key and side") : std::string("IntervalJoin: 20 us, 100 keys")) +
             ", a watermark every 10,000 values (" + std::to_string(pairs) + " pairs)";
  return row;
}

struct ShmCtl {
  alignas(64) std::atomic<uint64_t> ready;
  alignas(64) std::atomic<uint64_t> taken;
};

// One way from a publish in this process to the observer holding the value in another: over a
// route placed on shm (`graph` true), or as the topic's own sample of the same bytes (a graph
// record's 96) taken by a plain subscriber (the floor it rides on). One value at a time.
Row ObserveShm(bool graph_route, int warm, int n) {
  const std::string topic = "bench.graph." + std::to_string(::getpid()) + (graph_route ? ".g" : ".t");
  const size_t total = static_cast<size_t>(warm + n);
  auto* ctl = static_cast<ShmCtl*>(SharedAlloc(sizeof(ShmCtl)));
  auto* lat = static_cast<int64_t*>(SharedAlloc(total * sizeof(int64_t)));
  const pid_t child = Fork([&]() -> int {
    if (graph_route) {
      auto g = graph::Graph::Create();
      graph::Route r = g->Declare(Name("shm"), graph::Schema::Pod<int64_t>("stamp.v1")).value();
      auto place = graph::ShmPlacement::Create(r, {.topic = topic}).value();
      graph::Subscription s = r.Observe([&](const graph::SampleRef& v) {
        const uint64_t i = ctl->taken.load();
        lat[i] = NowNs() - v->as<int64_t>();
        ctl->taken.store(i + 1);
      });
      ctl->ready.store(1);
      while (ctl->taken.load() < total) ::usleep(50'000);
      return 0;
    }
    auto sub = shm::Subscriber::Open(topic).value();
    ctl->ready.store(1);
    for (size_t i = 0; i < total; ++i) {
      auto smp = sub->Take(Deadline::Never()).value();
      uint8_t copy[96];  // the sample as a consumer takes it: all of it, as the graph reads its record
      std::memcpy(copy, smp.data.data(), sizeof(copy));
      int64_t stamp;
      std::memcpy(&stamp, copy + 88, 8);
      lat[i] = NowNs() - stamp;
      sub->Release(smp).IgnoreError();
      ctl->taken.store(i + 1);
    }
    return 0;
  });
  WaitAtLeast(ctl->ready, 1);
  std::vector<int64_t> samples;
  if (graph_route) {
    auto g = graph::Graph::Create();
    graph::Route r = g->Declare(Name("shm"), graph::Schema::Pod<int64_t>("stamp.v1")).value();
    auto place = graph::ShmPlacement::Create(r, {.topic = topic}).value();
    for (size_t i = 0; i < total; ++i) {
      r.Publish(static_cast<int64_t>(NowNs())).IgnoreError();
      WaitAtLeast(ctl->taken, i + 1);
    }
    place->Close();
  } else {
    auto pub = shm::Publisher::Open(topic).value();
    for (size_t i = 0; i < total; ++i) {
      auto loan = pub->Loan(96).value();
      std::memset(loan.data.data(), 0, 88);
      const int64_t stamp = NowNs();
      std::memcpy(loan.data.data() + 88, &stamp, 8);
      pub->Publish(loan, 96, Deadline::Never()).IgnoreError();
      WaitAtLeast(ctl->taken, i + 1);
    }
  }
  Join(child);
  for (size_t i = static_cast<size_t>(warm); i < total; ++i) samples.push_back(lat[i]);
  SharedFree(lat, total * sizeof(int64_t));
  SharedFree(ctl, sizeof(ShmCtl));
  shm::UnlinkTopic(topic).IgnoreError();
  Row row = GraphRow("observe", graph_route ? "weft" : "topic", "cpp");
  row.extra["placement"] = "shm";
  SetLatency(row, samples);
  row.note = graph_route ? "Route::Publish here to an observer of the route placed on shm in another process"
                         : "the topic alone: a 96-byte sample (a graph record's size) to a subscriber in another process that copies it out";
  return row;
}

// One way from a publish to an observer across a nats-server on loopback: a route placed on
// NATS in two graphs, each on its own connection (`graph` true), or nats.c alone carrying a
// graph record's 96 bytes from one connection to a subscription's thread on another, both
// with send-asap (the floor it rides on). One value at a time.
Row ObserveNats(bool graph_route, int port, int warm, int n) {
  const size_t total = static_cast<size_t>(warm + n);
  std::vector<int64_t> lat(total);
  std::atomic<uint64_t> taken{0};
  const std::string url = "nats://127.0.0.1:" + std::to_string(port);
  // Yields while waiting: on two cores a spinning publisher would take the CPU the server and
  // the receiving threads need.
  auto wait_taken = [&](uint64_t want) {
    while (taken.load(std::memory_order_acquire) < want) std::this_thread::yield();
  };
  if (graph_route) {
    auto ga = graph::Graph::Create();
    auto gb = graph::Graph::Create();
    graph::Route a = ga->Declare(Name("nats"), graph::Schema::Pod<int64_t>("stamp.v1")).value();
    graph::Route b = gb->Declare(Name("nats"), graph::Schema::Pod<int64_t>("stamp.v1")).value();
    auto pa = graph::NatsPlacement::Create(a, url + "/bench").value();
    auto pb = graph::NatsPlacement::Create(b, url + "/bench").value();
    graph::Subscription s = b.Observe([&](const graph::SampleRef& v) {
      const uint64_t i = taken.load(std::memory_order_relaxed);
      lat[i] = NowNs() - v->as<int64_t>();
      taken.store(i + 1, std::memory_order_release);
    });
    for (size_t i = 0; i < total; ++i) {
      a.Publish(static_cast<int64_t>(NowNs())).IgnoreError();
      wait_taken(i + 1);
    }
    pa->Close();
    pb->Close();
  } else {
    natsOptions* o = nullptr;
    natsOptions_Create(&o);
    natsOptions_SetURL(o, url.c_str());
    natsOptions_SetSendAsap(o, true);
    natsConnection *tx = nullptr, *rx = nullptr;
    natsConnection_Connect(&tx, o);
    natsConnection_Connect(&rx, o);
    natsOptions_Destroy(o);
    natsSubscription* sub = nullptr;
    natsConnection_SubscribeSync(&sub, rx, "bench.floor");
    natsConnection_Flush(rx);
    std::thread receiver([&] {
      for (size_t i = 0; i < total; ++i) {
        natsMsg* m = nullptr;
        if (natsSubscription_NextMsg(&m, sub, 10'000) != NATS_OK) return;
        int64_t stamp;
        std::memcpy(&stamp, natsMsg_GetData(m) + 88, 8);
        lat[i] = NowNs() - stamp;
        natsMsg_Destroy(m);
        taken.store(i + 1, std::memory_order_release);
      }
    });
    char msg[96] = {};
    for (size_t i = 0; i < total; ++i) {
      const int64_t stamp = NowNs();
      std::memcpy(msg + 88, &stamp, 8);
      natsConnection_Publish(tx, "bench.floor", msg, sizeof(msg));
      wait_taken(i + 1);
    }
    receiver.join();
    natsSubscription_Destroy(sub);
    natsConnection_Destroy(tx);
    natsConnection_Destroy(rx);
  }
  std::vector<int64_t> samples(lat.begin() + warm, lat.end());
  Row row = GraphRow("observe", graph_route ? "weft" : "nats", "cpp");
  row.extra["placement"] = "nats";
  SetLatency(row, samples);
  row.note = graph_route ? "Route::Publish here to an observer of the route placed on NATS in another graph, through nats-server on loopback"
                         : "nats.c alone: 96 bytes (a graph record's size) from one connection to a subscription on another";
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
  std::unique_ptr<testing::NatsServer> nats;
  if (want("observe")) nats = std::make_unique<testing::NatsServer>();
  for (int round = 0; round < rounds; ++round) {
    if (want("observe")) {
      res.Add(ObserveCpp(20'000, n));
      res.Add(ObserveCppFloor(20'000, n));
      res.Add(ObserveShm(true, 2'000, opt.quick ? 20'000 : 100'000));
      res.Add(ObserveShm(false, 2'000, opt.quick ? 20'000 : 100'000));
      if (nats->up()) {
        res.Add(ObserveNats(true, nats->port(), 1'000, opt.quick ? 5'000 : 20'000));
        res.Add(ObserveNats(false, nats->port(), 1'000, opt.quick ? 5'000 : 20'000));
      }
    }
    if (want("throughput")) {
      res.Add(ThroughputCpp(opt.quick ? 1'000'000 : 10'000'000));
      res.Add(ThroughputCppFloor(opt.quick ? 1'000'000 : 10'000'000));
    }
    if (want("join")) {
      res.Add(JoinCpp(opt.quick ? 2'000'000 : 10'000'000, false));
      res.Add(JoinCpp(opt.quick ? 2'000'000 : 10'000'000, true));
    }
    if (want("window")) {
      res.Add(WindowCpp(opt.quick ? 2'000'000 : 20'000'000));
      res.Add(WindowCppFloor(opt.quick ? 2'000'000 : 20'000'000));
    }
    if (want("observe") || want("throughput") || want("window") || want("join")) {
      for (const Row& r : PythonGraphRows(opt.quick)) {
        if (want(r.case_name.c_str())) res.Add(r);
      }
    }
  }
  Emit("graph", res.Medians(), opt);
}

}  // namespace weft::bench
