// `weft bench bus`: the event bus. Cases (docs/benchmarks.md):
//   ingest  throughput of 64 B events from producers to one consumer that sums every byte:
//           the memory backend (threads), one at a time, one at a time with linger, and in
//           batches, 1 and 2 producers,
//           beside moodycamel's ConcurrentQueue (the same events, the same threads); the shm
//           backend with the producer in another process, beside a Unix socket and ZeroMQ
//           PUSH/PULL over ipc (the same events, the same processes); the log backend with
//           fsync never, beside its floor (the same bytes written into files: the page
//           cache's rate); durable ingest (fsync always, no consumer) by 1 and 8 producers on
//           one shard, and by 8 on a shard each, beside Redis Streams (XADD, appendfsync
//           always); Python producers (bench/python/bus_stream.py); and the floor (the SPSC
//           channel's stream of the same events between two threads: one ring, no shards,
//           batched commits).
//   e2e     latency from ingest to a consumer in another process holding the event, events
//           sent at a fixed 100,000 per second, the consumer spinning or parked; beside the
//           floor (one cache line, or one futex wake, between two processes).
//   python  Python producer to Python consumer in another process (bench/python/bus_stream.py).
#include <concurrentqueue/concurrentqueue.h>
#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bench_util.h"
#include "links.h"
#include "redis.h"
#include "suites.h"
#include "weft/bus/bus.h"
#include "weft/core/clock.h"
#include "weft/log/log.h"
#include "weft/shm/channel.h"
#include "weft/core/wait.h"

