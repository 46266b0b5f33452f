#include "internal/ring.h"

#include "internal/groups.h"

#include <algorithm>
#include <cstring>

#include "weft/shm/slot.h"

namespace weft::bus::internal {

std::atomic<bool>& SkipRepairForTest() {
  static std::atomic<bool> skip{false};
  return skip;
}

std::atomic<int64_t>& PauseAfterClaimForTest() {
  static std::atomic<int64_t> ns{0};
  return ns;
}

namespace {

// Producers reclaim this much beyond what they need (a fraction of the ring), so that the
// compare-and-swap on `oldest` is shared by many claims.
uint64_t ReclaimAhead(uint64_t ring_bytes) { return std::max<uint64_t>(ring_bytes / 16, 1024); }

// memcpy, without a call for the small sizes events mostly have: two overlapping fixed-size
// moves cover any length up to twice their size.
inline void CopySmall(uint8_t* to, const uint8_t* from, size_t n) {
  if (n >= 8 && n <= 16) {
    __builtin_memcpy(to, from, 8);
    __builtin_memcpy(to + n - 8, from + n - 8, 8);
  } else if (n > 16 && n <= 32) {
    __builtin_memcpy(to, from, 16);
    __builtin_memcpy(to + n - 16, from + n - 16, 16);
  } else if (n > 32 && n <= 64) {
    __builtin_memcpy(to, from, 32);
    __builtin_memcpy(to + n - 32, from + n - 32, 32);
  } else {
    std::memcpy(to, from, n);
  }
}

}  // namespace

uint64_t Shard::RecordAt(uint64_t pos, bool* pad) const {
  const RecordHeader* h = HeaderAt(pos);
  if (A(const_cast<RecordHeader*>(h)->tag).load(std::memory_order_acquire) != pos + 1) return 0;
  const uint64_t room = bytes_ - (pos & mask_);
  const uint32_t length = A(const_cast<RecordHeader*>(h)->length).load(std::memory_order_relaxed);
  const uint16_t flags = A(const_cast<RecordHeader*>(h)->flags).load(std::memory_order_relaxed);
  *pad = (flags & kRecordPad) != 0;
  const uint64_t size = RecordBytes(length);
  if (size > room) return 0;  // impossible: not a record
  return size;
}

uint64_t Shard::Walk(uint64_t from, uint64_t goal, uint64_t limit, uint64_t* events) const {
  uint64_t pos = from;
  while (pos < goal) {
    bool pad = false;
    const uint64_t size = RecordAt(pos, &pad);
    if (size == 0 || pos + size > limit) break;
    if (!pad) ++*events;
    pos += size;
  }
  return pos;
}

bool Shard::Evict(uint32_t g, uint64_t low) {
  GroupShard& c = cursor(g);
  WordPair p = LoadPair(&c.cursors);  // (next, committed)
  for (;;) {
    if (p.second >= low) return true;
    if (p.second < p.first) return false;  // taken and not committed: the member holds them
    uint64_t events = 0;
    const uint64_t to = Walk(p.first, low, tail(), &events);
    if (to == p.first) return false;
    // Both cursors move at once, and only if the member took nothing meanwhile.
    if (!CasPair(&c.cursors, &p, {to, to})) continue;
    A(c.dropped).fetch_add(events, std::memory_order_relaxed);
    A(st_->dropped_oldest).fetch_add(events, std::memory_order_relaxed);
    return to >= low;
  }
}

uint64_t Shard::Reclaim(uint64_t low, Overflow policy) {
  for (;;) {
    const uint64_t old = oldest();
    if (old >= low) return old;
    const uint64_t end = tail();
    uint64_t limit = end;
    bool groups = false;
    const uint32_t active = A(v_.header().groups_active).load(std::memory_order_acquire);
    for (uint32_t g = 0; g < kMaxGroups; ++g) {
      if ((active & (1u << g)) == 0) continue;
      groups = true;
      uint64_t committed = Committed(g, policy);
      if (committed < low && policy == Overflow::kDropOldest && Evict(g, low)) committed = Committed(g, policy);
      limit = std::min(limit, committed);
    }
    if (limit <= old) return old;
    // Every group committed up to `limit`, a record boundary below which everything is
    // published (members commit only what they read; a group starts at a published boundary):
    // move there at once. With no group, walk published records to a boundary past the goal.
    uint64_t to = limit;
    if (!groups) {
      uint64_t events = 0;
      to = Walk(old, std::min(low + ReclaimAhead(bytes_), end), limit, &events);
      if (to == old) return old;
    }
    uint64_t expect = old;
    if (A(st_->oldest).compare_exchange_strong(expect, to, std::memory_order_acq_rel) && to >= low) return to;
  }
}

uint64_t Shard::PublishedEnd(uint64_t from) const {
  uint64_t events = 0;
  const uint64_t end = tail();
  return Walk(from, end, end, &events);
}

size_t Shard::TryClaim(std::span<const uint64_t> sizes, Overflow policy, uint64_t* first, ProducerSlot* intent) {
  for (;;) {
    const uint64_t t = tail();
    // Where each record would end, laps included; the longest prefix within the free space.
    uint64_t end = t;
    uint64_t free_to = oldest() + bytes_;
    size_t n = 0;
    uint64_t claim_end = t;
    for (uint64_t size : sizes) {
      const uint64_t room = bytes_ - (end & mask_);
      uint64_t e = end + (size > room ? room : 0) + size;
      if (e > free_to) {
        free_to = Reclaim(e - bytes_, policy) + bytes_;
        if (e > free_to) break;
      }
      end = e;
      claim_end = e;
      ++n;
    }
    if (n == 0) {
      if (intent != nullptr) A(intent->intent_shard).store(0, std::memory_order_relaxed);  // no claim
      return 0;
    }
    if (intent != nullptr) {  // what this claim will be, before it is (the CAS releases it)
      A(intent->intent_pos).store(t, std::memory_order_relaxed);
      A(intent->intent_end).store(claim_end, std::memory_order_relaxed);
      A(intent->intent_events).store(n, std::memory_order_relaxed);
      A(intent->intent_shard).store(index_ + 1, std::memory_order_relaxed);
    }
    uint64_t expect = t;
    if (A(st_->tail).compare_exchange_weak(expect, claim_end, std::memory_order_acq_rel)) {
      // The line is ours after the compare-and-swap: this add costs little.
      A(st_->ingested).fetch_add(n, std::memory_order_relaxed);
      *first = t;
      return n;
    }
  }
}

uint64_t Shard::Write(uint64_t pos, ByteView key, ByteView data, int64_t ts, bool with_ts, bool defer,
                      uint64_t* at_pos) {
  const uint64_t length = (with_ts ? 8 : 0) + key.size() + data.size();
  const uint64_t room = bytes_ - (pos & mask_);
  if (RecordBytes(length) > room) {
    // The rest of this lap is a pad; the record starts the next lap.
    RecordHeader* pad = HeaderAt(pos);
    A(pad->length).store(static_cast<uint32_t>(room - sizeof(RecordHeader)), std::memory_order_relaxed);
    A(pad->key_length).store(0, std::memory_order_relaxed);
    A(pad->flags).store(uint16_t{kRecordPad}, std::memory_order_relaxed);
    A(pad->tag).store(pos + 1, std::memory_order_release);
    pos += room;
  }
  RecordHeader* h = HeaderAt(pos);
  uint8_t* at = reinterpret_cast<uint8_t*>(h + 1);
  A(h->length).store(static_cast<uint32_t>(length), std::memory_order_relaxed);
  A(h->key_length).store(static_cast<uint16_t>(key.size()), std::memory_order_relaxed);
  A(h->flags).store(static_cast<uint16_t>(with_ts ? kRecordTimestamp : 0), std::memory_order_relaxed);
  if (with_ts) {
    A(*reinterpret_cast<int64_t*>(at)).store(ts, std::memory_order_relaxed);
    at += 8;
  }
  if (!key.empty()) CopySmall(at, key.data(), key.size());
  if (!data.empty()) CopySmall(at + key.size(), data.data(), data.size());
  // Release: the record's bytes before its tag. Announce's fence orders the tags of a whole
  // batch against the wake-up protocol (weft/core/wait.h).
  if (!defer) A(h->tag).store(pos + 1, std::memory_order_release);
  if (at_pos != nullptr) *at_pos = pos;
  return pos + RecordBytes(length);
}

void Shard::Publish(std::span<const uint64_t> positions) {
  // Last to first: a reader waits on the first record's tag and sees the whole batch at once,
  // so it does not pull the lines of the others away while they are written.
  for (size_t i = positions.size(); i-- > 0;) {
    A(HeaderAt(positions[i])->tag).store(positions[i] + 1, std::memory_order_release);
  }
}

void Shard::Announce() const { WakeGroups(v_); }

void Shard::PadRange(uint64_t from, uint64_t end) {
  for (uint64_t pos = from; pos < end;) {
    const uint64_t size = std::min(end - pos, bytes_ - (pos & mask_));
    RecordHeader* h = HeaderAt(pos);
    A(h->length).store(static_cast<uint32_t>(size - sizeof(RecordHeader)), std::memory_order_relaxed);
    A(h->key_length).store(0, std::memory_order_relaxed);
    A(h->flags).store(uint16_t{kRecordPad}, std::memory_order_relaxed);
    A(h->tag).store(pos + 1, std::memory_order_release);
    pos += size;
  }
}

bool Shard::Repair(uint64_t stuck) {
  if (SkipRepairForTest().load(std::memory_order_relaxed)) return false;
  // Every producer writes its intent before its claim, so the claim `stuck` lies in is covered
  // by its claimant's intent (an intent may also be one whose claim failed, if its producer
  // died between writing it and trying). Repair only when no live producer's intent covers
  // `stuck` (a live one may be the claimant, or will fail and move on), and then by the dead
  // intent that starts last and ends first: never past the real claim's end; if that was
  // longer, the reader is stuck again further on and the next repair goes on from there.
  int best = -1;
  uint64_t best_pos = 0, best_end = 0;
  for (uint32_t i = 0; i < kMaxProducers; ++i) {
    ProducerSlot& p = v_.producer(i);
    if (A(p.intent_shard).load(std::memory_order_acquire) != index_ + 1) continue;
    const uint64_t pos = A(p.intent_pos).load(std::memory_order_relaxed);
    const uint64_t end = A(p.intent_end).load(std::memory_order_relaxed);
    if (stuck < pos || stuck >= end || end - pos > bytes_ || end <= oldest()) continue;
    const shm::SlotView holder = shm::ReadSlot(p.slot);
    if (!shm::HolderGone(holder)) return false;  // held by a live producer, or released
    if (best < 0 || pos > best_pos || (pos == best_pos && end < best_end)) {
      best = static_cast<int>(i);
      best_pos = pos;
      best_end = end;
    }
  }
  if (best < 0 || (stuck & (kRecordAlign - 1)) != 0) return false;
  ProducerSlot& p = v_.producer(static_cast<uint32_t>(best));
  const uint64_t events = A(p.intent_events).load(std::memory_order_relaxed);
  // Records before `stuck` were published (readers got there); the rest never will be.
  uint64_t passed = 0;
  Walk(best_pos, stuck, stuck, &passed);
  PadRange(stuck, best_end);
  uint64_t expect = index_ + 1;
  if (A(p.intent_shard).compare_exchange_strong(expect, 0, std::memory_order_acq_rel)) {
    A(st_->lost_events).fetch_add(events > passed ? events - passed : 0, std::memory_order_relaxed);
  }
  Announce();
  return true;
}

Result<uint64_t> Shard::Read(uint64_t from, size_t limit, std::vector<Event>* out) const {
  uint64_t pos = from;
  const uint32_t max_event = v_.geo.max_event;
  size_t taken = 0;
  while (taken < limit) {
    const RecordHeader* h = HeaderAt(pos);
    if (A(const_cast<RecordHeader*>(h)->tag).load(std::memory_order_acquire) != pos + 1) break;
    const uint64_t room = bytes_ - (pos & mask_);
    // Relaxed atomic reads: under drop_oldest a producer may be rewriting a record the member
    // has not taken yet; Take then fails and the read is discarded.
    RecordHeader* hw = const_cast<RecordHeader*>(h);
    const RecordHeader copy{pos + 1, A(hw->length).load(std::memory_order_relaxed),
                            A(hw->key_length).load(std::memory_order_relaxed),
                            A(hw->flags).load(std::memory_order_relaxed)};
    if (copy.flags & kRecordPad) {
      if (RecordBytes(copy.length) > room) {
        return Status(Code::kCorrupt, "bus shard " + std::to_string(index_) + ": a pad at offset " +
                                          std::to_string(pos) + " runs past the ring's end");
      }
      pos += RecordBytes(copy.length);
      continue;
    }
    const bool ts = (copy.flags & kRecordTimestamp) != 0;
    const uint64_t fixed = ts ? 8 : 0;
    if (RecordBytes(copy.length) > room || copy.length < fixed + copy.key_length ||
        copy.length - fixed > uint64_t{max_event}) {
      return Status(Code::kCorrupt, "bus shard " + std::to_string(index_) + ": impossible event header at offset " +
                                        std::to_string(pos) + " (length " + std::to_string(copy.length) + ")");
    }
    const uint8_t* body = reinterpret_cast<const uint8_t*>(h + 1);
    Event e;
    e.position = {index_, pos};
    if (ts) e.timestamp_ns = A(*reinterpret_cast<int64_t*>(const_cast<uint8_t*>(body))).load(std::memory_order_relaxed);
    e.key = ByteView(body + fixed, copy.key_length);
    e.data = ByteView(body + fixed + copy.key_length, copy.length - fixed - copy.key_length);
    out->push_back(e);
    ++taken;
    pos += RecordBytes(copy.length);
  }
  return pos;
}

bool Shard::Take(uint32_t g, uint64_t from, uint64_t to, Overflow policy) {
  GroupShard& c = cursor(g);
  if (policy != Overflow::kDropOldest) {  // only the owner moves the cursors
    A(c.cursors.first).store(to, std::memory_order_release);
    return true;
  }
  WordPair p = LoadPair(&c.cursors);
  while (p.first == from) {
    if (CasPair(&c.cursors, &p, {to, p.second})) return true;
  }
  return false;
}

uint64_t Shard::Committed(uint32_t g, Overflow policy) {
  GroupShard& c = cursor(g);
  // Acquire, as the commit released it: the member's reads of what it committed happen before
  // the space is reused. Under drop_oldest the cursors change by 16-byte compare-and-swap, and
  // are read the same way.
  if (policy != Overflow::kDropOldest) return A(c.cursors.second).load(std::memory_order_acquire);
  return LoadPair(&c.cursors).second;
}

void Shard::Commit(uint32_t g, uint64_t to, Overflow policy) {
  GroupShard& c = cursor(g);
  if (policy != Overflow::kDropOldest) {  // only the owner moves the cursors: no locked instruction
    if (A(c.cursors.second).load(std::memory_order_relaxed) >= to) return;
    A(c.cursors.second).store(to, std::memory_order_release);
    SpaceEvents().Notify();
    return;
  }
  WordPair p = LoadPair(&c.cursors);
  while (p.second < to) {
    // The compare-and-swap is a full barrier: the wake-up protocol needs no other fence.
    if (CasPair(&c.cursors, &p, {std::max(p.first, to), to})) {
      SpaceEvents().NotifySeqCst();
      return;
    }
  }
}

}  // namespace weft::bus::internal
