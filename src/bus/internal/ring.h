// The operations on one shard's ring (internal/layout.h): claiming space, publishing records,
// reclaiming space over what every group has committed, evicting under drop_oldest, and reading.
// Lock-free: producers of any thread or process claim with a compare-and-swap; each group's
// cursors belong to the member that owns the shard. Internal to bus.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <span>
#include <vector>

#include "layout.h"
#include "weft/bus/bus.h"
#include "weft/core/bytes.h"
#include "weft/core/overflow.h"
#include "weft/core/status.h"
#include "weft/core/wait.h"

namespace weft::bus::internal {

// Test hooks: readers do not repair dead producers' claims (the negative control); producers
// sleep this long between claiming and publishing (so that a kill lands there).
std::atomic<bool>& SkipRepairForTest();
std::atomic<int64_t>& PauseAfterClaimForTest();

// Moves a group's cursors forward to at least (next, committed) = (to, to), never back.
inline void RaiseCursors(GroupShard& c, uint64_t to) {
  WordPair p = LoadPair(&c.cursors);
  while ((p.first < to || p.second < to) &&
         !CasPair(&c.cursors, &p, {std::max(p.first, to), std::max(p.second, to)})) {
  }
}

// One shard of a mapped bus.
class Shard {
 public:
  Shard(const View& view, uint32_t index)
      : v_(view), index_(index), st_(&view.shard(index)), ring_(view.ring(index)), bytes_(view.geo.shard_bytes),
        mask_(view.geo.shard_bytes - 1) {}

  uint32_t index() const { return index_; }
  ShardState& state() const { return *st_; }
  uint64_t tail() const { return A(st_->tail).load(std::memory_order_acquire); }
  uint64_t oldest() const { return A(st_->oldest).load(std::memory_order_acquire); }

  // ---- producers ----

  // Space for records of `sizes` bytes each (RecordBytes), written one after another: claims
  // the longest prefix that fits now (all of them, or fewer when the shard is full). Sets
  // *first to the first record's position and returns how many records were claimed; 0 if
  // none fits (the caller applies the bus's policy). A record that would run past the ring's
  // end starts the next lap; the claim then covers a pad record in front of it.
  // `intent` (shm:) gets the claim before it is made, so that it can be repaired if this
  // process dies before publishing it; the caller clears intent_shard once it published.
  size_t TryClaim(std::span<const uint64_t> sizes, Overflow policy, uint64_t* first, ProducerSlot* intent = nullptr);
  // Writes a record at `pos` (claimed): `key` and `data` after the header, the timestamp first
  // if `with_ts`. Publishes it unless `defer` (then Publish does, for a whole batch at once, so
  // that readers chase one line per batch instead of one per record). Returns the position
  // after it; *at (if given) gets the record's own position (after a pad).
  uint64_t Write(uint64_t pos, ByteView key, ByteView data, int64_t ts, bool with_ts, bool defer = false,
                 uint64_t* at = nullptr);
  // Publishes records written with `defer`, at these positions, in order.
  void Publish(std::span<const uint64_t> positions);
  // After records were written: wakes the sleeping members of every group (only those that
  // counted themselves asleep; no system call otherwise).
  void Announce() const;
  // The event count producers sleep on while the shard is full (block).
  EventCount SpaceEvents() const { return EventCount::Counter(&st_->space_wake, &st_->space_sleepers); }
  void CountDropped(uint64_t events) { A(st_->dropped_newest).fetch_add(events, std::memory_order_relaxed); }

  // ---- consumers ----

  // Reads published events from position `from`, at most `limit`, appending them to `out`;
  // returns the position after the last one read (pads are skipped). kCorrupt if a header is
  // impossible (shared memory scribbled by a faulty process).
  Result<uint64_t> Read(uint64_t from, size_t limit, std::vector<Event>* out) const;
  // A reader stuck at `stuck` (claimed, not published): if the producer that claimed it is
  // gone, the rest of its claim becomes pads (its events counted as lost). True if it did.
  bool Repair(uint64_t stuck);
  // Pads covering [from, end) (one per lap), published.
  void PadRange(uint64_t from, uint64_t end);
  // Where the run of published records from `from` (a record boundary) ends.
  uint64_t PublishedEnd(uint64_t from) const;
  // True if an event (or a pad) is published at `pos`.
  bool IsPublished(uint64_t pos) const {
    const auto* h = reinterpret_cast<const RecordHeader*>(ring_ + (pos & mask_));
    return A(const_cast<RecordHeader*>(h)->tag).load(std::memory_order_acquire) == pos + 1;
  }

  // Group `g`'s cursors here.
  GroupShard& cursor(uint32_t g) const { return v_.cursor(g, index_); }
  // Takes [from, to) for group `g` (drop_oldest: a compare-and-swap against evictions; else a
  // store). False if an eviction moved the cursor first: read again from cursor(g).next.
  bool Take(uint32_t g, uint64_t from, uint64_t to, Overflow policy);
  // Commits group `g` up to `to` (never backwards) and wakes producers waiting for space.
  void Commit(uint32_t g, uint64_t to, Overflow policy);
  // Where group `g` has committed to.
  uint64_t Committed(uint32_t g, Overflow policy);

 private:
  RecordHeader* HeaderAt(uint64_t pos) const { return reinterpret_cast<RecordHeader*>(ring_ + (pos & mask_)); }
  // Moves `oldest` towards `low` (and a little beyond, to spread the cost) over published
  // records that no active group still needs. Returns `oldest` after.
  uint64_t Reclaim(uint64_t low, Overflow policy);
  // drop_oldest: moves group g's cursors to at least `low` over published records it has not
  // taken, counting them as its drops. False if it holds records there (taken, not committed).
  bool Evict(uint32_t g, uint64_t low);
  // Walks published records from `from` while below `goal`, passing only records that end at
  // or before `limit`; returns where it stopped (a record boundary) and adds the events it
  // passed to *events.
  uint64_t Walk(uint64_t from, uint64_t goal, uint64_t limit, uint64_t* events) const;
  // The size of the valid published record at `pos` (pads included), or 0.
  uint64_t RecordAt(uint64_t pos, bool* pad) const;

  View v_;
  uint32_t index_;
  ShardState* st_;
  uint8_t* ring_;
  uint64_t bytes_;
  uint64_t mask_;
};

}  // namespace weft::bus::internal
