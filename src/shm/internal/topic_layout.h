// The topic's shared-memory layout, format v3 (docs/formats/topic.md). Internal to shm.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "weft/shm/slot.h"
#include "weft/core/status.h"
#include "weft/shm/segment.h"

namespace weft::shm::internal {

inline constexpr uint32_t kTopicLayoutVersion = 3;  // 3: on_full numbered as weft::Overflow
inline constexpr uint32_t kMaxTopicHistory = 64;

struct alignas(64) TopicConfig {
  uint32_t max_publishers;
  uint32_t max_subscribers;
  uint32_t queue_depth;  // power of two
  uint32_t history;
  uint64_t pubs_offset;   // PublisherRecord per publisher
  uint64_t pub_stride;    // bytes per PublisherRecord (with its history)
  uint64_t subs_offset;   // SubscriberRecord per subscriber
  uint64_t rings_offset;  // Ring per (publisher, subscriber), publisher-major
  uint64_t ring_stride;   // bytes per Ring (with its entries)
};

// One sample in a ring or a history: the block, its size, and who it was granted to.
struct SampleEntry {
  uint64_t block;
  uint64_t size;
  uint64_t seq;
  uint64_t pool_slot;  // the subscriber's pool holder slot the hold was granted to
};

struct alignas(64) PublisherState {
  uint64_t seq;            // samples published
  uint64_t history_count;  // samples ever put in the history ring
  // A publish in progress, written before its holds are granted and cleared once its entries
  // are visible: if the publisher dies between, whoever takes its slot revokes the holds
  // whose entries never became visible.
  uint64_t pending_block;
  uint64_t pending_bits;   // pool holder bits granted (0: nothing pending)
  uint64_t pending_seq;
};

// Followed in memory by `history` SampleEntry.
struct PublisherRecord {
  Slot slot;
  PublisherState state;
};

struct alignas(64) SubscriberState {
  uint32_t pool_slot;  // the subscriber's holder slot in the topic's pool
  uint32_t on_full;    // OnFull
  uint32_t bell_armed; // 1 while the subscriber waits on its pollable descriptor
  uint32_t pub_waiting; // 1 while a publisher sleeps on TopicWake::space for room in our queue
  uint64_t drops_newest;
  uint64_t drops_oldest;
  uint64_t taken;
};

struct SubscriberRecord {
  Slot slot;
  SubscriberState state;
};

// Followed in memory by `queue_depth` SampleEntry.
//
// `head` and `dropped` change together, with one 16-byte compare-and-swap: a subscriber's take
// advances head and keeps `dropped`; a publisher's drop-oldest advances head and records the
// dropped entry's hold in `dropped`, to be revoked. Whoever then clears `dropped` (with the
// same CAS) revokes that hold: the publisher right after its drop or, if it died in between,
// the subscriber or the publisher's successor. So a kill between the drop and the revoke leaks
// nothing, and no hold is revoked twice.
struct Ring {
  alignas(64) uint64_t head;  // next entry to take
  uint64_t dropped;           // 0, or DropRecord(block, pool slot) awaiting its revoke
  alignas(64) uint64_t tail;  // next entry to write; the publisher only
};

// A dropped entry's hold: the block and the pool holder slot it was granted to. Block ids use
// bits 0..49 (small) or bit 63 and 0..39 (large), so bits 56..61 carry the slot and 62 marks
// the record as present.
inline constexpr uint64_t kDropPresent = uint64_t{1} << 62;
inline uint64_t DropRecord(uint64_t block, uint64_t pool_slot) { return block | pool_slot << 56 | kDropPresent; }
inline uint64_t DropBlock(uint64_t record) { return record & ~(uint64_t{0x7F} << 56); }
inline int DropSlot(uint64_t record) { return static_cast<int>(record >> 56 & 63); }

// One wake-up word for the whole topic: a publish makes at most one system call, however
// many subscribers sleep, and none while the sleepers it woke have not yet run. A second word
// wakes publishers waiting for room in a full queue.
struct alignas(64) TopicWake {
  uint32_t events;    // futex word: bumped by every publish
  uint32_t sleepers;  // subscribers that went to sleep on `events` since the last wake
  uint32_t space;     // futex word: bumped when a subscriber has emptied half of a full queue
  uint32_t fail_subscribers;  // subscribers with policy fail ever attached (publishers check
                              // queues before publishing only if not 0; never decremented)
};

struct TopicLayout {
  SegmentHeader segment;
  uint8_t pad0[192 - sizeof(SegmentHeader)];
  TopicConfig config;
  TopicWake wake;
};

static_assert(std::is_trivially_copyable_v<TopicLayout>, "shared structs are trivially copyable");
static_assert(offsetof(TopicLayout, config) == 192, "topic format v3 layout");
static_assert(sizeof(TopicConfig) == 64, "topic format v3 layout");
static_assert(offsetof(TopicLayout, wake) == 256 && sizeof(TopicLayout) == 320, "topic format v3 layout");
static_assert(sizeof(SampleEntry) == 32, "topic format v3 layout");
static_assert(sizeof(PublisherRecord) == 128 && sizeof(SubscriberRecord) == 128, "topic format v3 layout");
static_assert(sizeof(Ring) == 128, "topic format v3 layout");

// Checks the segment header and topic config of a mapped segment. Fuzzed.
Status ValidateTopic(const void* bytes, size_t size);
// Checks a copy of a topic's config against the size of its segment.
Status ValidateTopicConfig(const TopicConfig& c, size_t size);

}  // namespace weft::shm::internal