namespace weft::bench {
namespace {

constexpr size_t kEvent = 64;
constexpr size_t kBatch = 64;  // events per batch call, both ways
volatile uint64_t g_sink = 0;  // every consumer's sum lands here: the touching is observable

Row IngestRow(const std::string& transport, int producers, bool batch) {
  Row r = NewRow("bus", "ingest", transport, kEvent, "");
  r.extra["backend"] = transport == "weft" ? "memory" : transport;
  r.extra["producers"] = std::to_string(producers);
  r.extra["consumers"] = "1";
  r.extra["lang"] = "cpp";
  r.extra["batch"] = batch ? "true" : "false";
  return r;
}

// A producer's part of an ingest row: `each` events of kEvent bytes, one at a time or in
// batches of kBatch. False if the bus refused one.
bool Produce(bus::Bus& b, bool batch, uint64_t each) {
  std::array<uint8_t, kEvent> src;
  src.fill(3);
  std::vector<ByteView> views(kBatch, ByteView(src.data(), src.size()));
  if (batch) {
    for (uint64_t i = 0; i < each;) {
      const size_t n = std::min<uint64_t>(kBatch, each - i);
      auto done = b.IngestBatch(std::span<const ByteView>(views.data(), n));
      if (!done.ok()) return false;
      i += *done;
    }
    return true;
  }
  for (uint64_t i = 0; i < each; ++i) {
    if (!b.Ingest(ByteView(src.data(), src.size())).ok()) return false;
  }
  return true;
}

// The consumer's part: polls until `total` events came (or 5 s without any), summing every
// byte. Returns the events received.
uint64_t Consume(bus::Consumer& member, uint64_t total) {
  uint64_t got = 0, sum = 0;
  while (got < total) {
    auto events = member.Poll(1024, Deadline::AfterMs(5000));
    if (!events.ok()) break;
    for (const bus::Event& e : *events) sum += TouchSum(e.data.data(), e.data.size());
    got += events->size();
  }
  g_sink = sum;
  return got;
}

Row IngestWeft(int producers, bool batch, uint64_t count, int64_t linger_ns = 0) {
  auto opened = bus::Bus::Open({.shards = static_cast<uint32_t>(producers), .shard_bytes = 8 << 20, .groups = {"g"},
                                .linger_ns = linger_ns, .linger_events = 64});
  if (!opened.ok()) return IngestRow("weft", producers, batch);
  std::unique_ptr<bus::Bus> b = std::move(opened).value();
  auto member = b->Subscribe("g").value();
  const uint64_t each = count / producers;
  std::atomic<int> go{0};
  std::vector<std::thread> threads;
  for (int p = 0; p < producers; ++p) {
    threads.emplace_back([&] {
      while (go.load(std::memory_order_acquire) == 0) {
      }
      Produce(*b, batch, each);
      b->Flush().IgnoreError();
    });
  }
  const uint64_t total = each * producers;
  const int64_t t0 = MonotonicNs();
  go.store(1, std::memory_order_release);
  const uint64_t got = Consume(*member, total);
  const int64_t t1 = MonotonicNs();
  for (auto& t : threads) t.join();
  Row r = IngestRow("weft", producers, batch);
  if (linger_ns > 0) r.extra["linger"] = "64";
  SetThroughput(r, got, kEvent, t1 - t0);
  r.note = std::string(batch ? "IngestBatch of 64" : "Ingest one at a time") + ", one shard per producer; Poll(1024)";
  if (linger_ns > 0) r.note += "; linger: 64 events or 100 us per batch";
  if (got < total) r.note += "; INCOMPLETE";
  return r;
}

Row IngestMoodycamel(int producers, bool batch, uint64_t count) {
  using Msg = std::array<uint8_t, kEvent>;
  moodycamel::ConcurrentQueue<Msg> q(1 << 16);
  const uint64_t each = count / producers;
  std::atomic<int> go{0};
  std::vector<std::thread> threads;
  for (int p = 0; p < producers; ++p) {
    threads.emplace_back([&] {
      moodycamel::ProducerToken tok(q);
      std::vector<Msg> src(kBatch);
      for (Msg& m : src) m.fill(3);
      while (go.load(std::memory_order_acquire) == 0) {
      }
      if (batch) {
        for (uint64_t i = 0; i < each; i += kBatch) q.enqueue_bulk(tok, src.begin(), std::min<uint64_t>(kBatch, each - i));
      } else {
        for (uint64_t i = 0; i < each; ++i) q.enqueue(tok, src[0]);
      }
    });
  }
  const uint64_t total = each * producers;
  uint64_t got = 0, sum = 0;
  std::vector<Msg> out(1024);
  moodycamel::ConsumerToken ctok(q);
  const int64_t t0 = MonotonicNs();
  go.store(1, std::memory_order_release);
  while (got < total) {
    const size_t n = q.try_dequeue_bulk(ctok, out.begin(), out.size());
    for (size_t i = 0; i < n; ++i) sum += TouchSum(out[i].data(), kEvent);
    got += n;
  }
  const int64_t t1 = MonotonicNs();
  for (auto& t : threads) t.join();
  g_sink = sum;
  Row r = IngestRow("moodycamel", producers, batch);
  SetThroughput(r, got, kEvent, t1 - t0);
  r.note = std::string(batch ? "enqueue_bulk of 64" : "enqueue one at a time") + " with producer tokens; try_dequeue_bulk(1024)";
  return r;
}

// The SPSC channel between two threads: the producer reserves, copies and commits each event
// (commits batched), the consumer reads, sums and releases in batches.
Row IngestFloor(uint64_t count) {
  const std::string name = "bench.bus." + std::to_string(::getpid());
  shm::ChannelOptions o;
  o.capacity = 8 << 20;
  auto tx = shm::Channel::Create(name, o).value();
  auto rx = shm::Channel::Open(name, shm::Role::kConsumer).value();
  std::atomic<int> go{0};
  std::thread producer([&] {
    std::array<uint8_t, kEvent> src;
    src.fill(3);
    while (go.load(std::memory_order_acquire) == 0) {
    }
    for (uint64_t i = 0; i < count; ++i) {
      auto buf = tx->Reserve(kEvent, Deadline::Never());
      if (!buf.ok()) return;
      std::memcpy(buf->data(), src.data(), kEvent);
      tx->CommitBatched(kEvent).IgnoreError();
      if ((i + 1) % 1024 == 0) tx->Flush();
    }
    tx->Flush();
  });
  uint64_t got = 0, sum = 0, held = 0;
  const int64_t t0 = MonotonicNs();
  go.store(1, std::memory_order_release);
  while (got < count) {
    auto v = rx->Read(Deadline::Now());
    if (!v.ok()) {
      if (held) rx->Release(held).IgnoreError();
      held = 0;
      v = rx->Read(Deadline::AfterMs(5000));
      if (!v.ok()) break;
    }
    sum += TouchSum(v->data(), v->size());
    ++got;
    if (++held == 1024) {
      rx->Release(held).IgnoreError();
      held = 0;
    }
  }
  if (held) rx->Release(held).IgnoreError();
  const int64_t t1 = MonotonicNs();
  producer.join();
  g_sink = sum;
  shm::Channel::Unlink(name).IgnoreError();
  Row r = IngestRow("floor", 1, true);
  r.extra["backend"] = "channel";
  SetThroughput(r, got, kEvent, t1 - t0);
  r.note = "the SPSC channel's stream of the same events between two threads (commits batched by 1024)";
  return r;
}

// ---- across processes: the shm backend beside a Unix socket and ZeroMQ ----------------------

struct Gate {
  std::atomic<int> ready;
  std::atomic<int> go;
};

// Waits (up to 30 s) for the child to say it is ready; false if it never did.
bool AwaitReady(Gate* g) {
  const int64_t until = MonotonicNs() + 30'000'000'000;
  while (g->ready.load(std::memory_order_acquire) == 0) {
    if (MonotonicNs() > until) return false;
    std::this_thread::yield();
  }
  return true;
}

Row IngestShm(bool batch, uint64_t count) {
  const std::string url = "shm:bench.bus." + std::to_string(::getpid());
  bus::Bus::Unlink(url).IgnoreError();
  Row r = IngestRow("weft", 1, batch);
  r.extra["backend"] = "shm";
  auto opened = bus::Bus::Open({.url = url, .shards = 1, .shard_bytes = 8 << 20, .groups = {"g"}});
  if (!opened.ok()) {
    r.note = "not run: " + opened.status().ToString();
    return r;
  }
  auto member = (*opened)->Subscribe("g").value();
  auto* gate = static_cast<Gate*>(SharedAlloc(sizeof(Gate)));
  const pid_t child = Fork([&] {
    auto b = bus::Bus::Open({.url = url, .create = false});
    if (!b.ok()) return 1;
    gate->ready.store(1, std::memory_order_release);
    while (gate->go.load(std::memory_order_acquire) == 0) {
    }
    return Produce(**b, batch, count) ? 0 : 2;
  });
  uint64_t got = 0;
  int64_t t0 = 0, t1 = 0;
  if (AwaitReady(gate)) {
    t0 = MonotonicNs();
    gate->go.store(1, std::memory_order_release);
    got = Consume(*member, count);
    t1 = MonotonicNs();
  }
  Join(child);
  SharedFree(gate, sizeof(Gate));
  member.reset();
  bus::Bus::Unlink(url).IgnoreError();
  SetThroughput(r, got, kEvent, t1 - t0);
  r.note = std::string(batch ? "IngestBatch of 64" : "Ingest one at a time") + " in another process; Poll(1024)";
  if (got < count) r.note += "; INCOMPLETE";
  return r;
}

// The same events over a baseline transport: the child sends each as one message, the parent
// receives and sums it.
Row IngestLink(const std::string& transport, uint64_t count) {
  LinkPair lp = MakeLinkPair(transport, false);
  auto* gate = static_cast<Gate*>(SharedAlloc(sizeof(Gate)));
  const pid_t child = Fork([&] {
    auto link = lp.child();
    std::array<uint8_t, kEvent> src;
    src.fill(3);
    gate->ready.store(1, std::memory_order_release);
    while (gate->go.load(std::memory_order_acquire) == 0) {
    }
    for (uint64_t i = 0; i < count; ++i) {
      if (!link->Send(src.data(), src.size())) return 1;
    }
    return 0;
  });
  auto link = lp.parent();
  uint64_t got = 0, sum = 0;
  int64_t t0 = 0, t1 = 0;
  if (AwaitReady(gate)) {
    std::array<uint8_t, kEvent> buf;
    t0 = MonotonicNs();
    gate->go.store(1, std::memory_order_release);
    while (got < count && link->Recv(buf.data(), buf.size())) {
      sum += TouchSum(buf.data(), buf.size());
      ++got;
    }
    t1 = MonotonicNs();
  }
  g_sink = sum;
  link.reset();
  Join(child);
  if (lp.cleanup) lp.cleanup();
  SharedFree(gate, sizeof(Gate));
  const std::string name = transport == "zmq-push" ? "zmq" : transport;
  Row r = IngestRow(name, 1, false);
  r.extra["backend"] = name;
  SetThroughput(r, got, kEvent, t1 - t0);
  r.note = transport == "uds" ? "a Unix stream socket pair, one send and one receive per event, another process"
                              : "ZeroMQ PUSH/PULL over ipc, one message per event, another process";
  if (got < count) r.note += "; INCOMPLETE";
  return r;
}

// ---- the log backend ---------------------------------------------------------------------------

bus::BusOptions LogBusOptions(const Dir& d, uint32_t shards, log::Fsync fsync) {
  bus::BusOptions o;
  o.url = "log:" + d.path + "/bus";
  o.shards = shards;
  o.backpressure = Overflow::kDropOldest;
  o.log.fsync = fsync;
  o.groups = {"g"};
  return o;
}

Row IngestLog(bool batch, uint64_t count) {
  Dir d;
  Row r = IngestRow("weft", 1, batch);
  r.extra["backend"] = "log";
  r.extra["fsync"] = "never";
  auto opened = bus::Bus::Open(LogBusOptions(d, 1, log::Fsync::kNever));
  if (!opened.ok()) {
    r.note = "not run: " + opened.status().ToString();
    return r;
  }
  std::unique_ptr<bus::Bus> b = std::move(opened).value();
  auto member = b->Subscribe("g").value();
  std::atomic<int> go{0};
  std::thread producer([&] {
    while (go.load(std::memory_order_acquire) == 0) {
    }
    Produce(*b, batch, count);
  });
  const int64_t t0 = MonotonicNs();
  go.store(1, std::memory_order_release);
  const uint64_t got = Consume(*member, count);
  const int64_t t1 = MonotonicNs();
  producer.join();
  member.reset();
  bus::Bus::Unlink(b->options().url).IgnoreError();
  SetThroughput(r, got, kEvent, t1 - t0);
  r.note = std::string(batch ? "IngestBatch of 64" : "Ingest one at a time") + " to a log on disk (fsync never); Poll(1024)";
  if (got < count) r.note += "; INCOMPLETE";
  return r;
}

Row DurableRow(const std::string& transport, int producers, uint64_t n, int64_t ns) {
  Row r = IngestRow(transport, producers, false);
  r.extra["backend"] = transport == "weft" ? "log" : transport;
  r.extra["fsync"] = "always";
  r.extra["consumers"] = "0";
  SetThroughput(r, n, kEvent, ns);
  return r;
}

// Durable ingest: every Ingest returns once its event is on disk (fsync always); `producers`
// threads ingest one event at a time, for `budget` ns, to `shards` shards (one shard: they
// share its fsyncs; a shard each: each log syncs its own file). No consumer.
Row DurableLog(int producers, uint32_t shards, int64_t budget) {
  Dir d;
  auto opened = bus::Bus::Open(LogBusOptions(d, shards, log::Fsync::kAlways));
  if (!opened.ok()) {
    Row r = DurableRow("weft", producers, 0, 1);
    r.note = "not run: " + opened.status().ToString();
    return r;
  }
  std::unique_ptr<bus::Bus> b = std::move(opened).value();
  std::array<uint8_t, kEvent> src;
  src.fill(3);
  auto [n, ns] = RunThreads(producers, budget, [&](int, int64_t stop) {
    uint64_t count = 0;
    while (MonotonicNs() < stop) {
      if (!b->Ingest(ByteView(src.data(), src.size())).ok()) break;
      ++count;
    }
    return count;
  });
  bus::Bus::Unlink(b->options().url).IgnoreError();
  Row r = DurableRow("weft", producers, n, ns);
  r.extra["shards"] = std::to_string(shards);
  r.note = std::string("Ingest one at a time, each returns once on disk (fsync always); ") +
           (shards == 1 ? "one shard, its fsyncs shared" : "a shard per producer");
  return r;
}

// The page cache's floor under a log with fsync never: the same bytes a log of 64 B events
// writes (a 32-byte record header each), put into fresh 64 MB segment files with pwrite of
// 1 MB at a time: what the kernel takes into a file per second from one thread, nothing else.
Row LogFloor(uint64_t count) {
  Dir d;
  Row r = IngestRow("floor", 1, true);
  r.extra["backend"] = "log";
  r.extra["fsync"] = "never";
  r.extra["consumers"] = "0";
  constexpr uint64_t kSegment = uint64_t{64} << 20, kWrite = uint64_t{1} << 20, kRecord = 32 + kEvent;
  const uint64_t total = count * kRecord;
  std::vector<uint8_t> buf(kWrite, 5);
  const int64_t t0 = MonotonicNs();
  uint64_t done = 0;
  for (int file = 0; done < total; ++file) {
    const std::string path = d.path + "/" + std::to_string(file);
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0 || ::ftruncate(fd, static_cast<off_t>(kSegment)) != 0) {
      if (fd >= 0) ::close(fd);
      break;
    }
    for (uint64_t off = 0; off < kSegment && done < total; off += kWrite) {
      if (::pwrite(fd, buf.data(), kWrite, static_cast<off_t>(off)) != static_cast<ssize_t>(kWrite)) break;
      done += kWrite;
    }
    ::close(fd);
  }
  const int64_t t1 = MonotonicNs();
  SetThroughput(r, done / kRecord, kEvent, t1 - t0);
  r.note = "pwrite of the log's bytes (96 B a 64 B event) to fresh 64 MB files, 1 MB at a time: the page cache's rate";
  if (done < total) r.note += "; INCOMPLETE";
  return r;
}

// Redis Streams with appendfsync always: each producer XADDs one event at a time and waits for
// its reply (on disk by then), over its own connection.
Row DurableRedis(RedisServer& srv, int producers, int64_t budget) {
  if (!srv.up()) {
    Row r = DurableRow("redis", producers, 0, 1);
    r.note = "not run: redis-server is not installed";
    return r;
  }
  const std::string payload(kEvent, 'Z');
  auto [n, ns] = RunThreads(producers, budget, [&](int i, int64_t stop) {
    Resp c(srv.port());
    const std::string key = "bus" + std::to_string(i);
    uint64_t count = 0;
    while (MonotonicNs() < stop) {
      c.Append({"XADD", key, "*", "e", payload});
      if (!c.Flush() || !c.Reply()) break;
      ++count;
    }
    c.Append({"DEL", key});
    if (c.Flush()) c.Reply();
    return count;
  });
  Row r = DurableRow("redis", producers, n, ns);
  r.note = "XADD one at a time over loopback TCP, appendfsync always, a stream per producer";
  return r;
}

// ---- e2e: ingest to a consumer in another process holding the event -------------------------

struct E2ECtl {
  std::atomic<int> ready;
  std::atomic<uint64_t> done;
  int64_t samples[1];
};

// Events of kEvent bytes, each carrying its ingest time, sent at a fixed rate (one every
// 10 us) to a shm: bus; the consumer, in a child, records arrival minus ingest per event.
Row E2EWeft(const std::string& mode, int warm, int n) {
  // No dirty pages of earlier rows (the log rows write hundreds of MB) are written back beside
  // this one: the kernel's writeback threads would preempt a spinning side.
  ::sync();
  const std::string url = "shm:bench.bus.e2e." + std::to_string(::getpid());
  bus::Bus::Unlink(url).IgnoreError();
  Row r = NewRow("bus", "e2e", "weft", kEvent, mode);
  r.extra["backend"] = "shm";
  r.extra["rate"] = "100000";
  auto opened = bus::Bus::Open({.url = url, .shards = 1, .shard_bytes = 1 << 20, .groups = {"g"}});
  if (!opened.ok()) {
    r.note = "not run: " + opened.status().ToString();
    return r;
  }
  const size_t total = static_cast<size_t>(warm + n);
  const size_t bytes = sizeof(E2ECtl) + total * sizeof(int64_t);
  auto* c = static_cast<E2ECtl*>(SharedAlloc(bytes));
  const bool spin = mode == "spin";
  const pid_t child = Fork([&] {
    auto b = bus::Bus::Open({.url = url, .create = false});
    if (!b.ok()) return 1;
    bus::ConsumerOptions co;
    co.wait.spin_ns = spin ? WaitPolicy::kSpinForever : 0;
    co.wait.adaptive = false;
    auto m = (*b)->Subscribe("g", co);
    if (!m.ok()) return 2;
    c->ready.store(1, std::memory_order_release);
    uint64_t got = 0, sum = 0;
    while (got < total) {
      auto events = (*m)->Poll(64, Deadline::AfterMs(5000));
      if (!events.ok()) return 3;
      for (const bus::Event& e : *events) {
        int64_t sent = 0;
        std::memcpy(&sent, e.data.data(), sizeof(sent));
        sum += TouchSum(e.data.data(), e.data.size());
        c->samples[got++] = MonotonicNs() - sent;
      }
    }
    g_sink = sum;
    return 0;
  });
  while (c->ready.load(std::memory_order_acquire) == 0) std::this_thread::yield();
  std::array<uint8_t, kEvent> ev;
  ev.fill(7);
  const int64_t start = MonotonicNs() + 1'000'000;
  for (size_t i = 0; i < total; ++i) {
    const int64_t due = start + static_cast<int64_t>(i) * 10'000;  // 100,000 events per second
    while (MonotonicNs() < due) CpuRelax();
    const int64_t now = MonotonicNs();
    std::memcpy(ev.data(), &now, sizeof(now));
    if (!(*opened)->Ingest(ByteView(ev.data(), ev.size())).ok()) break;
  }
  const int rc = Join(child);
  std::vector<int64_t> samples(c->samples + warm, c->samples + total);
  SharedFree(c, bytes);
  bus::Bus::Unlink(url).IgnoreError();
  SetLatency(r, samples);
  r.note = std::string("shm: bus, one event every 10 us, consumer ") + (spin ? "spinning" : "parked (sleeps at once)");
  if (rc != 0) r.note += "; INCOMPLETE";
  return r;
}

// ---- Python ------------------------------------------------------------------------------------

// Rows measured by bench/python/bus_stream.py: one per line, tab-separated: case, transport,
// batch (0/1), consumers, events, events per second, note.
std::vector<Row> PythonRows(bool quick) {
  std::vector<Row> rows;
  for (const std::vector<std::string>& f : PythonLines("bus_stream.py", quick)) {
    if (f.size() != 7) continue;
    const double rate = std::atof(f[5].c_str());
    const uint64_t n = std::strtoull(f[4].c_str(), nullptr, 10);
    if (rate <= 0) continue;
    Row r = NewRow("bus", f[0], f[1], kEvent, "");
    r.extra["backend"] = f[0] == "python" ? "shm" : "memory";
    r.extra["producers"] = "1";
    r.extra["consumers"] = f[3];
    r.extra["lang"] = "python";
    r.extra["batch"] = f[2] == "1" ? "true" : "false";
    SetThroughput(r, n, kEvent, static_cast<int64_t>(static_cast<double>(n) / rate * 1e9));
    r.note = f[6];
    rows.push_back(r);
  }
  return rows;
}

}  // namespace

