// The channel's shared-memory layout, format v1 (docs/formats/channel.md). Internal to shm.
//
// Every field that two processes touch is accessed through std::atomic_ref; each cache line
// has a single writer where that is possible (noted per struct).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "weft/core/status.h"
#include "weft/shm/slot.h"
#include "weft/shm/segment.h"

namespace weft::shm::internal {

inline constexpr uint32_t kChannelLayoutVersion = 1;
inline constexpr size_t kCacheLine = 64;
inline constexpr size_t kDataOffset = 4096;
inline constexpr size_t kRecordHeader = 8;
inline constexpr size_t kMinCapacity = 64;
inline constexpr uint64_t kNoHold = ~uint64_t{0};
inline constexpr uint32_t kFlagPad = 1;  // record header flag: filler up to the end of the ring
// Record header flags bits 8..15: 8-byte words between the header and the payload, so that
// payloads of kAlignedPayloadMin bytes or more start on a 64-byte boundary.
inline constexpr uint32_t kMaxGapWords = 7;
inline constexpr uint64_t kAlignedPayloadMin = 4096;
inline constexpr uint64_t kPayloadAlign = 64;
// Bytes a record may add before its payload: the header plus the largest gap.
inline constexpr uint64_t kMaxRecordOverhead = kRecordHeader + 8 * kMaxGapWords;

// Written once by the creator before Publish.
struct alignas(kCacheLine) ChannelConfig {
  uint64_t capacity;    // data bytes, multiple of 8
  uint64_t max_record;  // largest payload; align8(8 + max_record) <= capacity / 2
  uint32_t overflow;    // Overflow
  uint32_t reserved0;
  uint64_t data_offset;  // kDataOffset
};

// One per role (see slot.h). Written by whoever claims or closes the role (rarely).
using EndpointSlot = Slot;

// Written by the producer only.
struct alignas(kCacheLine) ProducerCursor {
  uint64_t write_pos;  // absolute; every record below it is committed
};

// Written by the consumer (and, in drop-oldest mode, CAS'd by the producer as well).
struct alignas(kCacheLine) ConsumerCursor {
  uint64_t read_pos;  // absolute; block mode: everything below is released
                      // drop-oldest mode: everything below is claimed or dropped
  uint64_t hold;      // drop-oldest mode: start of the oldest held record, or kNoHold
};

// Per side: set by the side that sleeps; read by the other side after it publishes.
struct alignas(kCacheLine) WaitFlags {
  uint32_t sleeping;    // 1 while this side may be in FutexWait
  uint32_t bell_armed;  // 1 while this side waits on its pollable descriptor
};

// Per side, written by that side only (relaxed); read by tools.
struct alignas(kCacheLine) SideStats {
  uint64_t records;
  uint64_t bytes;
  uint64_t spins;   // waits that ended while spinning
  uint64_t sleeps;  // futex waits
  uint64_t wakes;   // futex wakes sent to the other side
  uint64_t bells;   // doorbell datagrams sent to the other side
  uint64_t drops_newest;
  uint64_t drops_oldest;
  uint64_t sleep_timeouts;  // futex sleeps that ended by their time limit, not a wake
};

struct ChannelLayout {
  SegmentHeader segment;
  uint8_t pad0[192 - sizeof(SegmentHeader)];
  ChannelConfig config;
  EndpointSlot slots[2];  // indexed by Role
  ProducerCursor producer;
  ConsumerCursor consumer;
  WaitFlags wait[2];  // indexed by Role
  SideStats stats[2];  // indexed by Role
};

static_assert(std::is_trivially_copyable_v<ChannelLayout>, "shared structs are trivially copyable");
static_assert(offsetof(ChannelLayout, config) == 192, "channel format v1 layout");
static_assert(offsetof(ChannelLayout, slots) == 256, "channel format v1 layout");
static_assert(offsetof(ChannelLayout, producer) == 384, "channel format v1 layout");
static_assert(offsetof(ChannelLayout, consumer) == 448, "channel format v1 layout");
static_assert(offsetof(ChannelLayout, wait) == 512, "channel format v1 layout");
static_assert(offsetof(ChannelLayout, stats) == 640, "channel format v1 layout");
static_assert(sizeof(SideStats) == 128, "channel format v1 layout");
static_assert(sizeof(ChannelLayout) == 896, "channel format v1 layout");
static_assert(sizeof(ChannelLayout) <= kDataOffset, "layout must fit before the data area");

inline constexpr uint64_t Align8(uint64_t n) { return (n + 7) & ~uint64_t{7}; }
inline constexpr uint32_t GapWords(uint32_t flags) { return (flags >> 8) & 0xFFu; }
inline constexpr uint64_t PayloadOffset(uint32_t flags) { return kRecordHeader + 8 * GapWords(flags); }
// Bytes a record with this header occupies in the ring.
inline constexpr uint64_t RecordSize(uint32_t length, uint32_t flags) {
  return (flags & kFlagPad) ? kRecordHeader + length : Align8(PayloadOffset(flags) + length);
}
// Gap (in words) that puts the payload of a record starting at ring offset `off` on a
// 64-byte boundary (the ring itself starts page-aligned).
inline constexpr uint32_t AlignGapWords(uint64_t off) {
  return static_cast<uint32_t>(((kPayloadAlign - (off + kRecordHeader) % kPayloadAlign) % kPayloadAlign) / 8);
}

// Checks the segment header and the channel config of a mapped segment of `size` bytes.
// Reads nothing outside [bytes, bytes + size). Fuzzed.
Status ValidateChannel(const void* bytes, size_t size);
// Checks a copy of a channel's config against the size of its segment.
Status ValidateChannelConfig(const ChannelConfig& c, size_t size);

// Test hooks, off in normal use. They let tests prove that their checks can fail.
struct TestHooks {
  std::atomic<bool> ignore_peer_death{false};  // a dead peer is reported as alive
  std::atomic<bool> publish_stops_after_grant{false};  // topics: simulate a death mid-publish
  std::atomic<bool> drop_stops_after_cas{false};       // topics: simulate a death mid-drop
};
TestHooks& Hooks();

template <typename T>
inline std::atomic_ref<T> Atomic(T& v) {
  return std::atomic_ref<T>(v);
}

}  // namespace weft::shm::internal
