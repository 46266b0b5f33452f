#include "weft/shm/pool.h"

#include <cstring>
#include <set>
#include <sys/mman.h>

#include <gtest/gtest.h>

#include "shm/internal/pool_layout.h"
#include "shm/test_util.h"

namespace weft::shm {
namespace {

using weft::testing::Join;
using weft::testing::Spawn;
using weft::testing::UniqueName;

struct PoolFixture {
  std::string name = UniqueName("pool");
  std::unique_ptr<Pool> pool;
  explicit PoolFixture(PoolOptions o = {.bytes = 4 << 20}) {
    auto r = Pool::Create(name, o);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    pool = std::move(r).value();
  }
  ~PoolFixture() {
    pool.reset();
    Pool::Unlink(name).IgnoreError();
  }
};

TEST(PoolTest, AllocatesEverySizeAlignedAndDistinct) {
  PoolFixture f;
  std::vector<std::pair<BlockId, size_t>> blocks;
  for (size_t n : {size_t{0}, size_t{1}, size_t{63}, size_t{64}, size_t{65}, size_t{1000}, size_t{4096},
                   size_t{65535}, size_t{65536}, size_t{65537}, size_t{3} << 20}) {
    auto b = f.pool->Allocate(n);
    ASSERT_TRUE(b.ok()) << n << ": " << b.status().ToString();
    auto d = f.pool->Data(*b);
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    EXPECT_GE(d->size(), n);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(d->data()) % 64, 0u);
    std::memset(d->data(), static_cast<int>(blocks.size() + 1), n);
    blocks.emplace_back(*b, n);
  }
  for (size_t i = 0; i < blocks.size(); ++i) {  // no block overwrote another
    auto d = f.pool->Data(blocks[i].first);
    for (size_t k = 0; k < blocks[i].second; ++k) ASSERT_EQ((*d)[k], i + 1) << i;
  }
  PoolStats s = f.pool->Stats();
  EXPECT_EQ(s.blocks_in_use, 9u);
  EXPECT_EQ(s.large_in_use, 2u);
  for (auto& [b, n] : blocks) ASSERT_TRUE(f.pool->Release(b).ok());
  s = f.pool->Stats();
  EXPECT_EQ(s.blocks_in_use, 0u);
  EXPECT_EQ(s.large_in_use, 0u);
  EXPECT_EQ(f.pool->Release(blocks[0].first).code(), Code::kInvalidArgument);  // not held
}

TEST(PoolTest, BlockSizesAreClasses) {
  EXPECT_EQ(Pool::BlockSizeFor(1), 64u);
  EXPECT_EQ(Pool::BlockSizeFor(64), 64u);
  EXPECT_EQ(Pool::BlockSizeFor(65), 128u);
  EXPECT_EQ(Pool::BlockSizeFor(40000), 65536u);
  EXPECT_EQ(Pool::BlockSizeFor(70000), 70000u);
}

TEST(PoolTest, TooLargeFailsAtOnceAndExhaustionIsWouldBlock) {
  PoolFixture f({.bytes = 128 << 10, .max_arenas = 1, .max_large_blocks = 1, .max_block = 1 << 20});
  EXPECT_EQ(f.pool->Allocate((1 << 20) + 1).status().code(), Code::kTooLarge);
  // 2 pages of 64 KiB: two 64 KiB blocks, then nothing.
  auto a = f.pool->Allocate(65536), b = f.pool->Allocate(65536);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(f.pool->Allocate(64).status().code(), Code::kWouldBlock);
  auto big = f.pool->Allocate(100000);
  ASSERT_TRUE(big.ok());
  EXPECT_EQ(f.pool->Allocate(100000).status().code(), Code::kWouldBlock);  // one large entry
  ASSERT_TRUE(f.pool->Release(*a).ok());
  EXPECT_TRUE(f.pool->Allocate(65536).ok());
}

TEST(PoolTest, GrowsByArenasWhenFull) {
  PoolFixture f({.bytes = 128 << 10, .max_arenas = 3});
  std::vector<BlockId> blocks;
  for (int i = 0; i < 6; ++i) {  // two 64 KiB blocks per arena
    auto b = f.pool->Allocate(65536);
    ASSERT_TRUE(b.ok()) << i << ": " << b.status().ToString();
    std::memset(f.pool->Data(*b)->data(), i, 65536);
    blocks.push_back(*b);
  }
  EXPECT_EQ(f.pool->Allocate(65536).status().code(), Code::kWouldBlock);
  PoolStats s = f.pool->Stats();
  EXPECT_EQ(s.arenas, 3u);
  EXPECT_EQ(s.blocks_in_use, 6u);
  for (int i = 0; i < 6; ++i) EXPECT_EQ((*f.pool->Data(blocks[i]))[65535], i);
  // Another process sees blocks in every arena.
  pid_t child = Spawn([&] {
    auto p = Pool::Open(f.name);
    if (!p.ok()) return 1;
    for (int i = 0; i < 6; ++i) {
      if (!(*p)->Hold(blocks[i]).ok() || (*(*p)->Data(blocks[i]))[100] != i) return 2;
      if (!(*p)->Release(blocks[i]).ok()) return 3;
    }
    return 0;
  });
  EXPECT_EQ(Join(child), 0);
  for (BlockId b : blocks) ASSERT_TRUE(f.pool->Release(b).ok());
  EXPECT_EQ(f.pool->Stats().blocks_in_use, 0u);
}

TEST(PoolTest, ArenaLeftHalfCreatedByADeadProcessIsRedone) {
  PoolFixture f({.bytes = 64 << 10, .max_arenas = 2});
  pid_t dead = Spawn([] { return 0; });
  ASSERT_EQ(Join(dead), 0);
  auto seg = Segment::Open(f.name, 2, 1);
  ASSERT_TRUE(seg.ok());
  auto* l = reinterpret_cast<internal::PoolLayout*>(seg->base());
  auto* arenas = reinterpret_cast<internal::ArenaEntry*>(seg->base() + l->config.arenas_offset);
  arenas[1].state = internal::kArenaCreating | static_cast<uint32_t>(dead);  // died creating it
  auto a = f.pool->Allocate(65536);  // fills arena 0
  auto b = f.pool->Allocate(65536);  // needs arena 1
  ASSERT_TRUE(a.ok() && b.ok()) << b.status().ToString();
  EXPECT_EQ(arenas[1].state, internal::kArenaReady);
  EXPECT_EQ(*b >> internal::kArenaShift, 1u);
  EXPECT_EQ(f.pool->local_stats().arenas_created, 2u);  // arena 0 at creation, then arena 1
}

TEST(PoolTest, FreedLargeBlocksKeepTheirSegmentForReuse) {
  PoolFixture f;
  auto a = f.pool->Allocate(1 << 20);
  ASSERT_TRUE(a.ok());
  std::memset(f.pool->Data(*a)->data(), 1, 1 << 20);
  ASSERT_TRUE(f.pool->Release(*a).ok());
  EXPECT_EQ(f.pool->Stats().large_in_use, 0u);
  auto b = f.pool->Allocate(900 << 10);  // fits the freed segment (n to 2n): reused
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(*b, *a);
  EXPECT_EQ(f.pool->Data(*b)->size(), 900u << 10);
  auto c = f.pool->Allocate(4 << 20);  // too big for it: a new segment elsewhere
  ASSERT_TRUE(c.ok());
  EXPECT_NE(*c, *a);
  ASSERT_TRUE(f.pool->Release(*b).ok());
  ASSERT_TRUE(f.pool->Release(*c).ok());
  EXPECT_EQ(f.pool->TrimLarge(), 2u);
  EXPECT_EQ(f.pool->TrimLarge(), 0u);
  for (const std::string& n : Segment::List()) EXPECT_EQ(n.find(f.name + ".L"), std::string::npos) << n;
}

TEST(PoolTest, FastPathTakesNoSharedSlowPath) {
  PoolFixture f;
  for (int i = 0; i < 200'000; ++i) {
    auto b = f.pool->Allocate(64);
    ASSERT_TRUE(b.ok());
    ASSERT_TRUE(f.pool->Release(*b).ok());
  }
  // One page search for the first block; after that each pair is one CAS and one fetch_and
  // on the block's own mask word.
  EXPECT_EQ(f.pool->local_stats().page_searches, 1u);
  EXPECT_EQ(f.pool->local_stats().allocations, 200'000u);
}

TEST(PoolTest, HoldsAcrossProcessesKeepTheBlock) {
  PoolFixture f;
  auto b = f.pool->Allocate(256);
  ASSERT_TRUE(b.ok());
  std::memcpy(f.pool->Data(*b)->data(), "shared", 7);
  const BlockId id = *b;
  auto* flag = static_cast<std::atomic<int>*>(
      ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  pid_t child = Spawn([&] {
    auto p = Pool::Open(f.name);
    if (!p.ok() || !(*p)->Hold(id).ok()) return 1;
    flag->store(1);
    while (flag->load() != 2) {
    }
    auto d = (*p)->Data(id);
    if (!d.ok() || std::strcmp(reinterpret_cast<char*>(d->data()), "shared") != 0) return 2;
    return (*p)->Release(id).ok() ? 0 : 3;
  });
  while (flag->load() != 1) {
  }
  ASSERT_TRUE(f.pool->Release(id).ok());  // the child still holds it
  EXPECT_EQ(f.pool->Stats().blocks_in_use, 1u);
  flag->store(2);
  EXPECT_EQ(Join(child), 0);
  EXPECT_EQ(f.pool->Stats().blocks_in_use, 0u);
  EXPECT_EQ(f.pool->Hold(id).code(), Code::kInvalidArgument);  // free blocks cannot be held
}

TEST(PoolTest, SeveralHoldsInOneProcessAreCounted) {
  PoolFixture f;
  auto b = f.pool->Allocate(64);
  ASSERT_TRUE(b.ok());
  ASSERT_TRUE(f.pool->Hold(*b).ok());
  ASSERT_TRUE(f.pool->Release(*b).ok());
  EXPECT_EQ(f.pool->Stats().blocks_in_use, 1u);
  ASSERT_TRUE(f.pool->Release(*b).ok());
  EXPECT_EQ(f.pool->Stats().blocks_in_use, 0u);
}

TEST(PoolTest, GrantAndRevokeHandHoldsToOtherHolders) {
  PoolFixture f;
  auto other = Pool::Open(f.name);
  ASSERT_TRUE(other.ok());
  const uint64_t other_bit = uint64_t{1} << (*other)->holder_slot();
  auto b = f.pool->Allocate(100);
  ASSERT_TRUE(b.ok());
  ASSERT_TRUE(f.pool->Grant(*b, other_bit).ok());
  ASSERT_TRUE(f.pool->Release(*b).ok());
  EXPECT_EQ(f.pool->Stats().blocks_in_use, 1u);  // the other holder has it now
  ASSERT_TRUE((*other)->Release(*b).ok());
  EXPECT_EQ(f.pool->Stats().blocks_in_use, 0u);
  EXPECT_EQ(f.pool->Grant(*b, other_bit).code(), Code::kInvalidArgument);  // not ours any more
  EXPECT_EQ(f.pool->Stats().blocks_in_use, 0u);
  auto c = f.pool->Allocate(1 << 20);  // large
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE(f.pool->Grant(*c, other_bit).ok());
  ASSERT_TRUE(f.pool->Revoke(*c, (*other)->holder_slot()).ok());
  EXPECT_EQ(f.pool->Revoke(*c, (*other)->holder_slot()).code(), Code::kInvalidArgument);
  ASSERT_TRUE(f.pool->Release(*c).ok());
  EXPECT_EQ(f.pool->Stats().large_in_use, 0u);
}

TEST(PoolTest, OpenOrCreateAndCloseReleaseEverything) {
  const std::string name = UniqueName("pool");
  auto a = Pool::OpenOrCreate(name, {.bytes = 1 << 20});
  auto b = Pool::OpenOrCreate(name, {.bytes = 1 << 20});
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE((*a)->holder_slot(), (*b)->holder_slot());
  ASSERT_TRUE((*b)->Allocate(64).ok());
  ASSERT_TRUE((*b)->Allocate(1 << 20).ok());
  ASSERT_TRUE((*b)->Close().ok());
  PoolStats s = (*a)->Stats();
  EXPECT_EQ(s.blocks_in_use + s.large_in_use, 0u);
  a->reset();
  ASSERT_TRUE(Pool::Unlink(name).ok());
}

TEST(PoolTest, BadIdsAndCorruptHeadersAreRejected) {
  PoolFixture f;
  EXPECT_EQ(f.pool->Release(12345678).code(), Code::kInvalidArgument);
  EXPECT_EQ(f.pool->Data(3).status().code(), Code::kInvalidArgument);  // unassigned page
  EXPECT_EQ(f.pool->Hold(internal::kLargeBit | 999999).code(), Code::kInvalidArgument);
  auto seg = Segment::Open(f.name, 2, 1);
  ASSERT_TRUE(seg.ok());
  auto* l = reinterpret_cast<internal::PoolLayout*>(seg->base());
  const uint64_t good = l->config.large_offset;
  l->config.large_offset = seg->size();  // the large-block table outside the segment
  Status s = Pool::Open(f.name).status();
  EXPECT_EQ(s.code(), Code::kCorrupt);
  l->config.large_offset = good;
  l->config.max_arenas = 5000;
  EXPECT_EQ(Pool::Open(f.name).status().code(), Code::kCorrupt);
  l->config.max_arenas = 16;
  l->config.page_size = 4096;
  EXPECT_EQ(Pool::Open(f.name).status().code(), Code::kCorrupt);
  l->config.page_size = internal::kPoolPageSize;
  EXPECT_TRUE(Pool::Open(f.name).ok());
  EXPECT_EQ(Pool::Create("bad/name", {}).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(Pool::Create(std::string(90, 'x'), {}).status().code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace weft::shm