void RunBusSuite(const Options& opt) {
  const int rounds = opt.quick ? 1 : 3;
  const uint64_t count = opt.quick ? 2'000'000 : 10'000'000;
  const int64_t budget = opt.quick ? 300'000'000 : 1'000'000'000;
  Results res;
  auto want = [&](const char* c) { return opt.only.empty() || opt.only == c; };
  // redis-server runs only while the ingest rows do: the e2e rows run with no other process
  // of ours awake (its timer would preempt a spinning side).
  auto redis = want("ingest") ? std::make_unique<RedisServer>("always") : nullptr;
  for (int round = 0; round < rounds && want("ingest"); ++round) {
    for (int producers : {1, 2}) {
      for (bool batch : {false, true}) {
        res.Add(IngestWeft(producers, batch, count));
        res.Add(IngestMoodycamel(producers, batch, count));
      }
      res.Add(IngestWeft(producers, false, count, 100'000));
    }
    for (bool batch : {false, true}) res.Add(IngestShm(batch, count));
    res.Add(IngestLink("uds", count / 4));
    res.Add(IngestLink("zmq-push", count / 4));
    for (bool batch : {false, true}) res.Add(IngestLog(batch, count));
    res.Add(LogFloor(count));
    for (int producers : {1, 8}) {
      res.Add(DurableLog(producers, 1, budget));
      res.Add(DurableRedis(*redis, producers, budget));
    }
    res.Add(DurableLog(8, 8, budget));
    res.Add(IngestFloor(count));
  }
  redis.reset();
  if (want("ingest") || want("python")) {
    for (const Row& r : PythonRows(opt.quick)) {
      if (want(r.case_name.c_str()) || (want("ingest") && r.case_name == "ingest")) res.Add(r);
    }
  }
  AddRemoteBusRows(res, opt.quick, want);
  for (int round = 0; round < rounds && want("e2e"); ++round) {
    const int n = opt.quick ? 20'000 : 100'000;
    for (const char* mode : {"spin", "parked"}) {
      res.Add(E2EWeft(mode, 2000, n));
      res.Add(OneWayFloor("bus", "e2e", kEvent, mode, 1000, opt.quick ? 2000 : 10'000));
    }
  }
  Emit("bus", res.Medians(), opt);
}

}  // namespace weft::bench
