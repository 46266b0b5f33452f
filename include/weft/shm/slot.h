// Slots: a role or membership in shared memory held by one process, claimed and released with
// CAS on an owner word, taken over from a dead holder. Used by channels (producer and consumer
// roles), pools (holder slots), topics (publishers and subscribers) and the bus (group
// members). Thread rule: any thread; the words are shared memory (docs/formats/segment.md).
//
// Owner word: state (bits 56..63), epoch (bits 32..55), pid (bits 0..31). A claim goes
// empty/closed/dead-held -> claiming (epoch + 1) -> attached, with the start time written in
// between, so that a reader who sees "attached" with acquire also sees the right start time.
#pragma once

#include <atomic>
#include <cstdint>

#include "weft/core/status.h"
#include "weft/shm/process.h"

namespace weft::shm {

enum SlotState : uint32_t { kSlotEmpty = 0, kSlotClaiming = 1, kSlotAttached = 2, kSlotClosed = 3 };

struct alignas(64) Slot {
  uint64_t owner;        // atomic: see above
  uint64_t start_ticks;  // the owner's start time; valid while owner says kSlotAttached
};
static_assert(sizeof(Slot) == 64, "a slot fills one cache line");

inline uint64_t PackOwner(uint32_t state, uint32_t epoch, int32_t pid) {
  return (uint64_t{state} << 56) | (uint64_t{epoch & 0xFFFFFFu} << 32) | uint32_t(pid);
}
inline uint32_t OwnerState(uint64_t w) { return static_cast<uint32_t>(w >> 56); }
inline uint32_t OwnerEpoch(uint64_t w) { return static_cast<uint32_t>(w >> 32) & 0xFFFFFFu; }
inline int32_t OwnerPid(uint64_t w) { return static_cast<int32_t>(w & 0xFFFFFFFFu); }

// A consistent reading of a slot: the start time belongs to the same claim as the owner word.
struct SlotView {
  uint64_t word = 0;
  uint32_t state = kSlotEmpty;
  uint32_t epoch = 0;
  ProcessIdentity who;  // start_ticks is 0 while claiming
};
SlotView ReadSlot(const Slot& slot);

// True if the slot is claiming or attached and its holder is gone.
bool HolderGone(const SlotView& view);

// Claims `slot` for this process if it is empty, closed, or held by a process that is gone.
// Returns the new epoch; kBusy (with the holder's pid in the message) if a live process holds
// it. The caller initializes what the slot guards, then calls FinishClaim.
Result<uint32_t> BeginClaim(Slot& slot, const char* what);
// Publishes the claim (release): the slot reads as attached from now on.
void FinishClaim(Slot& slot, uint32_t epoch);
// Sets `state` (closed or empty) if this process still holds the slot at `epoch`.
bool ReleaseSlot(Slot& slot, uint32_t epoch, uint32_t state);

}  // namespace weft::shm
