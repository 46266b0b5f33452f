// A member of a consumer group, written once for every backend whose groups live in a mapped
// bus layout (internal/layout.h: shm:, memory:, and the control segment of log:). Membership,
// shard assignment, handover, commits and waiting are here; reading the shards is the
// backend's, through ShardReader. Internal to bus.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "layout.h"
#include "weft/bus/bus.h"
#include "weft/core/status.h"
#include "weft/shm/slot.h"

namespace weft::bus::internal {

// One member's access to the shards of a backend. Used by the member's thread only.
class ShardReader {
 public:
  virtual ~ShardReader() = default;
  // kCorrupt once the bus's memory is gone (a shrunk segment); Ok otherwise.
  virtual Status Intact() const = 0;
  // True if shard s has something to read at `at` (an event, or a pad to step over).
  virtual bool Readable(uint32_t s, uint64_t at) = 0;
  // Reads shard s from `from` for this member's group: at most `limit` events appended to
  // `out` (and taken, where producers must know); returns where the next read starts
  // (== from: nothing there).
  virtual Result<uint64_t> Read(uint32_t s, uint64_t from, size_t limit, std::vector<Event>* out) = 0;
  // Where the member reads shard s next, given its own cursor (a backend whose producers move
  // the group's cursors answers from those).
  virtual uint64_t Next(uint32_t s, uint64_t mine) { return mine; }
  // Commits the group up to `to` on shard s (never backwards).
  virtual Status Commit(uint32_t s, uint64_t to) = 0;
  // Whether a commit at a poll may wait (see Member::CommitTaken), and whether shard s needs
  // it now anyway (`pending` positions taken since the last).
  virtual bool LazyCommits() const { return false; }
  virtual bool CommitUrgent(uint32_t s, uint64_t pending) const { return true; }
  // Called while waiting, once per liveness slice: repairs what dead producers left.
  virtual void Repair(uint32_t s, uint64_t at) {}
  // The member no longer reads shard s (it may free what it held for it).
  virtual void Forget(uint32_t s) {}
  // The events of the last batch are no longer used (what kept them readable may go).
  virtual void EndBatch() {}
};

// Joins group g (named `name`, found or created by the caller) of the bus laid out in `v` as a
// new member. `keep` keeps the bus's memory alive while the consumer lives; `reader` reads the
// shards for group g.
Result<std::unique_ptr<Consumer>> JoinGroup(std::shared_ptr<const void> keep, const View& v, uint32_t g,
                                            std::string_view name, const ConsumerOptions& options,
                                            std::unique_ptr<ShardReader> reader);

// The groups of the bus in `v` as BusStats shows them, with lag against each shard's tail.
std::vector<GroupStats> DescribeGroups(const View& v, const std::vector<ShardStats>& shards);

// The held slots among `slots` (member or producer slots), with their holders' liveness.
std::vector<Participant> Holders(const std::function<shm::Slot&(uint32_t)>& slot, uint32_t count);

}  // namespace weft::bus::internal
