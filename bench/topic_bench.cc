// `weft bench topic`: one-to-many publish/subscribe. Cases (docs/benchmarks.md):
//   oneway  from loan until a subscriber in another process holds the sample (64 B), beside
//           ZeroMQ PUB/SUB over ipc, a Unix socket, and the floor (one cache line / one wake);
//   fanout  the publisher-side cost of one publish, 64 B and 64 MB, 1, 2 and 4 subscribers;
//   stream  throughput of write, publish, take, touch every byte, release, 64 B to 64 MB with 1,
//           2 and 4 subscribers, beside ZeroMQ XPUB/SUB over ipc, one Unix socket per
//           subscriber, and the floor (slots in shared memory, counters, no library).
#include <sched.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include <algorithm>
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

// `pollute`: bytes the publisher writes elsewhere before each publish (a control: the same cache
// state as writing a sample that large, with a small sample).
Row FanoutWeft(size_t size, int subs, int warm, int n, size_t pollute = 0) {
  std::vector<uint8_t> scratch(pollute);
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
    if (pollute != 0) std::memset(scratch.data(), i & 0xFF, pollute);
    SpinFor(200'000);
    const int64_t t0 = MonotonicNs();
    pub->Publish(*s, size, Deadline::AfterMs(30'000)).IgnoreError();
    if (i >= warm) samples.push_back(MonotonicNs() - t0);
  }
  for (pid_t k : kids) Join(k);
  pub.reset();
  Cleanup(name);
  SharedFree(c, sizeof(Ctl));
  Row r = MakeRow("fanout", "weft", size, pollute != 0 ? "control" : "", subs);
  r.note = pollute != 0 ? "after writing 64 MB elsewhere" : "subscribers asleep at each publish, at nice 10";
  SetLatency(r, samples);
  return r;
}

// ---- stream: throughput with every byte written once and read by every subscriber ----------

// Messages per stream row: about the same time per size.
uint64_t StreamCount(size_t size, bool quick) {
  uint64_t n = size <= 64 ? 100'000 : size <= 4096 ? 50'000 : size <= (1 << 20) ? 500 : 12;
  return quick ? std::max<uint64_t>(n / 4, 4) : n;
}

// Queue depth for a sample size: at most ~256 MiB in flight.
uint32_t StreamDepth(size_t size) {
  uint32_t d = 64;
  while (d > 2 && uint64_t{d} * size > (uint64_t{256} << 20)) d /= 2;
  return d;
}

// Waits (yielding: five processes share two cores) until v >= target.
void YieldUntil(const std::atomic<uint64_t>& v, uint64_t target) {
  for (int spins = 0; v.load(std::memory_order_acquire) < target; ++spins) {
    if (spins > 64) ::sched_yield();
  }
}

struct StreamCtl {
  alignas(64) std::atomic<uint64_t> ready;
  alignas(64) std::atomic<uint64_t> published;  // floor only
  alignas(64) std::atomic<int64_t> end;         // last subscriber's finish time
  alignas(64) std::atomic<uint64_t> done[8];    // per subscriber: messages consumed
  alignas(64) std::atomic<uint64_t> bad;
};

// Messages sent before the clock starts: every block, buffer and mapping is made and faulted in.
uint64_t StreamWarm(size_t size) { return StreamDepth(size) + 4; }

// The publisher's barrier after the warm-up: every subscriber has consumed `warm` messages.
int64_t StartClock(StreamCtl* c, int subs, uint64_t warm) {
  for (int k = 0; k < subs; ++k) YieldUntil(c->done[k], warm);
  return MonotonicNs();
}

Row StreamRow(const std::string& transport, size_t size, int subs, uint64_t n, int64_t t0, StreamCtl* c) {
  Row r = MakeRow("stream", transport, size, "", subs);
  SetThroughput(r, n, size, c->end.load() - t0);
  if (c->bad.load() != 0) r.note = "FAILED: a subscriber saw a wrong byte or an error";
  return r;
}

// Records the finish time of the last subscriber to finish.
void Finished(StreamCtl* c) {
  const int64_t now = MonotonicNs();
  int64_t prev = c->end.load();
  while (prev < now && !c->end.compare_exchange_weak(prev, now)) {
  }
}

// A subscriber's check that it saw message i: the first and last byte carry i.
void Check(StreamCtl* c, const uint8_t* p, size_t size, uint64_t i) {
  if (p[0] != static_cast<uint8_t>(i) || p[size - 1] != static_cast<uint8_t>(i)) c->bad.fetch_add(1);
}

// A subscriber's loop, the same for every transport: `next(i)` gives message i's bytes (nullptr
// on failure), `release()` lets them go.
template <typename Next, typename Release>
int Consume(StreamCtl* c, int k, size_t size, uint64_t count, Next next, Release release) {
  uint64_t sum = 0;
  for (uint64_t i = 0; i < count; ++i) {
    const uint8_t* p = next(i);
    if (p == nullptr) {
      c->bad.fetch_add(1);
      return 1;
    }
    Check(c, p, size, i);
    sum += TouchSum(p, size);
    release();
    c->done[k].store(i + 1, std::memory_order_release);
  }
  Finished(c);
  return sum == 1 ? 2 : 0;
}

Row StreamWeft(size_t size, int subs, uint64_t n) {
  const uint64_t warm = StreamWarm(size);
  const std::string name = TopicName();
  shm::TopicOptions o = Opts();
  o.queue_depth = StreamDepth(size);
  auto pub = shm::Publisher::Open(name, o).value();
  auto* c = static_cast<StreamCtl*>(SharedAlloc(sizeof(StreamCtl)));
  std::vector<pid_t> kids;
  for (int k = 0; k < subs; ++k) {
    kids.push_back(Fork([&, k] {
      auto sub = shm::Subscriber::Open(name, {}).value();
      c->ready.fetch_add(1);
      shm::Sample held;
      return Consume(
          c, k, size, warm + n,
          [&](uint64_t) -> const uint8_t* {
            auto s = sub->Take(Deadline::AfterMs(30'000));
            if (!s.ok()) return nullptr;
            held = *s;
            return held.data.data();
          },
          [&] { sub->Release(held).IgnoreError(); });
    }));
  }
  YieldUntil(c->ready, subs);
  int64_t t0 = 0;
  for (uint64_t i = 0; i < warm + n; ++i) {
    if (i == warm) t0 = StartClock(c, subs, warm);
    auto s = pub->Loan(size);
    while (!s.ok() && s.status().code() == Code::kWouldBlock) {  // every block in flight
      ::sched_yield();
      s = pub->Loan(size);
    }
    if (!s.ok()) break;
    std::memset(s->data.data(), static_cast<int>(i & 0xFF), size);
    if (!pub->Publish(*s, size, Deadline::AfterMs(30'000)).ok()) break;
  }
  for (pid_t k : kids) Join(k);
  Row r = StreamRow("weft", size, subs, n, t0, c);
  pub.reset();
  Cleanup(name);
  SharedFree(c, sizeof(StreamCtl));
  return r;
}

// One Unix stream socket per subscriber: the publisher writes the bytes once and sends them to
// each socket (one kernel copy in, one out, per subscriber).
Row StreamUds(size_t size, int subs, uint64_t n) {
  const uint64_t warm = StreamWarm(size);
  auto* c = static_cast<StreamCtl*>(SharedAlloc(sizeof(StreamCtl)));
  std::vector<LinkPair> pairs;
  for (int k = 0; k < subs; ++k) pairs.push_back(MakeLinkPair("uds", false));
  std::vector<pid_t> kids;
  for (int k = 0; k < subs; ++k) {
    kids.push_back(Fork([&, k] {
      auto link = pairs[k].child();
      std::vector<uint8_t> buf(size);
      c->ready.fetch_add(1);
      return Consume(
          c, k, size, warm + n,
          [&](uint64_t) -> const uint8_t* { return link->Recv(buf.data(), size) ? buf.data() : nullptr; }, [] {});
    }));
  }
  std::vector<std::unique_ptr<Link>> links;
  for (auto& p : pairs) links.push_back(p.parent());
  std::vector<uint8_t> buf(size);
  YieldUntil(c->ready, subs);
  int64_t t0 = 0;
  for (uint64_t i = 0; i < warm + n; ++i) {
    if (i == warm) t0 = StartClock(c, subs, warm);
    std::memset(buf.data(), static_cast<int>(i & 0xFF), size);
    for (auto& l : links) l->Send(buf.data(), size);
  }
  for (pid_t k : kids) Join(k);
  Row r = StreamRow("uds", size, subs, n, t0, c);
  r.note = "one socket per subscriber, copying";
  links.clear();
  for (auto& p : pairs) p.cleanup();
  SharedFree(c, sizeof(StreamCtl));
  return r;
}

// ZeroMQ XPUB (no-drop: a full subscriber pipe makes the publisher wait) to SUB over ipc.
Row StreamZmq(size_t size, int subs, uint64_t n) {
  const uint64_t warm = StreamWarm(size);
  const std::string endpoint = "ipc:///tmp/weft-bench-topic-" + std::to_string(::getpid()) + ".ipc";
  auto* c = static_cast<StreamCtl*>(SharedAlloc(sizeof(StreamCtl)));
  const int hwm = static_cast<int>(StreamDepth(size));
  void* ctx = zmq_ctx_new();
  void* pub = zmq_socket(ctx, ZMQ_XPUB);
  int one = 1;
  zmq_setsockopt(pub, ZMQ_XPUB_NODROP, &one, sizeof(one));
  zmq_setsockopt(pub, ZMQ_XPUB_VERBOSE, &one, sizeof(one));  // every subscription, not just the first
  zmq_setsockopt(pub, ZMQ_SNDHWM, &hwm, sizeof(hwm));
  zmq_bind(pub, endpoint.c_str());
  std::vector<pid_t> kids;
  for (int k = 0; k < subs; ++k) {
    kids.push_back(Fork([&, k] {
      void* cctx = zmq_ctx_new();
      void* sub = zmq_socket(cctx, ZMQ_SUB);
      zmq_setsockopt(sub, ZMQ_RCVHWM, &hwm, sizeof(hwm));
      zmq_setsockopt(sub, ZMQ_SUBSCRIBE, "", 0);
      zmq_connect(sub, endpoint.c_str());
      zmq_msg_t msg;
      zmq_msg_init(&msg);
      const int rc = Consume(
          c, k, size, warm + n,
          [&](uint64_t) -> const uint8_t* {
            if (zmq_msg_recv(&msg, sub, 0) != static_cast<int>(size)) return nullptr;
            return static_cast<const uint8_t*>(zmq_msg_data(&msg));
          },
          [] {});
      zmq_msg_close(&msg);
      zmq_close(sub);
      zmq_ctx_term(cctx);
      return rc;
    }));
  }
  // Every subscription arrives as a message on the XPUB socket: then all are connected.
  char sbuf[16];
  for (int k = 0; k < subs; ++k) zmq_recv(pub, sbuf, sizeof(sbuf), 0);
  int64_t t0 = 0;
  for (uint64_t i = 0; i < warm + n; ++i) {
    if (i == warm) t0 = StartClock(c, subs, warm);
    zmq_msg_t msg;
    zmq_msg_init_size(&msg, size);
    std::memset(zmq_msg_data(&msg), static_cast<int>(i & 0xFF), size);
    while (zmq_msg_send(&msg, pub, 0) < 0 && (zmq_errno() == EAGAIN || zmq_errno() == EINTR)) ::sched_yield();
  }
  for (pid_t k : kids) Join(k);
  Row r = StreamRow("zmq", size, subs, n, t0, c);
  r.note = "XPUB/SUB over ipc, no drops";
  int linger = 0;
  zmq_setsockopt(pub, ZMQ_LINGER, &linger, sizeof(linger));
  zmq_close(pub);
  zmq_ctx_term(ctx);
  ::unlink(endpoint.substr(6).c_str());
  SharedFree(c, sizeof(StreamCtl));
  return r;
}

// The floor: a ring of slots in shared memory and counters, nothing else. The publisher writes
// a slot once every subscriber is done with it; subscribers read it in place.
Row StreamFloor(size_t size, int subs, uint64_t n) {
  const uint64_t warm = StreamWarm(size);
  const uint64_t slots = StreamDepth(size);
  auto* c = static_cast<StreamCtl*>(SharedAlloc(sizeof(StreamCtl)));
  auto* data = static_cast<uint8_t*>(SharedAlloc(slots * size));
  std::vector<pid_t> kids;
  for (int k = 0; k < subs; ++k) {
    kids.push_back(Fork([&, k] {
      c->ready.fetch_add(1);
      return Consume(
          c, k, size, warm + n,
          [&](uint64_t i) -> const uint8_t* {
            YieldUntil(c->published, i + 1);
            return data + (i % slots) * size;
          },
          [] {});
    }));
  }
  YieldUntil(c->ready, subs);
  int64_t t0 = 0;
  for (uint64_t i = 0; i < warm + n; ++i) {
    if (i == warm) t0 = StartClock(c, subs, warm);
    if (i >= slots) {
      for (int k = 0; k < subs; ++k) YieldUntil(c->done[k], i - slots + 1);
    }
    std::memset(data + (i % slots) * size, static_cast<int>(i & 0xFF), size);
    c->published.store(i + 1, std::memory_order_release);
  }
  for (pid_t k : kids) Join(k);
  Row r = StreamRow("floor", size, subs, n, t0, c);
  r.note = "slots and counters in shared memory";
  SharedFree(data, slots * size);
  SharedFree(c, sizeof(StreamCtl));
  return r;
}

}  // namespace

void RunTopicSuite(const Options& opt) {
  const int rounds = opt.quick ? 2 : 5;
  Results res;
  auto want = [&](const char* c) { return opt.only.empty() || opt.only == c; };
  for (int round = 0; round < rounds; ++round) {
    for (const std::string mode : {"spin", "parked"}) {
      if (!want("oneway")) break;
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
      if (!want("fanout")) break;
      res.Add(FanoutWeft(64, subs, 100, opt.quick ? 1000 : 10'000));
      res.Add(FanoutWeft(64 << 20, subs, 2, opt.quick ? 20 : 50));
      res.Add(FanoutWeft(64, subs, 2, opt.quick ? 20 : 50, 64 << 20));
    }
    for (size_t size : {size_t{64}, size_t{4096}, size_t{1} << 20, size_t{64} << 20}) {
      if (!want("stream")) break;
      const uint64_t n = StreamCount(size, opt.quick);
      for (int subs : {1, 2, 4}) {
        res.Add(StreamWeft(size, subs, n));
        res.Add(StreamZmq(size, subs, n));
        res.Add(StreamUds(size, subs, n));
        res.Add(StreamFloor(size, subs, n));
      }
    }
  }
  std::vector<Row> rows = res.Medians();
  for (Row& r : rows) {
    if (r.payload_bytes == (64u << 20)) r.note += (r.note.empty() ? "" : "; ") + std::string("fewer samples: each takes milliseconds");
  }
  Emit("topic", rows, opt);
}

}  // namespace weft::bench
