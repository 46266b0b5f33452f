// A shared-memory pool: blocks of 1 byte to gigabytes, allocated and freed by any number of
// processes at once, with no lock and no daemon, and reclaimed in full when a process dies.
// Layout: docs/formats/pool.md.
//
// Blocks up to one page (64 KiB) come from size classes (64 B, 128 B, ... 64 KiB) carved out of
// pages that are given to a class on first need; pages live in arenas (segments of `bytes`
// each) added when the ones there are full. Larger blocks get a dedicated segment each, kept
// after the block is freed for the next large request of a similar size.
// Every block has a holder mask: one bit per process attached to the pool. A process holds a
// block while its bit is set; the block is free when no bit is. Allocation claims a free block
// with one compare-and-swap on its mask; nothing else is shared, so a process killed at any
// instruction leaves every block either free or marked with its bit, and RecoverDead clears
// the bits of dead processes.
//
// Thread rule: a Pool object is one attached process membership, used by one thread at a time
// (open one per thread for parallel allocation; up to 64 per pool).
// Ordering: bytes written into a block before it is passed to another process (through a
// channel, a topic, or any release/acquire pair) are visible to that process.
//
//   auto pool = Pool::OpenOrCreate("tensors", {.bytes = 256 << 20}).value();
//   BlockId b = pool->Allocate(4096).value();
//   Fill(pool->Data(b)); Send(b);           // another process: pool->Hold(b), read, Release
//   pool->Release(b);
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "weft/core/bytes.h"
#include "weft/core/status.h"
#include "weft/shm/segment.h"

namespace weft::shm {
namespace internal {
struct PoolLayout;
struct ArenaEntry;
struct LargeEntry;
}

// Names a block in a pool; the same value in every process.
using BlockId = uint64_t;

struct PoolOptions {
  size_t bytes = size_t{64} << 20;      // small-block memory per arena, in whole 64 KiB pages
  size_t max_arenas = 16;               // arenas the pool may grow to (1 to 1024)
  size_t max_large_blocks = 256;        // blocks above one page alive at once
  size_t max_block = size_t{4} << 30;   // the largest block the pool will ever give
};

struct PoolHolder {
  int slot = 0;
  int32_t pid = 0;
  bool alive = false;
  uint64_t blocks = 0;  // blocks whose mask has this holder's bit
};

struct PoolStats {
  size_t page_size = 0, arenas = 0, pages = 0, pages_assigned = 0;
  uint64_t blocks_in_use = 0, bytes_in_use = 0;  // exact: counted from the holder masks
  uint64_t large_in_use = 0, large_bytes = 0;
  std::vector<uint64_t> pages_per_class;  // index: class (64 B << i)
  std::vector<PoolHolder> holders;        // attached or dead-but-unrecovered holders
};

// This process's counters (not shared).
struct PoolLocalStats {
  uint64_t allocations = 0, releases = 0;
  uint64_t page_searches = 0;  // slow path: looking for a page with room
  uint64_t arenas_created = 0;
  uint64_t recoveries = 0;     // dead holders whose blocks this process released
};

class Pool {
 public:
  static constexpr size_t kPageSize = 64 * 1024;
  static constexpr size_t kMinBlock = 64;
  static constexpr int kClasses = 11;  // 64 B ... 64 KiB
  static constexpr int kMaxHolders = 64;
  // A freed large block's segment is kept for reuse up to this size, and removed above it.
  static constexpr size_t kKeepLargeBytes = size_t{256} << 20;

  // The pool's geometry as this process copied it out of shared memory at open, validated;
  // never re-read, so a scribbled shared config changes nothing here.
  struct Geometry {
    uint64_t arena_pages, max_arenas, arenas_offset, large_offset, large_count, max_block;
  };

  ~Pool();  // Close
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  // Creates pool `name` (kAlreadyExists if taken) and attaches.
  static Result<std::unique_ptr<Pool>> Create(std::string_view name, const PoolOptions& options);
  // Opens and attaches. kBusy if all 64 holder slots are held by live processes.
  static Result<std::unique_ptr<Pool>> Open(std::string_view name);
  // Opens, or creates if absent; safe when several processes race to do it.
  static Result<std::unique_ptr<Pool>> OpenOrCreate(std::string_view name, const PoolOptions& options);
  // Removes the pool's name and its dedicated large-block segments' names.
  static Status Unlink(std::string_view name);
  // Occupancy and holders of a pool, read without attaching (for tools).
  static Result<PoolStats> Snapshot(std::string_view name);

