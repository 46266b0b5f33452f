// Consumer groups in a mapped bus (internal/layout.h): finding or creating a group by name,
// membership through slots (weft/shm/slot.h: a member's death is seen by the others), and the
// assignment of shards to the live members. Shared by every backend whose groups live in
// shared memory. Internal to bus.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "layout.h"
#include "weft/bus/bus.h"
#include "weft/core/status.h"
#include "weft/core/wait.h"

namespace weft::bus::internal {

// Checks a group name: 1 to 63 characters from [A-Za-z0-9._-].
Status ValidateGroupName(std::string_view name);

// The index of group `name`, created (its cursors at the oldest held event or at the tail of
// each shard's ring, by `start`; or, given `start_at`, at start_at(shard)) if it does not
// exist. kResourceExhausted if the table is full.
Result<uint32_t> FindOrCreateGroup(const View& v, std::string_view name, Start start,
                                   const std::function<uint64_t(uint32_t)>& start_at = nullptr);

// After events were published: wakes the sleeping members of every group (only those that
// counted themselves asleep; no system call otherwise). One fence for everything published
// before it.
void WakeGroups(const View& v);

// The members that hold their slot and are alive, in slot order.
std::vector<uint32_t> LiveMembers(const View& v, uint32_t g);

// Marks the slots of dead members closed; true if it marked any (the caller then bumps the
// group's generation).
bool ReapDeadMembers(const View& v, uint32_t g);

// The owner word of member `index` at `epoch`, and whether the member an owner word names is
// gone (left, replaced or dead).
inline uint64_t OwnerWord(uint32_t index, uint32_t epoch) { return (uint64_t{epoch} << 8) | (index + 1); }
bool OwnerGone(const View& v, uint32_t g, uint64_t owner);

// The shards that member `rank` of `live` members reads: s with s % live == rank.
std::vector<uint32_t> AssignedShards(uint32_t shards, size_t live, size_t rank);

// Tells the members of group `g` that membership changed: bumps the generation and wakes them
// (their doorbells too).
void MembershipChanged(const View& v, uint32_t g);

// The doorbell of member `index` at `epoch` of group g (weft/shm/doorbell.h).
std::string BellName(const View& v, uint32_t g, uint32_t index, uint32_t epoch);
// Rings the doorbells group g's members armed (and disarms them).
void RingBells(const View& v, uint32_t g);

inline EventCount GroupEvents(const View& v, uint32_t g) {
  GroupRecord& gr = v.group(g);
  return EventCount::Counter(&gr.wake, &gr.sleepers);
}

}  // namespace weft::bus::internal
