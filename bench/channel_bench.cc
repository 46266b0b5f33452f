// `weft bench channel`: the shared-memory channel beside Unix sockets, pipes, TCP loopback and
// ZeroMQ, with the physical floors measured in the same run. Cases (docs/benchmarks.md):
//   pingpong  round trip of one message, 64 B to 64 KB
//   stream    throughput; the consumer sums every byte
//   blob      50 MB from commit until the consumer has summed every byte
//   notify    commit until the consumer holds the record (no data touched)
// Every measurement runs the peer in a forked child process. Rounds interleave the transports
// and the floor; the table reports the median over rounds.
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "bench_util.h"
#include "links.h"
#include "suites.h"
#include "weft/core/clock.h"
#include "weft/shm/channel.h"

namespace weft::bench {
namespace {

using shm::Channel;
using shm::Role;
using shm::WaitPolicy;

constexpr uint64_t kBlob = 50ull << 20;

struct Ctl {  // shared control block between parent and child
  alignas(64) std::atomic<uint64_t> ready;
  alignas(64) std::atomic<uint64_t> done;
  alignas(64) std::atomic<int64_t> t0;
  alignas(64) std::atomic<int64_t> t_end;
  alignas(64) std::atomic<uint64_t> sum;
  alignas(64) std::atomic<uint32_t> ping;
  alignas(64) std::atomic<uint32_t> pong;
  int64_t samples[1];  // flexible
};

struct SharedCtl {
  Ctl* c;
  size_t bytes;
  explicit SharedCtl(size_t samples) : bytes(sizeof(Ctl) + samples * sizeof(int64_t)) {
    c = static_cast<Ctl*>(SharedAlloc(bytes));
  }
  ~SharedCtl() { SharedFree(c, bytes); }
};

WaitPolicy Policy(const std::string& mode) {
  WaitPolicy w;
  w.adaptive = false;
  w.spin_ns = mode == "spin" ? WaitPolicy::kSpinForever : 0;
  return w;
}

std::string ChannelName() {
  static int n = 0;
  return "bench." + std::to_string(::getpid()) + "." + std::to_string(n++);
}

std::unique_ptr<Channel> MustCreate(const std::string& name, size_t capacity, Role role,
                                    const std::string& mode) {
  shm::ChannelOptions o;
  o.capacity = capacity;
  o.role = role;
  o.wait = Policy(mode);
  auto r = Channel::Create(name, o);
  if (!r.ok()) {
    std::fprintf(stderr, "bench: %s\n", r.status().ToString().c_str());
    std::exit(1);
  }
  return std::move(r).value();
}

std::unique_ptr<Channel> MustOpen(const std::string& name, Role role, const std::string& mode) {
  auto r = Channel::Open(name, role, Policy(mode));
  if (!r.ok()) {
    std::fprintf(stderr, "bench: %s\n", r.status().ToString().c_str());
    std::_Exit(1);
  }
  return std::move(r).value();
}

inline void Relax() {
#if defined(__x86_64__)
  __builtin_ia32_pause();
#endif
}

void FutexWait(std::atomic<uint32_t>& w, uint32_t old) {
  ::syscall(SYS_futex, reinterpret_cast<uint32_t*>(&w), FUTEX_WAIT, old, nullptr, nullptr, 0);
}
void FutexWake(std::atomic<uint32_t>& w) {
  ::syscall(SYS_futex, reinterpret_cast<uint32_t*>(&w), FUTEX_WAKE, 1, nullptr, nullptr, 0);
}

Row MakeRow(const char* c, const std::string& transport, uint64_t size, const std::string& mode) {
  return NewRow("channel", c, transport, size, mode);
}

// ---- pingpong -------------------------------------------------------------------------------

Row PingpongWeft(size_t size, const std::string& mode, int warm, int n) {
  const std::string a = ChannelName(), b = ChannelName();
  const size_t cap = std::max<size_t>(1 << 20, 8 * size);
  auto tx = MustCreate(a, cap, Role::kProducer, mode);
  auto rx = MustCreate(b, cap, Role::kConsumer, mode);
  pid_t child = Fork([&] {
    auto crx = MustOpen(a, Role::kConsumer, mode);
    auto ctx = MustOpen(b, Role::kProducer, mode);
    for (int i = 0; i < warm + n; ++i) {
      auto v = crx->Read(Deadline::Never());
      if (!v.ok()) return 1;
      if (!ctx->Write(*v, Deadline::Never()).ok()) return 1;
      if (!crx->Release().ok()) return 1;
    }
    return 0;
  });
  std::vector<uint8_t> buf(size, 7);
  std::vector<int64_t> samples;
  samples.reserve(n);
  for (int i = 0; i < warm + n; ++i) {
    const int64_t t0 = MonotonicNs();
    if (!tx->Write(ByteView(buf), Deadline::Never()).ok()) break;
    auto v = rx->Read(Deadline::Never());
    if (!v.ok()) break;
    rx->Release().IgnoreError();
    const int64_t t1 = MonotonicNs();
    if (i >= warm) samples.push_back(t1 - t0);
  }
  Join(child);
  Channel::Unlink(a).IgnoreError();
  Channel::Unlink(b).IgnoreError();
  Row r = MakeRow("pingpong", "weft", size, mode);
  SetLatency(r, samples);
  return r;
}

Row PingpongLink(const std::string& transport, size_t size, const std::string& mode, int warm, int n) {
  LinkPair lp = MakeLinkPair(transport, mode == "spin");
  pid_t child = Fork([&] {
    auto link = lp.child();
    std::vector<uint8_t> buf(size);
    for (int i = 0; i < warm + n; ++i) {
      if (!link->Recv(buf.data(), size) || !link->Send(buf.data(), size)) return 1;
    }
    return 0;
  });
  auto link = lp.parent();
  std::vector<uint8_t> out(size, 7), in(size);
  std::vector<int64_t> samples;
  samples.reserve(n);
  for (int i = 0; i < warm + n; ++i) {
    const int64_t t0 = MonotonicNs();
    if (!link->Send(out.data(), size) || !link->Recv(in.data(), size)) break;
    const int64_t t1 = MonotonicNs();
    if (i >= warm) samples.push_back(t1 - t0);
  }
  link.reset();
  Join(child);
  lp.cleanup();
  Row r = MakeRow("pingpong", transport, size, mode);
  SetLatency(r, samples);
  return r;
}

// Spin: a cache line bouncing between two processes. Parked: a futex wake each way.
Row PingpongFloor(size_t size, const std::string& mode, int warm, int n) {
  SharedCtl ctl(0);
  Ctl* c = ctl.c;
  const bool spin = mode == "spin";
  const int total = warm + n;
  pid_t child = Fork([&] {
    for (uint32_t i = 1; i <= static_cast<uint32_t>(total); ++i) {
      while (c->ping.load(std::memory_order_acquire) != i) {
        if (!spin) FutexWait(c->ping, i - 1); else Relax();
      }
      c->pong.store(i, std::memory_order_release);
      if (!spin) FutexWake(c->pong);
    }
    return 0;
  });
  std::vector<int64_t> samples;
  samples.reserve(n);
  for (uint32_t i = 1; i <= static_cast<uint32_t>(total); ++i) {
    if (!spin) SpinFor(2000);  // let the child fall asleep
    const int64_t t0 = MonotonicNs();
    c->ping.store(i, std::memory_order_release);
    if (!spin) FutexWake(c->ping);
    while (c->pong.load(std::memory_order_acquire) != i) {
      if (!spin) FutexWait(c->pong, i - 1); else Relax();
    }
    const int64_t t1 = MonotonicNs();
    if (static_cast<int>(i) > warm) samples.push_back(t1 - t0);
  }
  Join(child);
  Row r = MakeRow("pingpong", "floor", size, mode);
  r.note = spin ? "cache-line ping-pong between two processes" : "futex wake round trip";
  SetLatency(r, samples);
  return r;
}

// ---- stream ---------------------------------------------------------------------------------

Row StreamWeft(size_t size, const std::string& mode, uint64_t count) {
  const std::string name = ChannelName();
  const size_t cap = std::max<size_t>(8 << 20, 4 * size);
  auto tx = MustCreate(name, cap, Role::kProducer, mode);
  SharedCtl ctl(0);
  Ctl* c = ctl.c;
  pid_t child = Fork([&] {
    auto rx = MustOpen(name, Role::kConsumer, mode);
    c->ready.store(1, std::memory_order_release);
    uint64_t sum = 0, held = 0, held_bytes = 0;
    for (uint64_t got = 0; got < count; ++got) {
      auto v = rx->Read(Deadline::Now());
      if (!v.ok()) {
        if (held) rx->Release(held).IgnoreError();
        held = held_bytes = 0;
        v = rx->Read(Deadline::Never());
        if (!v.ok()) return 1;
      }
      sum += TouchSum(v->data(), v->size());
      ++held;
      held_bytes += v->size() + 8;
      if (held_bytes >= cap / 8) {
        rx->Release(held).IgnoreError();
        held = held_bytes = 0;
      }
    }
    if (held) rx->Release(held).IgnoreError();
    c->t_end.store(MonotonicNs(), std::memory_order_release);
    c->sum.store(sum, std::memory_order_release);
    return 0;
  });
  std::vector<uint8_t> src(size, 3);
  const uint64_t batch = std::max<uint64_t>(1, (64 << 10) / size);
  WaitAtLeast(c->ready, 1);
  const int64_t t0 = MonotonicNs();
  for (uint64_t i = 0; i < count; ++i) {
    auto buf = tx->Reserve(size, Deadline::Never());
    if (!buf.ok()) break;
    std::memcpy(buf->data(), src.data(), size);
    tx->CommitBatched(size).IgnoreError();
    if ((i + 1) % batch == 0) tx->Flush();
  }
  tx->Flush();
  Join(child);
  Channel::Unlink(name).IgnoreError();
  Row r = MakeRow("stream", "weft", size, mode);
  SetThroughput(r, count, size, c->t_end.load() - t0);
  r.note = "producer copies each record in; batches of " + std::to_string(batch);
  return r;
}

Row StreamLink(const std::string& transport, size_t size, const std::string& mode, uint64_t count) {
  LinkPair lp = MakeLinkPair(transport, mode == "spin");
  SharedCtl ctl(0);
  Ctl* c = ctl.c;
  pid_t child = Fork([&] {
    auto link = lp.child();
    std::vector<uint8_t> buf(size);
    c->ready.store(1, std::memory_order_release);
    uint64_t sum = 0;
    for (uint64_t i = 0; i < count; ++i) {
      if (!link->Recv(buf.data(), size)) return 1;
      sum += TouchSum(buf.data(), size);
    }
    c->t_end.store(MonotonicNs(), std::memory_order_release);
    c->sum.store(sum, std::memory_order_release);
    return 0;
  });
  auto link = lp.parent();
  std::vector<uint8_t> src(size, 3);
  WaitAtLeast(c->ready, 1);
  const int64_t t0 = MonotonicNs();
  for (uint64_t i = 0; i < count; ++i) {
    if (!link->Send(src.data(), size)) break;
  }
  Join(child);
  link.reset();
  lp.cleanup();
  Row r = MakeRow("stream", transport, size, mode);
  SetThroughput(r, count, size, c->t_end.load() - t0);
  return r;
}

// memcpy of the same records into successive slots of a ring of the same size, one core.
Row StreamFloor(size_t size, uint64_t count) {
  const size_t cap = std::max<size_t>(8 << 20, 4 * size);
  std::vector<uint8_t> ring(cap), src(size, 3);
  size_t pos = 0;
  const int64_t t0 = MonotonicNs();
  for (uint64_t i = 0; i < count; ++i) {
    if (pos + size > cap) pos = 0;
    std::memcpy(ring.data() + pos, src.data(), size);
    pos += (size + 15) & ~size_t{7};
  }
  const int64_t t1 = MonotonicNs();
  volatile uint8_t sink = ring[pos % cap];
  (void)sink;
  Row r = MakeRow("stream", "floor", size, "");
  r.note = "memcpy of the same records into a ring, one core";
  SetThroughput(r, count, size, t1 - t0);
  return r;
}

// The same pipeline with no channel at all: one process copies each record into the next slot
// of a shared ring and bumps a counter, the other sums the slot and bumps its own. Bounds what
// any shared-memory transport can reach between these two cores.
Row StreamPipelineFloor(size_t size, uint64_t count) {
  const size_t cap = std::max<size_t>(8 << 20, 4 * size);
  const size_t slot = (size + 63) & ~size_t{63};
  const uint64_t slots = cap / slot;
  SharedCtl ctl(0);
  Ctl* c = ctl.c;
  auto* ring = static_cast<uint8_t*>(SharedAlloc(cap));
  std::memset(ring, 0, cap);
  pid_t child = Fork([&] {
    uint64_t sum = 0;
    c->ready.store(1, std::memory_order_release);
    for (uint64_t i = 0; i < count; ++i) {
      while (c->t0.load(std::memory_order_acquire) <= static_cast<int64_t>(i)) Relax();
      sum += TouchSum(ring + (i % slots) * slot, size);
      c->done.store(i + 1, std::memory_order_release);
    }
    c->t_end.store(MonotonicNs(), std::memory_order_release);
    c->sum.store(sum);
    return 0;
  });
  std::vector<uint8_t> src(size, 3);
  WaitAtLeast(c->ready, 1);
  const int64_t t0 = MonotonicNs();
  for (uint64_t i = 0; i < count; ++i) {
    while (i >= slots && c->done.load(std::memory_order_acquire) <= i - slots) Relax();
    std::memcpy(ring + (i % slots) * slot, src.data(), size);
    c->t0.store(static_cast<int64_t>(i + 1), std::memory_order_release);  // records ready
  }
  Join(child);
  SharedFree(ring, cap);
  Row r = MakeRow("stream", "floor", size, "pipeline");
  r.note = "two-core pipeline without a channel: copy into a shared ring, sum on the other core";
  SetThroughput(r, count, size, c->t_end.load() - t0);
  return r;
}

// ---- blob and notify ------------------------------------------------------------------------

// One-way cases: the child consumes, the parent measures nothing; the child records
// t1 - t0 per iteration in shared samples. touch: the consumer sums every byte.
Row OneWayWeft(const char* case_name, size_t size, const std::string& mode, int warm, int n, bool touch) {
  const std::string name = ChannelName();
  const size_t cap = std::max<size_t>(1 << 20, size * 2 + 4096 + 64);
  auto tx = MustCreate(name, cap, Role::kProducer, mode);
  SharedCtl ctl(warm + n);
  Ctl* c = ctl.c;
  pid_t child = Fork([&] {
    auto rx = MustOpen(name, Role::kConsumer, mode);
    c->ready.store(1, std::memory_order_release);
    uint64_t sum = 0;
    for (int i = 0; i < warm + n; ++i) {
      auto v = rx->Read(Deadline::Never());
      if (!v.ok()) return 1;
      if (touch) sum += TouchSum(v->data(), v->size());
      c->samples[i] = MonotonicNs() - c->t0.load(std::memory_order_acquire);
      rx->Release().IgnoreError();
      c->done.store(i + 1, std::memory_order_release);
    }
    c->sum.store(sum);
    return 0;
  });
  WaitAtLeast(c->ready, 1);
  for (int i = 0; i < warm + n; ++i) {
    WaitAtLeast(c->done, i);
    auto buf = tx->Reserve(size, Deadline::Never());
    if (!buf.ok()) break;
    if (touch) std::memset(buf->data(), i & 0xFF, size);  // fresh bytes each time (not timed)
    if (mode == "parked") SpinFor(touch ? 1000 : 50'000);  // the consumer is asleep by now
    c->t0.store(MonotonicNs(), std::memory_order_release);
    tx->Commit(size).IgnoreError();
  }
  Join(child);
  Channel::Unlink(name).IgnoreError();
  std::vector<int64_t> samples(c->samples + warm, c->samples + warm + n);
  Row r = MakeRow(case_name, "weft", size, mode);
  SetLatency(r, samples);
  return r;
}

// blob floor: sum the same freshly written bytes in one process.
Row BlobFloor(int n) {
  std::vector<uint8_t> buf(kBlob);
  std::vector<int64_t> samples;
  uint64_t sum = 0;
  for (int i = 0; i < n; ++i) {
    std::memset(buf.data(), i & 0xFF, kBlob);
    const int64_t t0 = MonotonicNs();
    sum += TouchSum(buf.data(), kBlob);
    samples.push_back(MonotonicNs() - t0);
  }
  volatile uint64_t sink = sum;
  (void)sink;
  Row r = MakeRow("blob", "floor", kBlob, "");
  r.note = "summing 50 MB in one process";
  SetLatency(r, samples);
  return r;
}

}  // namespace

// One-way floor: one store seen by another process (spin), or one futex wake (parked).
Row OneWayFloor(const char* suite, const char* case_name, size_t size, const std::string& mode, int warm, int n) {
  SharedCtl ctl(warm + n);
  Ctl* c = ctl.c;
  const bool spin = mode == "spin";
  pid_t child = Fork([&] {
    for (uint32_t i = 1; i <= static_cast<uint32_t>(warm + n); ++i) {
      while (c->ping.load(std::memory_order_acquire) != i) {
        if (!spin) FutexWait(c->ping, i - 1); else Relax();
      }
      c->samples[i - 1] = MonotonicNs() - c->t0.load(std::memory_order_acquire);
      c->done.store(i, std::memory_order_release);
    }
    return 0;
  });
  for (uint32_t i = 1; i <= static_cast<uint32_t>(warm + n); ++i) {
    WaitAtLeast(c->done, i - 1);
    if (!spin) SpinFor(50'000);
    c->t0.store(MonotonicNs(), std::memory_order_release);
    c->ping.store(i, std::memory_order_release);
    if (!spin) FutexWake(c->ping);
  }
  Join(child);
  std::vector<int64_t> samples(c->samples + warm, c->samples + warm + n);
  Row r = MakeRow(case_name, "floor", size, mode);
  r.suite = suite;
  r.note = spin ? "one cache line seen by another process" : "one futex wake";
  SetLatency(r, samples);
  return r;
}

// Python producer and consumer (bench/python/channel_stream.py), both ends in Python.
std::vector<Row> PythonStream(bool quick) {
  std::vector<Row> rows;
  const std::string src = WEFT_SOURCE_DIR, bin = WEFT_BINARY_DIR;
  const std::string cmd = "PYTHONPATH='" + src + "/python:" + bin + "/python' /usr/bin/python3 '" +
                          src + "/bench/python/channel_stream.py' --tsv" + (quick ? " --quick" : "");
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return rows;
  char line[1024];
  while (std::fgets(line, sizeof(line), p) != nullptr) {
    char transport[32], mode[32], note[512];
    unsigned long long n = 0;
    double rate = 0;
    if (std::sscanf(line, "%31[^\t]\t%31[^\t]\t%llu\t%lf\t%511[^\n]", transport, mode, &n, &rate, note) != 5) continue;
    Row r = MakeRow("pystream", transport, 64, mode);
    SetThroughput(r, n, 64, static_cast<int64_t>(n / rate * 1e9));
    r.note = note;
    rows.push_back(r);
  }
  if (::pclose(p) != 0 || rows.empty()) {
    std::fprintf(stderr, "weft bench: the Python case did not run (is the weft module built?)\n");
  }
  return rows;
}


// One-way over a baseline transport: the parent sends, the child records t1 - t0 per
// message in shared samples; touch: the consumer sums every byte.
Row OneWayLink(const char* suite, const char* case_name, const std::string& transport, size_t size,
               const std::string& mode, int warm, int n, bool touch) {
  LinkPair lp = MakeLinkPair(transport, mode == "spin");
  SharedCtl ctl(warm + n);
  Ctl* c = ctl.c;
  pid_t child = Fork([&] {
    auto link = lp.child();
    std::vector<uint8_t> buf(size);
    c->ready.store(1, std::memory_order_release);
    uint64_t sum = 0;
    for (int i = 0; i < warm + n; ++i) {
      if (!link->Recv(buf.data(), size)) return 1;
      if (touch) sum += TouchSum(buf.data(), size);
      c->samples[i] = MonotonicNs() - c->t0.load(std::memory_order_acquire);
      c->done.store(i + 1, std::memory_order_release);
    }
    c->sum.store(sum);
    return 0;
  });
  auto link = lp.parent();
  std::vector<uint8_t> src(size);
  WaitAtLeast(c->ready, 1);
  for (int i = 0; i < warm + n; ++i) {
    WaitAtLeast(c->done, i);
    if (touch) std::memset(src.data(), i & 0xFF, size);
    if (mode == "parked") SpinFor(touch ? 1000 : 50'000);
    c->t0.store(MonotonicNs(), std::memory_order_release);
    if (!link->Send(src.data(), size)) break;
  }
  Join(child);
  link.reset();
  lp.cleanup();
  std::vector<int64_t> samples(c->samples + warm, c->samples + warm + n);
  Row r = MakeRow(case_name, transport, size, mode);
  r.suite = suite;
  SetLatency(r, samples);
  return r;
}


void RunChannelSuite(const Options& opt) {
  const int rounds = opt.quick ? 2 : 5;
  const int warm = 1000, n = 10'000;
  const std::vector<size_t> ping_sizes = opt.quick ? std::vector<size_t>{64, 4096}
                                                   : std::vector<size_t>{64, 1024, 65536};
  const std::vector<size_t> stream_sizes = opt.quick ? std::vector<size_t>{64, 1 << 20}
                                                     : std::vector<size_t>{64, 1024, 65536, 1 << 20};
  const uint64_t stream_bytes = opt.quick ? (256ull << 20) : (1024ull << 20);
  const int blob_n = opt.quick ? 4 : 10;
  const std::vector<std::string> modes = {"spin", "parked"};
  Results res;
  auto want = [&](const char* c) { return opt.only.empty() || opt.only == c; };
  for (int round = 0; round < rounds; ++round) {
    for (const std::string& mode : modes) {
      if (!want("pingpong")) break;
      for (size_t size : ping_sizes) {
        res.Add(PingpongWeft(size, mode, warm, n));
        for (const std::string& t : BaselineTransports()) res.Add(PingpongLink(t, size, mode, warm, n));
        res.Add(PingpongFloor(size, mode, warm, n));
      }
    }
    for (size_t size : stream_sizes) {
      if (!want("stream")) break;
      // Small records from sockets cost a system call each: cap their count to keep the run short.
      const uint64_t count = std::min<uint64_t>(stream_bytes / size, opt.quick ? 500'000 : 4'000'000);
      for (const std::string& mode : modes) res.Add(StreamWeft(size, mode, count));
      for (const std::string& t : BaselineTransports()) res.Add(StreamLink(t, size, "parked", count));
      res.Add(StreamFloor(size, count));
      res.Add(StreamPipelineFloor(size, count));
    }
    for (const std::string& mode : modes) {
      if (!want("blob")) break;
      res.Add(OneWayWeft("blob", kBlob, mode, 1, blob_n, true));
      for (const std::string& t : {"uds", "pipe", "tcp"}) {
        res.Add(OneWayLink("channel", "blob", t, kBlob, mode, 1, blob_n, true));
      }
    }
    if (want("blob")) res.Add(BlobFloor(blob_n));
    for (const std::string& mode : modes) {
      if (!want("notify")) break;
      res.Add(OneWayWeft("notify", 64, mode, warm, n, false));
      res.Add(OneWayWeft("notify", kBlob, mode, 10, opt.quick ? 2000 : 10'000, false));
      res.Add(OneWayLink("channel", "notify", "uds", 64, mode, warm, n, false));
      res.Add(OneWayLink("channel", "notify", "uds", kBlob, mode, 1, blob_n, false));
      res.Add(OneWayFloor("channel", "notify", 64, mode, warm, n));
    }
  }
  for (int round = 0; round < (opt.quick ? 1 : 3) && want("pystream"); ++round) {
    for (const Row& r : PythonStream(opt.quick)) res.Add(r);
  }
  std::vector<Row> rows = res.Medians();
  for (Row& r : rows) {
    if (r.payload_bytes == kBlob && r.transport != "weft" && r.transport != "floor") {
      r.note += (r.note.empty() ? "" : "; ") + std::string("fewer samples: each takes milliseconds");
    }
    if (r.case_name == "blob" && r.transport == "weft") {
      r.note += (r.note.empty() ? "" : "; ") + std::string("fewer samples: each takes milliseconds");
    }
  }
  Emit("channel", rows, opt);
}

}  // namespace weft::bench
