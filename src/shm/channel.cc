// Channel data path: reserve/commit/publish on the producer, read/release on the consumer,
// and the spin-then-futex wait shared by both.
//
// Record stream: absolute 64-bit cursors; a record at position p starts at data[p % capacity]
// with an 8-byte header {u32 length, u32 flags} and occupies align8(8 + length) bytes. A record
// that would cross the end of the ring is preceded by a pad record reaching exactly to the
// end, so every payload is contiguous.
#include <sched.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>

#include "internal/channel_layout.h"
#include "weft/shm/doorbell.h"
#include "internal/futex.h"
#include "weft/shm/channel.h"

namespace weft::shm {

using internal::Align8;
using internal::Atomic;

namespace {

constexpr int64_t kPeerCheckIntervalNs = 1'000'000;


// Single-writer counter in shared memory: a plain load and store, no locked instruction.
inline void Bump(uint64_t& counter, uint64_t by = 1) {
  // relaxed is enough since only this side writes the counter and readers want a rough value.
  Atomic(counter).store(Atomic(counter).load(std::memory_order_relaxed) + by,
                        std::memory_order_relaxed);
}

struct RecordHeader {
  uint32_t length;
  uint32_t flags;
};
static_assert(sizeof(RecordHeader) == internal::kRecordHeader, "record header is 8 bytes");

enum class Next { kGot, kEmpty, kCorrupt };

}  // namespace

// ---------------------------------------------------------------------------------------------
// Waiting

template <typename Ready>
Status Channel::WaitFor(Ready&& ready, const uint64_t* futex_cursor, Deadline deadline) {
  const int me = static_cast<int>(role_);
  internal::SideStats& stats = layout_->stats[me];
  internal::WaitFlags& flags = layout_->wait[me];

  if (deadline.is_now()) {
    // Non-blocking: report a dead or closed peer (at most one check per interval, so a busy
    // poller makes no system call), and arm the doorbell if this side has one.
    const int64_t now = MonotonicNs();
    if (now >= next_peer_check_ns_) {
      next_peer_check_ns_ = now + kPeerCheckIntervalNs;
      PeerState ps = CheckPeer();
      if (ps == PeerState::kDead || ps == PeerState::kClosed) {
        if (ready()) return Status::Ok();
        return PeerFailure(ps);
      }
    }
    if (bell_fd_ >= 0) {
      shm::DrainDoorbell(bell_fd_);
      // seq_cst: Dekker with the peer's fence in Publish / Release (SYNC POINT B): either the
      // peer sees the bell armed, or we see its cursor in ready().
      Atomic(flags.bell_armed).store(1, std::memory_order_seq_cst);
      std::atomic_thread_fence(std::memory_order_seq_cst);
      if (ready()) return Status::Ok();
    }
    // A miss allocates nothing (pollers see many).
    static const Status::Fixed kFull{Code::kWouldBlock, "channel is full"};
    static const Status::Fixed kEmpty{Code::kWouldBlock, "channel is empty"};
    return role_ == Role::kProducer ? kFull : kEmpty;
  }

  PeerState peer = PeerState::kAlive;
  bool damaged = false;
  const WaitReport r = waiter_.Wait(
      EventCount::OnCursor(internal::LowWord(futex_cursor), &flags.sleeping), deadline, ready, [&] {
        if (segment_.damaged()) {
          damaged = true;
          return false;
        }
        peer = CheckPeer();
        return peer != PeerState::kDead && peer != PeerState::kClosed;
      },
      {.spins = &stats.spins, .sleeps = &stats.sleeps, .sleep_timeouts = &stats.sleep_timeouts});
  switch (r.end) {
    case WaitEnd::kReady:
      return Status::Ok();
    case WaitEnd::kInterrupted:
      return Status(Code::kClosed, "channel '" + segment_.name() + "' was closed while waiting");
    case WaitEnd::kStopped:
      if (damaged) {
        return Corrupt("channel '" + segment_.name() + "': another process shrank its shared memory; the channel is gone");
      }
      return PeerFailure(peer);
    case WaitEnd::kTimeout:
      break;
  }
  return Status(Code::kTimeout, "timed out waiting on channel '" + segment_.name() + "'");
}

// ---------------------------------------------------------------------------------------------
// Producer

void Channel::RefreshLimit() {
  // acquire: the consumer is done with every byte below min(read_pos, hold); pairs with the
  // release stores in Release. seq_cst in drop-oldest mode: Dekker with the consumer's hold
  // store in ReadNext (see there).
  const auto order = overflow_ == Overflow::kDropOldest ? std::memory_order_seq_cst
                                                        : std::memory_order_acquire;
  const uint64_t r = Atomic(layout_->consumer.read_pos).load(order);
  const uint64_t h = Atomic(layout_->consumer.hold).load(order);
  limit_ = std::min(r, h) + capacity_;
}

void Channel::Publish() {
  if (write_pos_ == published_pos_) return;
  published_pos_ = write_pos_;
  // Publishes the committed records' bytes; pairs with the acquire loads of write_pos in Read.
  AdvanceAndWake(&layout_->producer.write_pos, write_pos_);
}

// Stores this side's cursor and wakes the peer if it sleeps on it or waits on its doorbell.
void Channel::AdvanceAndWake(uint64_t* cursor, uint64_t value) {
  // release: everything this side did with the bytes below `value` happens-before the peer's
  // acquire load of the cursor.
  Atomic(*cursor).store(value, std::memory_order_release);
  // The event count's notify (weft/core/wait.h): a fence, then a wake only if the peer counted
  // itself asleep. The same fence orders the bell check below (SYNC POINT B, paired with the
  // arming in WaitFor's non-blocking path).
  const Role peer_role = role_ == Role::kProducer ? Role::kConsumer : Role::kProducer;
  internal::WaitFlags& peer = layout_->wait[static_cast<int>(peer_role)];
  if (EventCount::OnCursor(internal::LowWord(cursor), &peer.sleeping).Notify()) {
    Bump(layout_->stats[static_cast<int>(role_)].wakes);
  }
  if (Atomic(peer.bell_armed).load(std::memory_order_relaxed) != 0) RingPeerBell();
}

void Channel::Flush() {
  if (role_ == Role::kProducer && attached_) Publish();
}

// Drop-oldest: advances the shared read cursor past unclaimed records until `end` fits.
// Case analysis of the CAS on read_pos:
//  1. success: the record at r is dropped; the consumer's later CAS from r fails and retries.
//  2. failure: the consumer claimed r (or we raced ourselves after a reattach); re-read.
// Returns false if the records in the way are held by the consumer.
bool Channel::DropOldestUntil(uint64_t end) {
  Publish();  // only published records can be dropped
  for (;;) {
    RefreshLimit();
    if (end <= limit_) return true;
    uint64_t r = Atomic(layout_->consumer.read_pos).load(std::memory_order_seq_cst);
    const uint64_t h = Atomic(layout_->consumer.hold).load(std::memory_order_seq_cst);
    if (std::min(h, published_pos_) + capacity_ < end) return false;
    if (r >= published_pos_) return false;
    RecordHeader hdr;
    std::memcpy(&hdr, data_ + r % capacity_, sizeof(hdr));
    const bool pad = (hdr.flags & internal::kFlagPad) != 0;
    const uint64_t next = r + internal::RecordSize(hdr.length, hdr.flags);
    if (next > published_pos_ || next <= r) return false;  // our own bytes; cannot happen
    if (Atomic(layout_->consumer.read_pos)
            .compare_exchange_strong(r, next, std::memory_order_seq_cst)) {
      if (!pad) Bump(layout_->stats[0].drops_oldest);
    }
  }
}

Result<MutableBytes> Channel::Reserve(size_t n, Deadline deadline) {
  if (role_ != Role::kProducer) return InvalidArgument("Reserve on a consumer endpoint");
  if (!attached_) return Status(Code::kClosed, "channel endpoint is closed");
  if (n > max_record_) {
    return TooLarge("record of " + std::to_string(n) + " bytes exceeds max_record " +
                    std::to_string(max_record_) + " of channel '" + segment_.name() + "'");
  }
  if (pending_) return InvalidArgument("Reserve called again before Commit");
  // Large payloads start on a 64-byte boundary (a gap after the header), small ones pack.
  const bool aligned = n >= internal::kAlignedPayloadMin;
  uint64_t off = write_off_;
  uint32_t gap = aligned ? internal::AlignGapWords(off) : 0;
  uint64_t need = Align8(internal::kRecordHeader + 8 * gap + n);
  uint64_t pad = 0;
  if (capacity_ - off < need) {  // does not fit before the end: pad, and start over at 0
    pad = capacity_ - off;
    gap = aligned ? internal::AlignGapWords(0) : 0;
    need = Align8(internal::kRecordHeader + 8 * gap + n);
  }
  const uint64_t end = write_pos_ + pad + need;
  if (end > limit_) {
    RefreshLimit();
    if (end > limit_) {
      bool scratch = false;
      switch (overflow_) {
        case Overflow::kBlock: {
          Publish();  // the consumer must see what is batched before we wait on it
          Status s = WaitFor(
              [&] {
                RefreshLimit();
                return end <= limit_;
              },
              &layout_->consumer.read_pos, deadline);
          if (!s.ok()) return s;
          break;
        }
        case Overflow::kDropOldest:
          scratch = !DropOldestUntil(end);
          break;
        case Overflow::kDropNewest:
          scratch = true;
          break;
        case Overflow::kFail:
          Publish();  // what is batched is the consumer's to read
          {
            static const Status::Fixed kFull{Code::kResourceExhausted, "channel is full (overflow policy fail)"};
            return Status(kFull);
          }
      }
      if (scratch) {
        if (scratch_.size() < n) scratch_.resize(std::max<size_t>(n, 64));
        pending_ = true;
        pending_scratch_ = true;
        pending_size_ = n;
        return MutableBytes(scratch_.data(), n);
      }
    }
  }
  if (pad != 0) {
    RecordHeader hdr{static_cast<uint32_t>(pad - internal::kRecordHeader), internal::kFlagPad};
    std::memcpy(data_ + off, &hdr, sizeof(hdr));
    write_pos_ += pad;
    write_off_ = 0;
    off = 0;
  }
  pending_ = true;
  pending_pos_ = write_pos_;
  pending_off_ = off;
  pending_gap_ = gap;
  pending_size_ = n;
  return MutableBytes(data_ + off + internal::kRecordHeader + 8 * gap, n);
}

Status Channel::CommitBatched(size_t actual) {
  if (!pending_) return InvalidArgument("Commit without a Reserve");
  if (actual > pending_size_) {
    return InvalidArgument("Commit of " + std::to_string(actual) + " bytes exceeds the " +
                           std::to_string(pending_size_) + " reserved");
  }
  pending_ = false;
  internal::SideStats& stats = layout_->stats[0];
  if (pending_scratch_) {
    pending_scratch_ = false;
    Bump(stats.drops_newest);
    return Status::Ok();
  }
  RecordHeader hdr{static_cast<uint32_t>(actual), pending_gap_ << 8};
  std::memcpy(data_ + pending_off_, &hdr, sizeof(hdr));
  const uint64_t size = internal::RecordSize(hdr.length, hdr.flags);
  write_pos_ = pending_pos_ + size;
  write_off_ = pending_off_ + size;
  if (write_off_ == capacity_) write_off_ = 0;
  Bump(stats.records);
  Bump(stats.bytes, actual);
  return Status::Ok();
}

Status Channel::Commit(size_t actual) {
  Status s = CommitBatched(actual);
  if (s.ok()) Publish();
  return s;
}

Status Channel::Write(ByteView data, Deadline deadline) {
  Result<MutableBytes> buf = Reserve(data.size(), deadline);
  if (!buf.ok()) return buf.status();
  if (!data.empty()) std::memcpy(buf->data(), data.data(), data.size());
  return Commit(data.size());
}

Result<size_t> Channel::WriteBatch(const std::vector<ByteView>& records, Deadline deadline) {
  size_t done = 0;
  for (const ByteView& rec : records) {
    Result<MutableBytes> buf = Reserve(rec.size(), deadline);
    if (!buf.ok()) {
      if (done == 0) return buf.status();
      break;
    }
    if (!rec.empty()) std::memcpy(buf->data(), rec.data(), rec.size());
    Status s = CommitBatched(rec.size());
    if (!s.ok()) return s;
    ++done;
  }
  Publish();
  return done;
}

// ---------------------------------------------------------------------------------------------
// Consumer

void Channel::PushHeld(uint64_t start, uint64_t end) {
  if (held_count_ * 2 == held_.size()) {
    const size_t pairs = std::max<size_t>(16, held_.size());  // doubles the pair count
    std::vector<uint64_t> grown(2 * pairs);
    for (size_t i = 0; i < held_count_; ++i) {
      grown[2 * i] = HeldStart(i);
      grown[2 * i + 1] = HeldEnd(i);
    }
    held_ = std::move(grown);
    held_mask_ = pairs - 1;
    held_head_ = 0;
  }
  const size_t slot = (held_head_ + held_count_) & held_mask_;
  held_[2 * slot] = start;
  held_[2 * slot + 1] = end;
  ++held_count_;
}

namespace {

// Validates the header of the record at absolute position `pos`, below `write`.
// Returns the record's total size in the stream, or 0 if it is invalid.
inline uint64_t CheckRecord(const RecordHeader& hdr, uint64_t pos, uint64_t off, uint64_t write,
                            uint64_t capacity, uint64_t max_record) {
  uint64_t size;
  if ((hdr.flags & internal::kFlagPad) != 0) {
    if (off + internal::kRecordHeader + hdr.length != capacity) return 0;
    size = internal::kRecordHeader + hdr.length;
  } else {
    if (hdr.length > max_record || internal::GapWords(hdr.flags) > internal::kMaxGapWords) return 0;
    if (off + internal::PayloadOffset(hdr.flags) + hdr.length > capacity) return 0;
    size = internal::RecordSize(hdr.length, hdr.flags);
  }
  if (write - pos < size) return 0;
  return size;
}

}  // namespace

Result<ByteView> Channel::Read(Deadline deadline) {
  if (role_ != Role::kConsumer) return InvalidArgument("Read on a producer endpoint");
  if (!attached_) return Status(Code::kClosed, "channel endpoint is closed");
  if (broken_) return Corrupt("channel '" + segment_.name() + "' failed validation earlier");
  const bool drop_mode = overflow_ == Overflow::kDropOldest;
  ByteView got;
  // Block and drop-newest modes: the consumer alone moves read_pos.
  auto next_block = [&]() -> Next {
    for (;;) {
      if (read_pos_ == cached_write_) {
        // acquire: pairs with the release store in Publish; the records' bytes are visible.
        cached_write_ = Atomic(layout_->producer.write_pos).load(std::memory_order_acquire);
        if (read_pos_ == cached_write_) return Next::kEmpty;
        if (cached_write_ - read_pos_ > capacity_ || cached_write_ < read_pos_) return Next::kCorrupt;
      }
      RecordHeader hdr;
      const uint64_t off = read_off_;
      std::memcpy(&hdr, data_ + off, sizeof(hdr));
      const uint64_t size = CheckRecord(hdr, read_pos_, off, cached_write_, capacity_, max_record_);
      if (size == 0) return Next::kCorrupt;
      const uint64_t start = read_pos_;
      read_pos_ += size;
      read_off_ += size;
      if (read_off_ == capacity_) read_off_ = 0;
      if ((hdr.flags & internal::kFlagPad) != 0) continue;
      got = ByteView(data_ + off + internal::PayloadOffset(hdr.flags), hdr.length);
      PushHeld(start, read_pos_);
      return Next::kGot;
    }
  };
  // Drop-oldest mode: the producer may drop unclaimed records, so the consumer claims each
  // record with a CAS on read_pos and protects what it reads with `hold`.
  auto next_drop = [&]() -> Next {
    for (;;) {
      uint64_t r = Atomic(layout_->consumer.read_pos).load(std::memory_order_acquire);
      if (held_count_ == 0) {
        // seq_cst store then seq_cst load: Dekker with the producer's CAS on read_pos and its
        // load of hold in DropOldestUntil / RefreshLimit. Either the producer sees hold == r
        // and never writes at or past r, or we see its CAS here and retry.
        Atomic(layout_->consumer.hold).store(r, std::memory_order_seq_cst);
        if (Atomic(layout_->consumer.read_pos).load(std::memory_order_seq_cst) != r) continue;
      }
      // acquire: pairs with the release store in Publish.
      const uint64_t w = Atomic(layout_->producer.write_pos).load(std::memory_order_acquire);
      if (r == w) {
        if (held_count_ == 0) {
          Atomic(layout_->consumer.hold).store(internal::kNoHold, std::memory_order_release);
        }
        return Next::kEmpty;
      }
      if (w < r || w - r > capacity_) return Next::kCorrupt;
      RecordHeader hdr;
      const uint64_t off = r % capacity_;
      std::memcpy(&hdr, data_ + off, sizeof(hdr));
      const uint64_t size = CheckRecord(hdr, r, off, w, capacity_, max_record_);
      if (size == 0) return Next::kCorrupt;
      // acq_rel: claims the record; a failure means the producer dropped it first.
      if (!Atomic(layout_->consumer.read_pos)
               .compare_exchange_strong(r, r + size, std::memory_order_acq_rel)) {
        continue;
      }
      if ((hdr.flags & internal::kFlagPad) != 0) continue;
      got = ByteView(data_ + off + internal::PayloadOffset(hdr.flags), hdr.length);
      PushHeld(r, r + size);
      return Next::kGot;
    }
  };
  Next outcome = drop_mode ? next_drop() : next_block();
  if (outcome == Next::kEmpty) {
    Status s = WaitFor(
        [&] {
          outcome = drop_mode ? next_drop() : next_block();
          return outcome != Next::kEmpty;
        },
        &layout_->producer.write_pos, deadline);
    if (!s.ok()) return s;
  }
  if (outcome == Next::kCorrupt) {
    broken_ = true;
    return Corrupt("channel '" + segment_.name() + "' has an invalid record header or cursor");
  }
  internal::SideStats& stats = layout_->stats[1];
  Bump(stats.records);
  Bump(stats.bytes, got.size());
  return got;
}

Status Channel::Release(size_t count) {
  if (role_ != Role::kConsumer) return InvalidArgument("Release on a producer endpoint");
  if (count == 0) return Status::Ok();
  if (count > held_count_) {
    return InvalidArgument("Release of " + std::to_string(count) + " records, " +
                           std::to_string(held_count_) + " held");
  }
  const uint64_t end = HeldEnd(count - 1);
  held_head_ = (held_head_ + count) & held_mask_;
  held_count_ -= count;
  if (!attached_) return Status::Ok();
  if (overflow_ == Overflow::kDropOldest) {
    const uint64_t next_hold = held_count_ > 0 ? HeldStart(0) : internal::kNoHold;
    // release: we are done reading the released bytes; pairs with the loads in RefreshLimit.
    Atomic(layout_->consumer.hold).store(next_hold, std::memory_order_release);
    return Status::Ok();
  }
  // We are done reading every byte below `end`; pairs with the acquire in RefreshLimit.
  AdvanceAndWake(&layout_->consumer.read_pos, end);
  return Status::Ok();
}

Status Channel::Unread() {
  if (role_ != Role::kConsumer) return InvalidArgument("Unread on a producer endpoint");
  if (held_count_ == 0) return InvalidArgument("Unread with no record held");
  const uint64_t start = HeldStart(held_count_ - 1);
  const uint64_t end = HeldEnd(held_count_ - 1);
  if (overflow_ == Overflow::kDropOldest) {
    uint64_t expected = end;
    // acq_rel: returns the claim; fails if the producer dropped past our record meanwhile.
    if (!Atomic(layout_->consumer.read_pos)
             .compare_exchange_strong(expected, start, std::memory_order_acq_rel)) {
      return Status(Code::kWouldBlock, "records after it were dropped; the record stays held");
    }
    --held_count_;
    if (held_count_ == 0) {
      Atomic(layout_->consumer.hold).store(internal::kNoHold, std::memory_order_release);
    }
  } else {
    --held_count_;
    read_pos_ = start;
    read_off_ = start % capacity_;
  }
  internal::SideStats& stats = layout_->stats[1];
  const uint64_t len = (end - start) >= internal::kRecordHeader
                           ? reinterpret_cast<const RecordHeader*>(data_ + start % capacity_)->length
                           : 0;
  Bump(stats.records, ~uint64_t{0});  // minus one
  Bump(stats.bytes, ~len + 1);        // minus len
  return Status::Ok();
}

Result<size_t> Channel::ReadInto(MutableBytes out, Deadline deadline) {
  Result<ByteView> rec = Read(deadline);
  if (!rec.ok()) return rec.status();
  const size_t n = rec->size();
  if (n > out.size()) {
    Unread().IgnoreError();
    return TooLarge("record of " + std::to_string(n) + " bytes does not fit a buffer of " +
                    std::to_string(out.size()));
  }
  if (n != 0) std::memcpy(out.data(), rec->data(), n);
  WEFT_RETURN_IF_ERROR(Release(1));
  return n;
}

}  // namespace weft::shm
