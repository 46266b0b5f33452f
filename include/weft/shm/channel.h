// A one-way, single-producer single-consumer channel of variable-size records through shared
// memory (docs/formats/channel.md).
//
// Records are contiguous in memory (never split at the wrap point; payloads of 4 KiB or more
// start on a 64-byte boundary), so the producer writes a
// payload in place (Reserve, fill, Commit) and the consumer reads it in place (Read, use,
// Release). Several records may be committed before one publish (CommitBatched + Flush) and
// several may be held at once by the consumer (released oldest first).
//
// Thread rule: one Channel object is one endpoint, used by one thread at a time. The producer
// and consumer are different objects, normally in different processes.
// Ordering: a record is visible to the consumer, bytes and all, once Commit (or Flush) returns;
// the producer may reuse a record's space once the consumer's Release returns.
// Waiting: a blocked call spins briefly, then sleeps on a futex; no lock is taken and no system
// call is made while the other side is awake. Every wait ends at the caller's deadline.
// Crashes: if the peer dies, calls that would wait return kPeerDead; committed records stay
// readable. A new process may take over the dead peer's role with Open (re-attach).
//
//   auto ch = Channel::Create("frames", {.capacity = 64 << 20}).value();   // producer
//   MutableBytes buf = ch->Reserve(n, Deadline::AfterMs(100)).value();
//   Fill(buf); ch->Commit(n);
//
//   auto rx = Channel::Open("frames", Role::kConsumer).value();            // consumer
//   ByteView rec = rx->Read(Deadline::AfterMs(100)).value();
//   Use(rec); rx->Release();
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "weft/core/bytes.h"
#include "weft/core/clock.h"
#include "weft/core/overflow.h"
#include "weft/core/status.h"
#include "weft/core/wait.h"
#include "weft/shm/process.h"
#include "weft/shm/segment.h"

namespace weft::shm {
namespace internal {
struct ChannelLayout;
struct ChannelConfig;
}

enum class Role : uint8_t { kProducer = 0, kConsumer = 1 };

// What the producer does when the ring is full (one vocabulary with topics and the bus).
using weft::Overflow;

// How a blocked call waits: spin budget, adaptation, liveness slice (weft/core/wait.h).
using WaitPolicy = weft::WaitPolicy;


struct ChannelOptions {
  size_t capacity = size_t{1} << 20;  // ring bytes; rounded up to a multiple of 8; at least 144
  size_t max_record = 0;              // largest payload, at most capacity/2 - 64; 0: that most
  Overflow overflow = Overflow::kBlock;
  Role role = Role::kProducer;  // the creator's role
  WaitPolicy wait;
};

struct EndpointInfo {
  std::string state;  // "empty", "claiming", "attached", "closed"
  int32_t pid = 0;
  uint32_t epoch = 0;  // counts attaches to this role
  bool alive = false;
};

// A racy snapshot of a channel's shared state, for tools and tests.
struct ChannelSnapshot {
  std::string name;
  int32_t creator_pid = 0;
  bool creator_alive = false;
  int64_t created_unix_ns = 0;
  uint64_t capacity = 0, max_record = 0;
  Overflow overflow = Overflow::kBlock;
  uint64_t write_pos = 0, read_pos = 0, hold = 0;
  EndpointInfo producer, consumer;
  uint64_t records_in = 0, bytes_in = 0, records_out = 0, bytes_out = 0;
  uint64_t producer_spins = 0, producer_sleeps = 0, producer_wakes = 0, producer_bells = 0;
  uint64_t consumer_spins = 0, consumer_sleeps = 0, consumer_wakes = 0, consumer_bells = 0;
  uint64_t drops_newest = 0, drops_oldest = 0;
  uint64_t producer_sleep_timeouts = 0, consumer_sleep_timeouts = 0;
};

class Channel {
 public:
  ~Channel();  // detaches (as Close) if still attached
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  // Creates the segment and attaches as options.role. Fails with kAlreadyExists if the name
  // is taken, kInvalidArgument for a bad name or sizes.
  static Result<std::unique_ptr<Channel>> Create(std::string_view name,
                                                 const ChannelOptions& options);
  // Opens an existing channel and attaches as `role`. Fails with kBusy while a live process
  // holds that role; takes over the role of a dead or closed one (re-attach).
  static Result<std::unique_ptr<Channel>> Open(std::string_view name, Role role,
                                               const WaitPolicy& wait = {});
  // Creates an unnamed channel in sealed memory (Segment::CreateSealed): hand fd() to the peer,
  // which opens it with OpenSealed; neither side can then shrink the memory the other maps.
  // `name` labels it (errors, doorbells).
  static Result<std::unique_ptr<Channel>> CreateSealed(std::string_view name, const ChannelOptions& options);
  // Attaches as `role` to a sealed channel received as a descriptor (not taken over).
  // kPermissionDenied if the memory is not sealed against shrinking.
  static Result<std::unique_ptr<Channel>> OpenSealed(int fd, Role role, const WaitPolicy& wait = {});
  // The descriptor of a sealed channel (owned by this object), else -1.
  int fd() const { return segment_.fd(); }
  // Removes the name. Attached endpoints keep working.
  static Status Unlink(std::string_view name);
  // Reads a channel's state without attaching.
  static Result<ChannelSnapshot> Snapshot(std::string_view name);

