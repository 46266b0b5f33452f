// The pool's shared-memory layout, format v1 (docs/formats/pool.md). Internal to shm.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "weft/shm/slot.h"
#include "weft/core/status.h"
#include "weft/shm/segment.h"

namespace weft::shm::internal {

inline constexpr uint32_t kPoolLayoutVersion = 1;
inline constexpr uint32_t kBlockLayoutVersion = 1;
inline constexpr uint64_t kPoolPageSize = 64 * 1024;
inline constexpr uint64_t kUnit = 64;                              // bytes per mask word
inline constexpr uint64_t kUnitsPerPage = kPoolPageSize / kUnit;   // 1024
inline constexpr uint64_t kLargeBit = uint64_t{1} << 63;           // BlockId of a large block
inline constexpr uint64_t kLargeDataOffset = 4096;                 // in a large block's segment

// Written once by the creator.
struct alignas(64) PoolConfig {
  uint64_t page_size;        // kPoolPageSize
  uint64_t arena_pages;      // pages per arena
  uint64_t max_arenas;
  uint64_t arenas_offset;    // ArenaEntry per arena
  uint64_t large_offset;     // LargeEntry per large block
  uint64_t large_count;
  uint64_t max_block;
  uint64_t reserved;
};

// An arena: a segment "<pool>.A<index>" holding arena_pages pages of small blocks, their
// page words and their holder masks. Created on demand.
struct alignas(64) ArenaEntry {
  uint64_t state;  // kArenaEmpty, kArenaReady, or kArenaCreating | pid of the creator
};
inline constexpr uint64_t kArenaEmpty = 0;
inline constexpr uint64_t kArenaReady = 1;
inline constexpr uint64_t kArenaCreating = uint64_t{1} << 63;

// Inside an arena segment (kind 4, "block"): page words at 4096, then masks, then data.
inline constexpr uint64_t kArenaPagesOffset = 4096;
inline uint64_t ArenaMasksOffset(uint64_t pages) { return (kArenaPagesOffset + pages * 8 + 4095) / 4096 * 4096; }
inline uint64_t ArenaDataOffset(uint64_t pages) {
  return (ArenaMasksOffset(pages) + pages * kUnitsPerPage * 8 + 4095) / 4096 * 4096;
}
inline uint64_t ArenaBytes(uint64_t pages) { return ArenaDataOffset(pages) + pages * kPoolPageSize; }

// A block above one page, kept in its own segment "<pool>.L<serial>".
// A freed large block keeps its segment for reuse by a later request of a similar size.
struct alignas(64) LargeEntry {
  uint64_t mask;      // holder bits; 0: free
  uint64_t size;      // requested bytes
  uint64_t serial;    // names the segment
  uint64_t capacity;  // data bytes of the segment; 0: no segment
};

struct PoolLayout {
  SegmentHeader segment;
  uint8_t pad0[192 - sizeof(SegmentHeader)];
  PoolConfig config;
  alignas(64) uint64_t next_serial;  // fetch_add by large allocations
  Slot holders[64];                  // bit i of every mask belongs to holders[i]
};

static_assert(std::is_trivially_copyable_v<PoolLayout>, "shared structs are trivially copyable");
static_assert(offsetof(PoolLayout, config) == 192, "pool format v1 layout");
static_assert(offsetof(PoolLayout, next_serial) == 256, "pool format v1 layout");
static_assert(offsetof(PoolLayout, holders) == 320, "pool format v1 layout");
static_assert(sizeof(PoolLayout) == 4416, "pool format v1 layout");
static_assert(sizeof(LargeEntry) == 64 && sizeof(ArenaEntry) == 64, "pool format v1 layout");

// Small block ids: arena << kArenaShift | 64-byte unit index within the arena.
inline constexpr int kArenaShift = 40;

inline uint64_t PageClass(uint64_t page_word) { return page_word >> 32; }  // class + 1; 0: none
// Set by an allocator that found no free block in the page; cleared by whoever frees one.
// Only a hint for choosing pages: a page flagged full is still searched before giving up.
inline constexpr uint64_t kPageFull = 1;
// Set, with the pid of the process doing it in bits 8..39, while a page whose blocks all look
// free is being returned to the unassigned state (Pool::ReclaimPage).
inline constexpr uint64_t kPageClosing = 2;
inline uint64_t ClosingWord(uint64_t cls1, int32_t pid) {
  return cls1 << 32 | (uint64_t{static_cast<uint32_t>(pid)} & 0xFFFFFF) << 8 | kPageClosing;
}
inline int32_t PageCloser(uint64_t page_word) { return static_cast<int32_t>(page_word >> 8 & 0xFFFFFF); }

// Checks the segment header and the pool config of a mapped segment of `size` bytes. Reads
// nothing outside [bytes, bytes + size). Fuzzed.
Status ValidatePool(const void* bytes, size_t size);
// Checks a copy of a pool's config against the size of its segment.
Status ValidatePoolConfig(const PoolConfig& c, size_t size);
// Checks an arena segment against the pool's arena size.
Status ValidateArena(const void* bytes, size_t size, uint64_t arena_pages);

}  // namespace weft::shm::internal
