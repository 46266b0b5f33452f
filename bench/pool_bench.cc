// `weft bench pool`: allocate+free pairs per second in one thread, Weft's shared-memory pool
// beside glibc malloc, with the floor (the two atomic operations a pair needs, on one line).
#include <atomic>
#include <cstdlib>
#include <string>
#include <unistd.h>
#include <vector>

#include "bench_util.h"
#include "suites.h"
#include "weft/core/clock.h"
#include "weft/shm/pool.h"

namespace weft::bench {
namespace {

Row AllocRow(const std::string& transport, size_t size, uint64_t pairs, int64_t ns) {
  Row r = NewRow("pool", "alloc", transport, size, "");
  r.extra["size"] = std::to_string(size);
  SetThroughput(r, pairs, 0, ns);
  r.bytes_per_s = 0;
  return r;
}

Row AllocWeft(shm::Pool& pool, size_t size, uint64_t pairs) {
  // Touch one byte per block so that the block is real memory, as with malloc below.
  const int64_t t0 = MonotonicNs();
  for (uint64_t i = 0; i < pairs; ++i) {
    auto b = pool.Allocate(size);
    if (!b.ok()) std::abort();
    (*pool.Data(*b))[0] = static_cast<uint8_t>(i);
    pool.Release(*b).IgnoreError();
  }
  return AllocRow("weft", size, pairs, MonotonicNs() - t0);
}

Row AllocMalloc(size_t size, uint64_t pairs) {
  const int64_t t0 = MonotonicNs();
  for (uint64_t i = 0; i < pairs; ++i) {
    auto* p = static_cast<volatile uint8_t*>(std::malloc(size));
    p[0] = static_cast<uint8_t>(i);
    std::free(const_cast<uint8_t*>(p));
  }
  Row r = AllocRow("malloc", size, pairs, MonotonicNs() - t0);
  r.note = "glibc malloc/free, process-private memory";
  return r;
}

Row AllocFloor(uint64_t pairs) {
  alignas(64) static uint64_t word = 0;
  std::atomic_ref<uint64_t> w(word);
  const int64_t t0 = MonotonicNs();
  for (uint64_t i = 0; i < pairs; ++i) {
    uint64_t expected = 0;
    w.compare_exchange_strong(expected, 1, std::memory_order_acq_rel);
    w.fetch_and(0, std::memory_order_acq_rel);
  }
  Row r = AllocRow("floor", 64, pairs, MonotonicNs() - t0);
  r.note = "one compare-and-swap and one atomic and on an uncontended line";
  return r;
}

}  // namespace

void RunPoolSuite(const Options& opt) {
  const int rounds = opt.quick ? 3 : 5;
  const std::vector<size_t> sizes = {64, 1024, 65536, 1 << 20};
  const std::string name = "bench.pool." + std::to_string(::getpid());
  auto pool_r = shm::Pool::Create(name, {.bytes = 64 << 20});
  if (!pool_r.ok()) {
    std::fprintf(stderr, "weft bench pool: %s\n", pool_r.status().ToString().c_str());
    return;
  }
  auto pool = std::move(pool_r).value();
  Results res;
  for (int round = 0; round < rounds; ++round) {
    for (size_t size : sizes) {
      // Large blocks are a segment each (create, map, unlink): far fewer per second.
      const uint64_t pairs = size > shm::Pool::kPageSize ? (opt.quick ? 200 : 1000)
                                                          : (opt.quick ? 1'000'000 : 5'000'000);
      res.Add(AllocWeft(*pool, size, pairs));
      res.Add(AllocMalloc(size, pairs));
    }
    res.Add(AllocFloor(opt.quick ? 1'000'000 : 5'000'000));
  }
  pool.reset();
  shm::Pool::Unlink(name).IgnoreError();
  Emit("pool", res.Medians(), opt);
}

}  // namespace weft::bench