  // ---- producer ----
  // Returns n writable bytes in the ring, valid until Commit. kTooLarge at once if
  // n > max_record(); kWouldBlock / kTimeout when full at the deadline; kPeerDead / kClosed if
  // the consumer died or closed while waiting. In drop-newest mode a full ring yields a scratch
  // buffer whose record is discarded (and counted) at Commit.
  Result<MutableBytes> Reserve(size_t n, Deadline deadline);
  // Commits the reserved record with `actual` <= n bytes and publishes everything pending.
  Status Commit(size_t actual);
  // Commits without publishing; Flush (or the next Commit) publishes. Fewer shared writes.
  Status CommitBatched(size_t actual);
  // Publishes every batched record.
  void Flush();
  // Discards the reserved record (nothing is published). No-op without a reservation.
  void Unreserve() { pending_ = false; pending_scratch_ = false; }
  // Copies `data` in as one record (Reserve + copy + Commit).
  Status Write(ByteView data, Deadline deadline);
  // Copies each record in, publishing once at the end (and before any wait).
  // Returns how many were written; stops at the first error if none could be written.
  Result<size_t> WriteBatch(const std::vector<ByteView>& records, Deadline deadline);

  // ---- consumer ----
  // Borrows the next record, valid until it is released. Several may be held at once.
  // kWouldBlock / kTimeout when empty at the deadline; kPeerDead when empty and the producer
  // died; kClosed when empty and the producer closed.
  Result<ByteView> Read(Deadline deadline);
  // Releases the `count` oldest held records, giving their space back to the producer.
  Status Release(size_t count = 1);
  // Copies the next record into `out` and releases it; returns its size. kTooLarge if `out`
  // is smaller than the record, which then stays next in line.
  Result<size_t> ReadInto(MutableBytes out, Deadline deadline);
  // Puts the most recently read (still held) record back: the next Read returns it again.
  // kWouldBlock in drop-oldest mode if the producer has since dropped past it (it stays held).
  Status Unread();
  // Records held by this consumer.
  size_t held() const { return held_count_; }

  // ---- both ----
  // A descriptor that turns readable when this side may proceed (consumer: a record may be
  // ready; producer: space may be free). It starts readable; when it is, make a non-blocking
  // call (Deadline::Now()): it proceeds, or returns kWouldBlock and arms the descriptor for the
  // next change. Owned by the Channel.
  Result<int> WaitFd();
  // Detaches from the role cleanly; the peer sees kClosed once drained. Idempotent.
  Status Close();
  // The one call another thread may make while this endpoint waits: the wait (Reserve, Read,
  // Write) ends with kClosed within one liveness slice, and so does every later one. Used to
  // close an endpoint that a thread is blocked on.
  void Interrupt();

