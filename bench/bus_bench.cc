// `weft bench bus`: the event bus. Cases (docs/benchmarks.md):
//   ingest  throughput of 64 B events from producer threads to one consumer that sums every
//           byte: the memory backend, one at a time and in batches, 1 and 2 producers, beside
//           moodycamel's ConcurrentQueue (the same events, the same threads) and the floor
//           (the SPSC channel's stream of the same events between two threads: one ring, no
//           shards, batched commits).
#include <concurrentqueue/concurrentqueue.h>

#include <array>
#include <atomic>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "bench_util.h"
#include "suites.h"
#include "weft/bus/bus.h"
#include "weft/core/clock.h"
#include "weft/shm/channel.h"

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

Row IngestWeft(int producers, bool batch, uint64_t count) {
  auto opened = bus::Bus::Open({.shards = static_cast<uint32_t>(producers), .shard_bytes = 8 << 20, .groups = {"g"}});
  if (!opened.ok()) return IngestRow("weft", producers, batch);
  std::unique_ptr<bus::Bus> b = std::move(opened).value();
  auto member = b->Subscribe("g").value();
  const uint64_t each = count / producers;
  std::atomic<int> go{0};
  std::vector<std::thread> threads;
  for (int p = 0; p < producers; ++p) {
    threads.emplace_back([&] {
      std::array<uint8_t, kEvent> src;
      src.fill(3);
      std::vector<ByteView> views(kBatch, ByteView(src.data(), src.size()));
      while (go.load(std::memory_order_acquire) == 0) {
      }
      if (batch) {
        for (uint64_t i = 0; i < each;) {
          const size_t n = std::min<uint64_t>(kBatch, each - i);
          auto done = b->IngestBatch(std::span<const ByteView>(views.data(), n));
          if (!done.ok()) return;
          i += *done;
        }
      } else {
        for (uint64_t i = 0; i < each; ++i) {
          if (!b->Ingest(ByteView(src.data(), src.size())).ok()) return;
        }
      }
    });
  }
  const uint64_t total = each * producers;
  uint64_t got = 0, sum = 0;
  const int64_t t0 = MonotonicNs();
  go.store(1, std::memory_order_release);
  while (got < total) {
    auto events = member->Poll(1024, Deadline::AfterMs(5000));
    if (!events.ok()) break;
    for (const bus::Event& e : *events) sum += TouchSum(e.data.data(), e.data.size());
    got += events->size();
  }
  const int64_t t1 = MonotonicNs();
  for (auto& t : threads) t.join();
  g_sink = sum;
  Row r = IngestRow("weft", producers, batch);
  SetThroughput(r, got, kEvent, t1 - t0);
  r.note = std::string(batch ? "IngestBatch of 64" : "Ingest one at a time") + ", one shard per producer; Poll(1024)";
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

}  // namespace

void RunBusSuite(const Options& opt) {
  const int rounds = opt.quick ? 1 : 3;
  const uint64_t count = opt.quick ? 2'000'000 : 10'000'000;
  Results res;
  auto want = [&](const char* c) { return opt.only.empty() || opt.only == c; };
  for (int round = 0; round < rounds && want("ingest"); ++round) {
    for (int producers : {1, 2}) {
      for (bool batch : {false, true}) {
        res.Add(IngestWeft(producers, batch, count));
        res.Add(IngestMoodycamel(producers, batch, count));
      }
    }
    res.Add(IngestFloor(count));
  }
  Emit("bus", res.Medians(), opt);
}

}  // namespace weft::bench
