// Pool stress and crash tests: several processes allocating random sizes and checking a
// pattern in every block (no overlap); holders and allocators killed with SIGKILL, with the
// pool back at full capacity after recovery, and negative controls.
#include <signal.h>
#include <sys/mman.h>

#include <atomic>
#include <cstring>
#include <vector>

#include <gtest/gtest.h>

#include "shm/test_util.h"
#include "weft/shm/pool.h"

namespace weft::shm {
namespace {

using weft::testing::Join;
using weft::testing::Rng;
using weft::testing::Spawn;
using weft::testing::UniqueName;

// Writes a pattern unique to (process, sequence) and checks it before freeing: two processes
// ever sharing bytes would break the other's pattern.
void Stamp(MutableBytes d, size_t n, uint64_t tag) {
  for (size_t i = 0; i < n; i += 8) {
    uint64_t v = tag * 0x9E3779B97F4A7C15ull + i;
    std::memcpy(d.data() + i, &v, std::min<size_t>(8, n - i));
  }
}
bool Check(MutableBytes d, size_t n, uint64_t tag) {
  for (size_t i = 0; i < n; i += 8) {
    uint64_t v = tag * 0x9E3779B97F4A7C15ull + i;
    if (std::memcmp(d.data() + i, &v, std::min<size_t>(8, n - i)) != 0) return false;
  }
  return true;
}

size_t RandomSize(Rng& rng) {
  switch (rng.Below(10)) {
    case 0: return 65536 + rng.Below(300000);  // large
    case 1:
    case 2: return 1 + rng.Below(65536);
    default: return 1 + rng.Below(1024);
  }
}

// Runs allocate/stamp/check/free loops; returns 0 on success, 1 on a corrupted block.
int Churn(const std::string& name, uint64_t seed, int ops, std::atomic<uint64_t>* progress) {
  auto pool_r = Pool::Open(name);
  if (!pool_r.ok()) return 10;
  auto& pool = *pool_r;
  Rng rng(seed);
  struct Held { BlockId id; size_t n; uint64_t tag; };
  std::vector<Held> held;
  for (int op = 0; op < ops; ++op) {
    if (held.size() < 64 && rng.Below(2) == 0) {
      const size_t n = RandomSize(rng);
      auto b = pool->Allocate(n);
      if (!b.ok()) continue;  // full for now
      auto d = pool->Data(*b);
      if (!d.ok()) return 11;
      const uint64_t tag = seed << 32 | static_cast<uint64_t>(op);
      Stamp(*d, n, tag);
      held.push_back({*b, n, tag});
    } else if (!held.empty()) {
      const size_t k = rng.Below(held.size());
      auto d = pool->Data(held[k].id);
      if (!d.ok() || !Check(*d, held[k].n, held[k].tag)) return 1;
      if (!pool->Release(held[k].id).ok()) return 12;
      held[k] = held.back();
      held.pop_back();
    }
    if (progress) progress->fetch_add(1);
  }
  for (auto& h : held) {
    auto d = pool->Data(h.id);
    if (!d.ok() || !Check(*d, h.n, h.tag)) return 1;
    if (!pool->Release(h.id).ok()) return 12;
  }
  return 0;
}

TEST(PoolStressTest, ThreeProcessesRandomSizesNoOverlapFullCapacityAfter) {
  const std::string name = UniqueName("pstress");
  auto pool = Pool::Create(name, {.bytes = 2 << 20, .max_arenas = 8, .max_large_blocks = 64}).value();
  std::vector<pid_t> kids;
  for (uint64_t seed = 1; seed <= 3; ++seed) {
    kids.push_back(Spawn([&, seed] { return Churn(name, seed, 30'000, nullptr); }));
  }
  for (pid_t k : kids) EXPECT_EQ(Join(k), 0);
  PoolStats s = pool->Stats();
  EXPECT_EQ(s.blocks_in_use, 0u);
  EXPECT_EQ(s.large_in_use, 0u);
  EXPECT_GT(s.pages_assigned, 1u);
  pool.reset();
  Pool::Unlink(name).IgnoreError();
}

std::atomic<uint64_t>* SharedCounter() {
  void* p = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  return new (p) std::atomic<uint64_t>(0);
}

// Processes holding blocks (small and large) are killed; recovery returns everything.
uint64_t KillHolders(bool recover) {
  const std::string name = UniqueName("pkill");
  auto pool = Pool::Create(name, {.bytes = 4 << 20}).value();
  std::atomic<uint64_t>* ready = SharedCounter();
  std::vector<pid_t> kids;
  for (int k = 0; k < 3; ++k) {
    kids.push_back(Spawn([&] {
      auto p = Pool::Open(name).value();
      for (int i = 0; i < 50; ++i) (void)p->Allocate(100 + i * 700);
      (void)p->Allocate(200000);  // a large block too
      ready->fetch_add(1);
      for (;;) ::pause();
      return 0;
    }));
  }
  EXPECT_TRUE(weft::testing::WaitFor([&] { return ready->load() >= 3; }, 0));
  EXPECT_EQ(pool->Stats().blocks_in_use, 150u);
  for (pid_t k : kids) {
    ::kill(k, SIGKILL);
    Join(k);
  }
  if (recover) EXPECT_EQ(pool->RecoverDead(), 3u);
  PoolStats s = pool->Stats();
  pool.reset();
  Pool::Unlink(name).IgnoreError();
  return s.blocks_in_use + s.large_in_use;
}

TEST(PoolCrashTest, KilledHoldersBlocksComeBack) { EXPECT_EQ(KillHolders(true), 0u); }

TEST(PoolCrashTest, NegativeControlWithoutRecoveryBlocksStayHeld) {
  EXPECT_EQ(KillHolders(false), 153u);
}

// Allocating processes are killed at random instructions, many times. After each kill and
// recovery, a survivor's blocks are intact and no dead process holds anything; at the end
// the pool is back at full capacity.
TEST(PoolCrashTest, AllocatorsKilledAtRandomPoints) {
  const std::string name = UniqueName("pkill");
  auto pool = Pool::Create(name, {.bytes = 4 << 20, .max_large_blocks = 32}).value();
  // The survivor: blocks it holds throughout, checked after every recovery.
  std::vector<std::pair<BlockId, size_t>> mine;
  for (size_t i = 0; i < 20; ++i) {
    const size_t n = 64 + i * 3000;
    auto b = pool->Allocate(n);
    ASSERT_TRUE(b.ok());
    Stamp(*pool->Data(*b), n, 777 + i);
    mine.emplace_back(*b, n);
  }
  Rng rng(5);
  std::atomic<uint64_t>* progress = SharedCounter();
  for (int round = 0; round < 30; ++round) {
    const uint64_t before = progress->load();
    pid_t k = Spawn([&] { return Churn(name, 100 + round, 1'000'000, progress); });
    const uint64_t target = before + 100 + rng.Below(3000);
    int status = 0;
    if (!weft::testing::WaitFor([&] { return progress->load() >= target; }, k, 60, &status)) {
      FAIL() << "round " << round << ": the allocating child stopped early, exit "
             << (WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    }
    ::kill(k, SIGKILL);
    EXPECT_EQ(Join(k), 128 + SIGKILL);
    EXPECT_EQ(pool->RecoverDead(), 1u);
    for (size_t i = 0; i < mine.size(); ++i) {
      ASSERT_TRUE(Check(*pool->Data(mine[i].first), mine[i].second, 777 + i)) << "round " << round;
    }
    PoolStats s = pool->Stats();
    EXPECT_EQ(s.blocks_in_use, mine.size()) << "round " << round;
    EXPECT_EQ(s.large_in_use, 0u);
  }
  for (auto& [b, n] : mine) ASSERT_TRUE(pool->Release(b).ok());
  EXPECT_EQ(pool->Stats().blocks_in_use, 0u);
  pool.reset();
  Pool::Unlink(name).IgnoreError();
}

}  // namespace
}  // namespace weft::shm