  Role role() const { return role_; }
  const std::string& name() const { return segment_.name(); }
  size_t capacity() const { return capacity_; }
  // The ring's bytes in this process's mapping (for tools and tests).
  ByteView ring() const { return ByteView(data_, capacity_); }
  size_t max_record() const { return max_record_; }
  Overflow overflow() const { return overflow_; }
  // Shared counters, cursors and roles (racy; `alive` fields are not filled: see Snapshot).
  ChannelSnapshot Stats() const;

 private:
  Channel(Segment segment, const internal::ChannelConfig& config, Role role, const WaitPolicy& wait);
  static Result<std::unique_ptr<Channel>> Adopt(Result<Segment> seg, Role role, const WaitPolicy& wait);
  static Result<std::unique_ptr<Channel>> Make(Result<Segment> seg, const internal::ChannelConfig& c,
                                               const ChannelOptions& options);

  Status Attach();
  ChannelSnapshot Describe(bool liveness) const;
  enum class PeerState { kAbsent, kAlive, kDead, kClosed };
  PeerState CheckPeer();
  Status PeerFailure(PeerState state) const;
  template <typename Ready>
  Status WaitFor(Ready&& ready, const uint64_t* futex_cursor, Deadline deadline);
  void Publish();
  void AdvanceAndWake(uint64_t* cursor, uint64_t value);
  void WakePeer();
  void RingPeerBell();
  void RefreshLimit();
  bool DropOldestUntil(uint64_t end);
  void PushHeld(uint64_t start, uint64_t end);

  Segment segment_;
  Role role_;
  Waiter waiter_;  // spin budget, Interrupt
  uint8_t* data_ = nullptr;
  internal::ChannelLayout* layout_ = nullptr;  // borrowed from segment_
  size_t capacity_ = 0;
  size_t max_record_ = 0;
  Overflow overflow_ = Overflow::kBlock;
  uint32_t my_epoch_ = 0;
  bool attached_ = false;
  bool broken_ = false;  // the shared state failed validation; every call returns kCorrupt

  // Producer state.
  uint64_t write_pos_ = 0;      // private: end of committed records, published or not
  uint64_t write_off_ = 0;      // write_pos_ % capacity_, kept without dividing
  uint64_t published_pos_ = 0;  // last value stored to the shared write cursor
  uint64_t limit_ = 0;          // cached: the producer may write below this position
  uint64_t pending_pos_ = 0;    // start of the reserved record
  uint64_t pending_off_ = 0;    // its offset in the ring
  uint32_t pending_gap_ = 0;    // 8-byte words between its header and payload
  size_t pending_size_ = 0;
  bool pending_ = false;
  bool pending_scratch_ = false;
  std::vector<uint8_t> scratch_;

  // Consumer state.
  uint64_t read_pos_ = 0;       // private: next record to read
  uint64_t read_off_ = 0;       // read_pos_ % capacity_ (block and drop-newest modes)
  uint64_t cached_write_ = 0;   // cached shared write cursor
  std::vector<uint64_t> held_;  // ring of (start, end) pairs of held records; size 2^k pairs
  size_t held_mask_ = 0;        // pairs - 1
  size_t held_head_ = 0;
  size_t held_count_ = 0;

  uint64_t HeldStart(size_t i) const { return held_[2 * ((held_head_ + i) & held_mask_)]; }
  uint64_t HeldEnd(size_t i) const { return held_[2 * ((held_head_ + i) & held_mask_) + 1]; }

  // Peer tracking.
  uint64_t peer_owner_ = 0;
  ProcessWatch peer_watch_;
  int64_t next_peer_check_ns_ = 0;

  // Doorbells.
  int bell_fd_ = -1;  // this side's pollable descriptor
  int send_fd_ = -1;  // socket for ringing the peer
};

}  // namespace weft::shm