  // A block of at least n bytes held by this process; 64-byte aligned. kTooLarge at once if n
  // exceeds max_block; kWouldBlock if the pool has no room now (after recovering dead holders).
  Result<BlockId> Allocate(size_t n);
  // The block's bytes in this process. REQUIRES: this process holds it. Large blocks are mapped
  // on first use (kNotFound / kCorrupt if the id is bad).
  Result<MutableBytes> Data(BlockId id);
  // Adds a hold of this process on a block another process holds (for example one received
  // through a channel). kInvalidArgument if the block is free or the id is invalid.
  // *added (if given) says whether this process's bit was newly set (false: it already held
  // the block, and this hold is counted locally).
  Status Hold(BlockId id, bool* added = nullptr);
  // Hold, but only while one of `holder_bits` holds the block: how a server takes a block a
  // peer names, so that a peer can name only blocks it holds. kPermissionDenied otherwise.
  Status HoldIfHeldBy(BlockId id, uint64_t holder_bits, bool* added = nullptr);
  // True if holder `slot` is attached by the live process `pid` (checked against a pid the
  // kernel vouches for, such as SO_PEERCRED's).
  bool HolderIs(int slot, int32_t pid) const;
  // True if holder `slot` holds block `id` now (racy: a check, not a hold).
  bool HeldBy(BlockId id, int slot);
  // Drops one hold of this process; the block is free once no process holds it.
  Status Release(BlockId id);
  // Adds other holders' bits to a block this process holds: hands them a hold each (how a
  // publisher gives a sample to subscribers). `holder_bits`: bit i = holder slot i.
  // *already (if given) gets the bits that were set before: those holders gained nothing.
  Status Grant(BlockId id, uint64_t holder_bits, uint64_t* already = nullptr);
  // Drops holder `slot`'s hold on a block (for example a sample a subscriber never took).
  Status Revoke(BlockId id, int slot);
  // Releases every block held by processes that died; returns how many holders were recovered.
  size_t RecoverDead();
  // Removes the segments kept for reuse by freed large blocks; returns how many.
  size_t TrimLarge();
  // Releases this process's holds and leaves its slot. Idempotent.
  Status Close();

  PoolStats Stats() const;
  // Every block this process holds (a scan of the whole pool: for recovery, not hot paths).
  std::vector<BlockId> HeldBlocks();
  const PoolLocalStats& local_stats() const { return local_; }
  int holder_slot() const { return slot_; }
  const std::string& name() const { return segment_.name(); }
  // The size a request of n bytes is rounded up to (the block's usable size).
  static size_t BlockSizeFor(size_t n);

 private:
  struct Arena;  // this process's mapping of one arena

  Pool(Segment segment, const Geometry& geometry);
  Status Attach();
  void ClearHolder(int slot, uint64_t* freed);
  Result<BlockId> AllocateSmall(int cls);
  template <typename Visit>
  void ForEachBlock(PoolStats* s, Visit&& visit);
  Result<BlockId> AllocateLarge(size_t n);
  int64_t FindPage(int cls);
  bool ReclaimPage(Arena* arena, uint64_t p);
  size_t ReclaimEmptyPages();
  bool AddArena();
  Arena* MapArena(uint64_t index);
  Arena* AdoptArena(uint64_t index, Segment seg);
  uint64_t* SmallMask(BlockId id, uint64_t* block_bytes, Arena** arena);
  uint64_t* MaskOf(BlockId id);
  Status ClearBit(BlockId id, uint64_t bit);
  Status Damaged() const;
  bool TrimEntry(uint64_t i);
  void LargeFreed(uint64_t i);  // the kCorrupt of a pool whose memory was shrunk under it
  std::string ArenaName(uint64_t index) const;
  std::string LargeName(uint64_t serial) const;

  Segment segment_;
  Geometry config_;
  internal::PoolLayout* layout_ = nullptr;  // borrowed from segment_
  internal::ArenaEntry* arena_entries_ = nullptr;
  internal::LargeEntry* large_entries_ = nullptr;
  uint64_t arena_pages_ = 0;
  uint64_t max_arenas_ = 0;
  std::vector<std::unique_ptr<Arena>> arenas_;  // by index; null until mapped here
  int slot_ = -1;
  uint32_t epoch_ = 0;
  uint64_t bit_ = 0;
  int64_t cur_page_[kClasses];  // arena * arena_pages + page, or -1
  uint32_t cursor_[kClasses];
  uint64_t page_scan_start_ = 0;
  std::unordered_map<BlockId, uint32_t> extra_holds_;  // holds beyond the first, per block
  std::unordered_map<uint64_t, Segment> large_maps_;   // serial -> mapping
  PoolLocalStats local_;
};

}  // namespace weft::shm
