// `weft bench topic`: one-to-many publish/subscribe. Cases (BENCHMARKS.md):
//   oneway  from loan until a subscriber in another process holds the sample (64 B), beside
//           ZeroMQ PUB/SUB over ipc, a Unix socket, and the floor (one cache line / one wake);
//   fanout  the publisher-side cost of one publish, 64 B and 64 MB, 1, 2 and 4 subscribers.
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include <atomic>
#include <cstring>
#include <string>
#include <vector>

#include "bench_util.h"
#include "links.h"
#include "suites.h"
#include "weft/core/clock.h"
#include "weft/shm/topic.h"

namespace weft::bench {
namespace {

struct Ctl {
  alignas(64) std::atomic<uint64_t> ready;
  alignas(64) std::atomic<uint64_t> done;
  alignas(64) std::atomic<int64_t> t0;
  int64_t samples[1];
};

Ctl* NewCtl(size_t samples) {
  return static_cast<Ctl*>(SharedAlloc(sizeof(Ctl) + samples * sizeof(int64_t)));
}

std::string TopicName() {
  static int n = 0;
  return "bench.topic." + std::to_string(::getpid()) + "." + std::to_string(n++);
}

void Cleanup(const std::string& name) {
  shm::Segment::Unlink(name).IgnoreError();
  shm::Pool::Unlink(name + ".pool").IgnoreError();
}

Row MakeRow(const char* c, const std::string& transport, uint64_t size, const std::string& mode, int subs) {
  Row r = NewRow("topic", c, transport, size, mode);
  r.extra["subscribers"] = std::to_string(subs);
  return r;
}

shm::TopicOptions Opts() {
  shm::TopicOptions o;
  o.queue_depth = 64;
  o.pool.bytes = 8 << 20;
  o.pool.max_block = size_t{1} << 30;
  return o;
}

Row OnewayWeft(const std::string& mode, int warm, int n) {
  const std::string name = TopicName();
  auto pub = shm::Publisher::Open(name, Opts()).value();
  Ctl* c = NewCtl(warm + n);
  pid_t child = Fork([&] {
    auto sub = shm::Subscriber::Open(name, {.spin_ns = mode == "spin" ? -1 : 0}).value();
    c->ready.store(1);
    for (int i = 0; i < warm + n; ++i) {
      auto s = sub->Take(Deadline::AfterMs(10'000));
      if (!s.ok()) return 1;
      c->samples[i] = MonotonicNs() - c->t0.load(std::memory_order_acquire);
      sub->Release(*s).IgnoreError();
      c->done.store(i + 1, std::memory_order_release);
    }
    return 0;
  });
  WaitAtLeast(c->ready, 1);
  for (int i = 0; i < warm + n; ++i) {
    WaitAtLeast(c->done, i);
    if (mode == "parked") SpinFor(50'000);
    c->t0.store(MonotonicNs(), std::memory_order_release);
    auto s = pub->Loan(64);
    if (!s.ok()) break;
    std::memset(s->data.data(), i & 0xFF, 64);
    pub->Publish(*s, 64, Deadline::AfterMs(10'000)).IgnoreError();
  }
  Join(child);
  pub.reset();
  Cleanup(name);
  std::vector<int64_t> samples(c->samples + warm, c->samples + warm + n);
  SharedFree(c, sizeof(Ctl) + (warm + n) * sizeof(int64_t));
  Row r = MakeRow("oneway", "weft", 64, mode, 1);
  SetLatency(r, samples);
  return r;
}

// ZeroMQ PUB/SUB over ipc, one subscriber in another process.
Row OnewayZmq(const std::string& mode, int warm, int n) {
  const std::string endpoint = "ipc:///tmp/weft-bench-topic-" + std::to_string(::getpid()) + ".ipc";
  Ctl* c = NewCtl(warm + n);
  pid_t child = Fork([&] {
    void* ctx = zmq_ctx_new();
    void* sub = zmq_socket(ctx, ZMQ_SUB);
    zmq_setsockopt(sub, ZMQ_SUBSCRIBE, "", 0);
    zmq_connect(sub, endpoint.c_str());
    char buf[64];
    // Slow-joiner handshake: wait until a probe gets through.
    while (zmq_recv(sub, buf, sizeof(buf), 0) != 1) {
    }
    c->ready.store(1);
    for (int i = 0; i < warm + n; ++i) {
      int r;
      do {
        r = zmq_recv(sub, buf, sizeof(buf), mode == "spin" ? ZMQ_DONTWAIT : 0);
      } while ((r < 0 && (zmq_errno() == EAGAIN || zmq_errno() == EINTR)) || r == 1);  // r == 1: a late probe
      if (r != 64) break;
      c->samples[i] = MonotonicNs() - c->t0.load(std::memory_order_acquire);
      c->done.store(i + 1, std::memory_order_release);
    }
    zmq_close(sub);
    zmq_ctx_term(ctx);
    return 0;
  });
  void* ctx = zmq_ctx_new();
  void* pub = zmq_socket(ctx, ZMQ_PUB);
  zmq_bind(pub, endpoint.c_str());
  while (c->ready.load() == 0) {
    zmq_send(pub, "p", 1, 0);
    SpinFor(1'000'000);
  }
  char msg[64];
  for (int i = 0; i < warm + n; ++i) {
    WaitAtLeast(c->done, i);
    if (mode == "parked") SpinFor(50'000);
    c->t0.store(MonotonicNs(), std::memory_order_release);
    std::memset(msg, i & 0xFF, sizeof(msg));
    zmq_send(pub, msg, sizeof(msg), 0);
  }
  Join(child);
  int linger = 0;
  zmq_setsockopt(pub, ZMQ_LINGER, &linger, sizeof(linger));
  zmq_close(pub);
  zmq_ctx_term(ctx);
  ::unlink(endpoint.substr(6).c_str());
  std::vector<int64_t> samples(c->samples + warm, c->samples + warm + n);
  SharedFree(c, sizeof(Ctl) + (warm + n) * sizeof(int64_t));
  Row r = MakeRow("oneway", "zmq", 64, mode, 1);
  r.note = "PUB/SUB over ipc";
  SetLatency(r, samples);
  return r;
}

// Publisher-side cost of Publish with `subs` subscribers in other processes that take,
// touch every byte, and release each sample before the next is published. Before each
// publish the subscribers are given time to fall asleep, so that every publish, small or
// large, pays the same wake-ups.

Row FanoutWeft(size_t size, int subs, int warm, int n) {
  const std::string name = TopicName();
  auto pub = shm::Publisher::Open(name, Opts()).value();
  Ctl* c = NewCtl(0);
  std::vector<pid_t> kids;
  for (int k = 0; k < subs; ++k) {
    kids.push_back(Fork([&] {
      // Below the publisher's priority: with more subscribers than cores, a woken subscriber
      // summing 64 MB would otherwise take the publisher's core in the middle of Publish, and
      // the row would measure the scheduler rather than the publish.
      if (::nice(10) == -1) return 3;
      auto sub = shm::Subscriber::Open(name, {.spin_ns = 0}).value();
      c->ready.fetch_add(1);
      uint64_t sum = 0;
      for (int i = 0; i < warm + n; ++i) {
        auto s = sub->Take(Deadline::AfterMs(30'000));
        if (!s.ok()) return 1;
        sum += TouchSum(s->data.data(), s->data.size());
        sub->Release(*s).IgnoreError();
        c->done.fetch_add(1, std::memory_order_acq_rel);
      }
      return sum == 1 ? 2 : 0;
    }));
  }
  WaitAtLeast(c->ready, subs);
  std::vector<int64_t> samples;
  for (int i = 0; i < warm + n; ++i) {
    WaitAtLeast(c->done, static_cast<uint64_t>(i) * subs);
    auto s = pub->Loan(size);
    if (!s.ok()) break;
    std::memset(s->data.data(), i & 0xFF, size);
    SpinFor(200'000);
    const int64_t t0 = MonotonicNs();
    pub->Publish(*s, size, Deadline::AfterMs(30'000)).IgnoreError();
    if (i >= warm) samples.push_back(MonotonicNs() - t0);
  }
  for (pid_t k : kids) Join(k);
  pub.reset();
  Cleanup(name);
  SharedFree(c, sizeof(Ctl));
  Row r = MakeRow("fanout", "weft", size, "", subs);
  r.note = "subscribers asleep at each publish, at nice 10";
  SetLatency(r, samples);
  return r;
}

}  // namespace

void RunTopicSuite(const Options& opt) {
  const int rounds = opt.quick ? 2 : 5;
  Results res;
  for (int round = 0; round < rounds; ++round) {
    for (const std::string mode : {"spin", "parked"}) {
      res.Add(OnewayWeft(mode, 1000, 10'000));
      res.Add(OnewayZmq(mode, 1000, 10'000));
      Row uds = OneWayLink("topic", "oneway", "uds", 64, mode, 1000, 10'000, false);
      uds.extra["subscribers"] = "1";
      uds.note = "one socket per subscriber, copying";
      res.Add(uds);
      Row floor = OneWayFloor("topic", "oneway", 64, mode, 1000, 10'000);
      floor.extra["subscribers"] = "1";
      res.Add(floor);
    }
    for (int subs : {1, 2, 4}) {
      res.Add(FanoutWeft(64, subs, 100, opt.quick ? 1000 : 10'000));
      res.Add(FanoutWeft(64 << 20, subs, 2, opt.quick ? 20 : 50));
    }
  }
  std::vector<Row> rows = res.Medians();
  for (Row& r : rows) {
    if (r.payload_bytes == (64u << 20)) r.note += (r.note.empty() ? "" : "; ") + std::string("fewer samples: each takes milliseconds");
  }
  Emit("topic", rows, opt);
}

}  // namespace weft::bench
