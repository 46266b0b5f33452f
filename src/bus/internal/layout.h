// The bus's memory: a header, the group table, and one ring per shard. The same bytes serve the
// memory backend (an anonymous mapping of this process) and, with the segment header in front,
// the shm backend. Format: docs/formats/bus.md. Internal to bus.
//
// A shard is a ring of `shard_bytes` (a power of two) holding records at increasing byte
// positions; a record at position p lives at p mod shard_bytes and never wraps (a pad record
// fills the end of the ring instead). Positions only grow: a position names one record for
// ever. Producers claim space with a compare-and-swap on `tail`, write the record, then publish
// it by storing its tag (p + 1). Space below `oldest` is free; producers move `oldest` forward
// over published records that every group has committed (or, under drop_oldest, that no group
// holds), so no record is overwritten while anyone may read it.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "weft/core/pair.h"
#include "weft/core/status.h"
#include "weft/shm/process.h"
#include "weft/shm/slot.h"

namespace weft::bus::internal {

template <typename T>
std::atomic_ref<T> A(T& v) {
  return std::atomic_ref<T>(v);
}

inline constexpr uint32_t kLayoutVersion = 1;
inline constexpr uint32_t kMaxShards = 256;
inline constexpr uint32_t kMaxGroups = 16;
inline constexpr uint32_t kMaxMembers = 16;     // per group
inline constexpr uint32_t kMaxGroupName = 63;   // bytes, without the NUL
inline constexpr uint32_t kMaxProducers = 64;   // producing threads of shm: buses at a time
inline constexpr uint64_t kMinShardBytes = 4096;
inline constexpr uint64_t kRecordAlign = 16;

// ---- records ---------------------------------------------------------------------------------

enum RecordFlags : uint16_t {
  kRecordPad = 1,        // no event: skip its bytes (the ring's end, or a dead producer's claim)
  kRecordTimestamp = 2,  // an int64 wall-clock time (ns) precedes the key
};

struct RecordHeader {
  uint64_t tag;         // position + 1 once the record is complete (release); anything else: not yet
  uint32_t length;      // bytes after the header: [timestamp] key data (pads: the pad's size - 16)
  uint16_t key_length;  // bytes of key (0: no key)
  uint16_t flags;       // RecordFlags
};
static_assert(sizeof(RecordHeader) == 16 && std::is_trivially_copyable_v<RecordHeader>);

inline uint64_t RecordBytes(uint64_t length) {
  return (sizeof(RecordHeader) + length + kRecordAlign - 1) & ~(kRecordAlign - 1);
}

// ---- shards ----------------------------------------------------------------------------------

struct alignas(64) ShardState {
  // Line 0: producers.
  uint64_t tail;      // next position to claim (CAS)
  uint64_t ingested;  // events claimed (added once per claim, right after it)
  uint8_t pad0[48];
  // Line 1: reclaiming.
  uint64_t oldest;    // positions below are free for reuse (CAS, forward only)
  uint8_t pad1[56];
  // Line 2: producers waiting for space (block), and drop counters.
  uint32_t space_wake;      // event count: bumped by commits that free space
  uint32_t space_sleepers;  // producers asleep on it
  uint32_t reserved0;
  uint32_t reserved1;
  uint64_t dropped_newest;  // events refused (drop_newest) or failed (fail)
  uint64_t dropped_oldest;  // events taken from groups that had not read them (drop_oldest)
  uint64_t lost_events;     // events of producers that died between their claim and its publish
  uint8_t pad2[24];
};
static_assert(sizeof(ShardState) == 192 && offsetof(ShardState, oldest) == 64 &&
              offsetof(ShardState, space_wake) == 128 && offsetof(ShardState, dropped_newest) == 144 &&
              std::is_trivially_copyable_v<ShardState>);

// ---- groups ----------------------------------------------------------------------------------

enum GroupState : uint32_t { kGroupFree = 0, kGroupCreating = 1, kGroupActive = 2 };

// One group's cursors in one shard. `cursors` is (next, committed): the next position to
// deliver and the position below which everything is processed, committed <= next, changed
// together (weft/core/pair.h) wherever a producer may change them too (drop_oldest), so that
// nobody ever sees one moved without the other.
struct alignas(64) GroupShard {
  WordPair cursors;    // first: next; second: committed
  uint64_t owner;      // member index + 1 and its slot epoch << 8; 0: nobody
  uint64_t delivered;  // events delivered (the owner's)
  uint64_t dropped;    // events this group lost to drop_oldest
  uint8_t pad[24];
};
static_assert(sizeof(GroupShard) == 64 && std::is_trivially_copyable_v<GroupShard>);

// A hint for the owner (drop_oldest: where producers moved it); Take checks it with the pair.
inline uint64_t NextOf(GroupShard& c) { return A(c.cursors.first).load(std::memory_order_acquire); }

struct alignas(64) GroupRecord {
  uint32_t state;       // GroupState
  uint32_t name_length;
  char name[kMaxGroupName + 1];
  uint32_t generation;  // bumped when a member joins or leaves (a wake for the members)
  uint32_t wake;        // event count: bumped by producers when members sleep
  uint32_t sleepers;
  int32_t creator_pid;  // while being created: who creates it (a dead creator's entry is freed)
  uint64_t creator_start_ticks;
  uint32_t bells;       // bit i: member i armed its doorbell (WaitFd) and wants a ring
  uint8_t pad[28];
  shm::Slot members[kMaxMembers];
};
static_assert(sizeof(GroupRecord) == 1152 && offsetof(GroupRecord, generation) == 72 &&
              offsetof(GroupRecord, creator_start_ticks) == 88 && offsetof(GroupRecord, bells) == 96 &&
              offsetof(GroupRecord, members) == 128 && std::is_trivially_copyable_v<GroupRecord>);

// ---- producers (shm:) -------------------------------------------------------------------------

// A producing thread of a shm: bus: its process holds the slot, and before each claim of
// space it writes what it is about to claim. If it dies before publishing, whoever finds the
// claim unpublished and the holder gone turns the rest of the claim into pads.
struct alignas(64) ProducerSlot {
  shm::Slot slot;
  uint64_t intent_shard;   // shard + 1 of the claim in flight; 0: none
  uint64_t intent_pos;     // the claim is [intent_pos, intent_end)
  uint64_t intent_end;
  uint64_t intent_events;  // events in it
  uint8_t pad[32];
};
static_assert(sizeof(ProducerSlot) == 128 && std::is_trivially_copyable_v<ProducerSlot>);

// ---- the whole -------------------------------------------------------------------------------

struct alignas(64) BusHeader {
  uint32_t layout_version;  // kLayoutVersion
  uint32_t shards;
  uint64_t shard_bytes;
  uint32_t max_event;
  uint32_t backpressure;    // weft::Overflow
  uint32_t flags;           // kBusTimestamps
  uint32_t groups_generation;  // bumped when a group is created or deleted
  uint64_t bytes;           // the whole region
  uint32_t groups_active;   // bit g: group g is active (producers wake and respect it)
  uint32_t reserved;
  uint64_t id;              // random at creation: names the members' doorbells
  uint8_t pad[8];
};
static_assert(sizeof(BusHeader) == 64 && offsetof(BusHeader, groups_active) == 40 && offsetof(BusHeader, id) == 48 &&
              std::is_trivially_copyable_v<BusHeader>);

// kBusLogControl: the control segment of a log: bus (groups and wake-ups; its rings are unused).
enum BusFlags : uint32_t { kBusTimestamps = 1, kBusLogControl = 2 };

// In a shm: segment the layout starts one page in (after the segment header), so that the
// rings stay page-aligned.
inline constexpr size_t kSegmentLayoutOffset = 4096;

// Where everything is, from the header's geometry (checked before use).
struct Geometry {
  uint32_t shards = 0;
  uint64_t shard_bytes = 0;
  uint32_t max_event = 0;     // copied from the checked header (never re-read from shared memory)
  size_t groups_at = 0;       // GroupRecord[kMaxGroups]
  size_t producers_at = 0;    // ProducerSlot[kMaxProducers]
  size_t cursors_at = 0;      // GroupShard[kMaxGroups][shards]
  size_t states_at = 0;       // ShardState[shards]
  size_t rings_at = 0;        // shards rings of shard_bytes, page-aligned
  size_t total = 0;
};

inline Geometry GeometryOf(uint32_t shards, uint64_t shard_bytes) {
  Geometry g;
  g.shards = shards;
  g.shard_bytes = shard_bytes;
  size_t at = sizeof(BusHeader);
  g.groups_at = at;
  at += sizeof(GroupRecord) * kMaxGroups;
  g.producers_at = at;
  at += sizeof(ProducerSlot) * kMaxProducers;
  g.cursors_at = at;
  at += sizeof(GroupShard) * kMaxGroups * shards;
  g.states_at = at;
  at += sizeof(ShardState) * shards;
  at = (at + 4095) & ~size_t{4095};
  g.rings_at = at;
  g.total = at + static_cast<size_t>(shard_bytes) * shards;
  return g;
}

// Typed access to a mapped region laid out by `geometry`.
struct View {
  uint8_t* base = nullptr;
  Geometry geo;

  BusHeader& header() const { return *reinterpret_cast<BusHeader*>(base); }
  GroupRecord& group(uint32_t g) const { return reinterpret_cast<GroupRecord*>(base + geo.groups_at)[g]; }
  ProducerSlot& producer(uint32_t p) const { return reinterpret_cast<ProducerSlot*>(base + geo.producers_at)[p]; }
  GroupShard& cursor(uint32_t g, uint32_t s) const {
    return reinterpret_cast<GroupShard*>(base + geo.cursors_at)[g * geo.shards + s];
  }
  ShardState& shard(uint32_t s) const { return reinterpret_cast<ShardState*>(base + geo.states_at)[s]; }
  uint8_t* ring(uint32_t s) const { return base + geo.rings_at + geo.shard_bytes * s; }
};

// Checks a layout header against the bytes it must fit in (geometry, version, options) before
// anything else in it is used; reads nothing outside [bytes, bytes + size). Fuzzed.
Status ValidateLayout(const void* bytes, size_t size);
// The same for a shm: segment (the layout at kSegmentLayoutOffset).
Status ValidateBusSegment(const void* bytes, size_t size);

}  // namespace weft::bus::internal
