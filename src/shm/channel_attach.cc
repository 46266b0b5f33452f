// Channel lifecycle: create, open, roles and re-attach, peer liveness, doorbells, snapshots.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "internal/channel_layout.h"
#include "weft/shm/doorbell.h"
#include "internal/futex.h"
#include "weft/shm/channel.h"

namespace weft::shm {

using internal::Atomic;
using internal::ChannelLayout;

namespace internal {

TestHooks& Hooks() {
  static TestHooks hooks;
  return hooks;
}

Status ValidateChannel(const void* bytes, size_t size) {
  WEFT_RETURN_IF_ERROR(ValidateHeader(bytes, size, static_cast<uint32_t>(SegmentKind::kChannel),
                                      kChannelLayoutVersion));
  if (size < kDataOffset) return Corrupt("channel segment smaller than its layout");
  ChannelConfig c;
  std::memcpy(&c, static_cast<const uint8_t*>(bytes) + offsetof(ChannelLayout, config), sizeof(c));
  return ValidateChannelConfig(c, size);
}

Status ValidateChannelConfig(const ChannelConfig& c, size_t size) {
  if (size < kDataOffset) return Corrupt("channel segment smaller than its layout");
  if (c.data_offset != kDataOffset) return Corrupt("channel data offset is not 4096");
  if (c.capacity < kMinCapacity || c.capacity % 8 != 0) {
    return Corrupt("channel capacity " + std::to_string(c.capacity) + " is not a multiple of 8 >= 64");
  }
  if (c.capacity > size - kDataOffset) return Corrupt("channel capacity exceeds the segment");
  if (c.max_record == 0 || c.max_record > c.capacity ||
      Align8(c.max_record + kMaxRecordOverhead) > c.capacity / 2) {
    return Corrupt("channel max_record " + std::to_string(c.max_record) + " does not fit capacity");
  }
  if (c.overflow >= kOverflowCount) return Corrupt("channel overflow policy " + std::to_string(c.overflow) + " unknown");
  return Status::Ok();
}

}  // namespace internal

namespace {

const char* RoleName(Role r) { return r == Role::kProducer ? "producer" : "consumer"; }

// The doorbell name of one side of a channel.
std::string BellName(const std::string& name, Role role, uint32_t epoch) {
  return "weft." + name + (role == Role::kProducer ? ".p." : ".c.") + std::to_string(epoch);
}

EndpointInfo DescribeSlot(const internal::EndpointSlot& slot, bool liveness) {
  const SlotView v = ReadSlot(slot);
  EndpointInfo info;
  static const char* kNames[] = {"empty", "claiming", "attached", "closed"};
  info.state = v.state < 4 ? kNames[v.state] : "invalid";
  info.pid = v.who.pid;
  info.epoch = v.epoch;
  info.alive = liveness && (v.state == kSlotAttached || v.state == kSlotClaiming) &&
               !HolderGone(v);
  return info;
}

}  // namespace

Channel::Channel(Segment segment, const internal::ChannelConfig& config, Role role, const WaitPolicy& wait)
    : segment_(std::move(segment)), role_(role), waiter_(wait) {
  layout_ = reinterpret_cast<ChannelLayout*>(segment_.base());
  data_ = segment_.base() + internal::kDataOffset;
  capacity_ = config.capacity;
  max_record_ = config.max_record;
  overflow_ = static_cast<Overflow>(config.overflow);
}

// The geometry is copied out of shared memory once and validated as copied: a process that
// scribbles the shared config later changes nothing this endpoint relies on.
Result<std::unique_ptr<Channel>> Channel::Adopt(Result<Segment> seg, Role role, const WaitPolicy& wait) {
  if (!seg.ok()) return seg.status();
  internal::ChannelConfig c;
  std::memcpy(&c, seg->base() + offsetof(ChannelLayout, config), sizeof(c));
  Status v = internal::ValidateChannelConfig(c, seg->size());
  if (!v.ok()) return v.Annotate("channel '" + seg->name() + "'");
  return std::unique_ptr<Channel>(new Channel(std::move(seg).value(), c, role, wait));
}

Channel::~Channel() {
  Close().IgnoreError();
  if (bell_fd_ >= 0) ::close(bell_fd_);
  if (send_fd_ >= 0) ::close(send_fd_);
}

namespace {

// Checks the options and gives the channel's config; nothing is created.
Result<internal::ChannelConfig> ConfigFor(const ChannelOptions& options) {
  // The smallest ring that holds a record of at least 8 bytes: half the ring, less the most a
  // record's header and alignment gap take.
  constexpr uint64_t kSmallest = 2 * (internal::kMaxRecordOverhead + 8);
  if (options.capacity < kSmallest) {
    return InvalidArgument("channel capacity " + std::to_string(options.capacity) + " is too small: a ring needs at least " +
                           std::to_string(kSmallest) + " bytes (a record may take up to half of it, with " +
                           std::to_string(internal::kMaxRecordOverhead) + " bytes of header and alignment)");
  }
  uint64_t capacity = internal::Align8(options.capacity);
  if (capacity > (uint64_t{1} << 46)) return InvalidArgument("channel capacity above 64 TiB");
  const uint64_t most = ((capacity / 2) & ~uint64_t{7}) - internal::kMaxRecordOverhead;
  uint64_t max_record = options.max_record == 0 ? most : options.max_record;
  if (max_record > most) {
    return InvalidArgument("max_record " + std::to_string(max_record) +
                           " does not fit a ring of " + std::to_string(capacity) +
                           " bytes (at most capacity/2 - 64 = " + std::to_string(most) + ")");
  }
  if (static_cast<uint32_t>(options.overflow) >= kOverflowCount) return InvalidArgument("unknown overflow policy");
  internal::ChannelConfig c{};
  c.capacity = capacity;
  c.max_record = max_record;
  c.overflow = static_cast<uint32_t>(options.overflow);
  c.data_offset = internal::kDataOffset;
  return c;
}

}  // namespace

Result<std::unique_ptr<Channel>> Channel::Make(Result<Segment> seg, const internal::ChannelConfig& c,
                                               const ChannelOptions& options) {
  if (!seg.ok()) return seg.status();
  auto* l = reinterpret_cast<ChannelLayout*>(seg->base());
  l->config = c;
  l->consumer.hold = internal::kNoHold;
  seg->Publish();
  std::unique_ptr<Channel> ch(new Channel(std::move(seg).value(), c, options.role, options.wait));
  WEFT_RETURN_IF_ERROR(ch->Attach());
  return ch;
}

Result<std::unique_ptr<Channel>> Channel::Create(std::string_view name,
                                                 const ChannelOptions& options) {
  auto c = ConfigFor(options);
  if (!c.ok()) return c.status();
  Result<Segment> seg = Segment::Create(name, SegmentKind::kChannel, internal::kChannelLayoutVersion,
                                        internal::kDataOffset + c->capacity);
  if (!seg.ok()) return seg.status();
  auto ch = Make(std::move(seg), *c, options);
  if (!ch.ok()) Segment::Unlink(name).IgnoreError();  // ours: leave nothing behind
  return ch;
}

Result<std::unique_ptr<Channel>> Channel::CreateSealed(std::string_view name, const ChannelOptions& options) {
  auto c = ConfigFor(options);
  if (!c.ok()) return c.status();
  return Make(Segment::CreateSealed(name, SegmentKind::kChannel, internal::kChannelLayoutVersion,
                                    internal::kDataOffset + c->capacity),
              *c, options);
}

Result<std::unique_ptr<Channel>> Channel::Open(std::string_view name, Role role,
                                               const WaitPolicy& wait) {
  auto ch = Adopt(Segment::OpenValidated(name, SegmentKind::kChannel, internal::kChannelLayoutVersion,
                                         internal::ValidateChannel),
                 role, wait);
  if (!ch.ok()) return ch.status();
  WEFT_RETURN_IF_ERROR((*ch)->Attach());
  return ch;
}

Result<std::unique_ptr<Channel>> Channel::OpenSealed(int fd, Role role, const WaitPolicy& wait) {
  auto ch = Adopt(Segment::OpenSealed(fd, static_cast<uint32_t>(SegmentKind::kChannel),
                                      internal::kChannelLayoutVersion, internal::ValidateChannel),
                 role, wait);
  if (!ch.ok()) return ch.status();
  WEFT_RETURN_IF_ERROR((*ch)->Attach());
  return ch;
}

Status Channel::Unlink(std::string_view name) { return Segment::Unlink(name); }

// Claims this role's slot. Case analysis of the CAS loop on the owner word:
//  1. empty or closed: claim it.
//  2. attached or claiming by a live process: kBusy.
//  3. attached or claiming by a dead process: take it over (re-attach).
//  A failed CAS means another process changed the slot; re-read and decide again.
Status Channel::Attach() {
  internal::EndpointSlot& slot = layout_->slots[static_cast<int>(role_)];
  const std::string what = std::string("the ") + RoleName(role_) + " role of '" + segment_.name() + "'";
  Result<uint32_t> epoch = BeginClaim(slot, what.c_str());
  if (!epoch.ok()) return epoch.status();
  my_epoch_ = *epoch;
  // Resume from the shared cursors: records a dead predecessor reserved, batched or held but
  // never committed or released are redone by this process.
  if (role_ == Role::kProducer) {
    write_pos_ = Atomic(layout_->producer.write_pos).load(std::memory_order_acquire);
    write_off_ = write_pos_ % capacity_;
    published_pos_ = write_pos_;
    limit_ = 0;
    pending_ = false;
  } else {
    read_pos_ = Atomic(layout_->consumer.read_pos).load(std::memory_order_acquire);
    read_off_ = read_pos_ % capacity_;
    cached_write_ = read_pos_;
    // A dead drop-oldest consumer's holds are given up.
    Atomic(layout_->consumer.hold).store(internal::kNoHold, std::memory_order_release);
    held_count_ = 0;
    held_head_ = 0;
  }
  FinishClaim(slot, my_epoch_);
  attached_ = true;
  return Status::Ok();
}

Status Channel::Close() {
  if (!attached_) return Status::Ok();
  if (role_ == Role::kProducer) {
    Flush();
    pending_ = false;
  }
  // Only the current owner closes the slot; a process that took it over keeps it.
  ReleaseSlot(layout_->slots[static_cast<int>(role_)], my_epoch_, kSlotClosed);
  attached_ = false;
  WakePeer();
  return Status::Ok();
}

void Channel::Interrupt() {
  // The wake ends a sleep at once; a waiter between its flag check and its futex call sleeps
  // at most one liveness slice.
  const uint64_t* word = role_ == Role::kConsumer ? &layout_->producer.write_pos : &layout_->consumer.read_pos;
  waiter_.Interrupt(EventCount::OnCursor(internal::LowWord(word), &layout_->wait[static_cast<int>(role_)].sleeping));
}

Channel::PeerState Channel::CheckPeer() {
  const Role peer = role_ == Role::kProducer ? Role::kConsumer : Role::kProducer;
  const SlotView v = ReadSlot(layout_->slots[static_cast<int>(peer)]);
  const bool ignore = internal::Hooks().ignore_peer_death.load(std::memory_order_relaxed);
  switch (v.state) {
    case kSlotEmpty:
      return PeerState::kAbsent;
    case kSlotClaiming:
      // A new peer is attaching; if it died doing so, it is dead.
      return ignore || !HolderGone(v) ? PeerState::kAbsent : PeerState::kDead;
    case kSlotClosed:
      return PeerState::kClosed;
    case kSlotAttached:
      break;
    default:
      return PeerState::kDead;  // a corrupt slot is treated as a dead peer
  }
  if (v.word != peer_owner_) {
    peer_owner_ = v.word;
    peer_watch_.Watch(v.who);
  }
  if (ignore) return PeerState::kAlive;
  return peer_watch_.Exited() ? PeerState::kDead : PeerState::kAlive;
}

Status Channel::PeerFailure(PeerState state) const {
  const char* peer = role_ == Role::kProducer ? "consumer" : "producer";
  if (state == PeerState::kDead) {
    return Status(Code::kPeerDead, std::string("the ") + peer + " of '" + segment_.name() +
                                       "' (pid " + std::to_string(peer_watch_.id().pid) + ") died");
  }
  return Status(Code::kClosed, std::string("the ") + peer + " of '" + segment_.name() + "' closed");
}

Result<int> Channel::WaitFd() {
  if (bell_fd_ >= 0) return bell_fd_;
  const std::string bell = BellName(segment_.name(), role_, my_epoch_);
  Result<int> fd = shm::BindDoorbell(bell);
  if (!fd.ok()) return fd.status();
  bell_fd_ = *fd;
  // The descriptor starts readable: a record (or room) may already be there, or a call that
  // missed before the descriptor existed armed nothing. The first poll returns at once; the
  // non-blocking call that follows either succeeds or arms the descriptor.
  shm::RingDoorbell(bell, &send_fd_);
  return bell_fd_;
}

void Channel::RingPeerBell() {
  const Role peer = role_ == Role::kProducer ? Role::kConsumer : Role::kProducer;
  uint32_t* armed = &layout_->wait[static_cast<int>(peer)].bell_armed;
  // acq_rel: one ring per arming; pairs with the seq_cst store that armed it.
  if (Atomic(*armed).exchange(0, std::memory_order_acq_rel) == 0) return;
  uint64_t w = Atomic(layout_->slots[static_cast<int>(peer)].owner).load(std::memory_order_acquire);
  shm::RingDoorbell(BellName(segment_.name(), peer, OwnerEpoch(w)), &send_fd_);
  auto& st = layout_->stats[static_cast<int>(role_)];
  Atomic(st.bells).store(Atomic(st.bells).load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}

void Channel::WakePeer() {
  const Role peer = role_ == Role::kProducer ? Role::kConsumer : Role::kProducer;
  // A sleeping peer waits on the cursor it watches: the consumer on write_pos, the producer
  // on read_pos.
  const uint64_t* word = peer == Role::kConsumer ? &layout_->producer.write_pos
                                                 : &layout_->consumer.read_pos;
  EventCount::OnCursor(internal::LowWord(word), &layout_->wait[static_cast<int>(peer)].sleeping).WakeAll();
  Atomic(layout_->wait[static_cast<int>(peer)].bell_armed).store(1, std::memory_order_relaxed);
  RingPeerBell();
}

ChannelSnapshot Channel::Stats() const { return Describe(false); }

ChannelSnapshot Channel::Describe(bool liveness) const {
  ChannelSnapshot s;
  auto* l = layout_;
  s.name = segment_.name();
  s.creator_pid = l->segment.creator_pid;
  s.creator_alive = liveness && IsAlive({l->segment.creator_pid, l->segment.creator_start_ticks});
  s.created_unix_ns = l->segment.created_unix_ns;
  s.capacity = l->config.capacity;
  s.max_record = l->config.max_record;
  s.overflow = static_cast<Overflow>(l->config.overflow);
  s.write_pos = Atomic(l->producer.write_pos).load(std::memory_order_relaxed);
  s.read_pos = Atomic(l->consumer.read_pos).load(std::memory_order_relaxed);
  s.hold = Atomic(l->consumer.hold).load(std::memory_order_relaxed);
  s.producer = DescribeSlot(l->slots[0], liveness);
  s.consumer = DescribeSlot(l->slots[1], liveness);
  auto rd = [](const uint64_t& v) { return Atomic(const_cast<uint64_t&>(v)).load(std::memory_order_relaxed); };
  const auto& p = l->stats[0];
  const auto& c = l->stats[1];
  s.records_in = rd(p.records);
  s.bytes_in = rd(p.bytes);
  s.producer_spins = rd(p.spins);
  s.producer_sleeps = rd(p.sleeps);
  s.producer_wakes = rd(p.wakes);
  s.producer_bells = rd(p.bells);
  s.drops_newest = rd(p.drops_newest);
  s.drops_oldest = rd(p.drops_oldest);
  s.producer_sleep_timeouts = rd(p.sleep_timeouts);
  s.consumer_sleep_timeouts = rd(c.sleep_timeouts);
  s.records_out = rd(c.records);
  s.bytes_out = rd(c.bytes);
  s.consumer_spins = rd(c.spins);
  s.consumer_sleeps = rd(c.sleeps);
  s.consumer_wakes = rd(c.wakes);
  s.consumer_bells = rd(c.bells);
  return s;
}

Result<ChannelSnapshot> Channel::Snapshot(std::string_view name) {
  // A detached view: never attached, so its destructor leaves the slots alone.
  auto view = Adopt(Segment::OpenValidated(name, SegmentKind::kChannel, internal::kChannelLayoutVersion,
                                           internal::ValidateChannel),
                    Role::kConsumer, WaitPolicy{});
  if (!view.ok()) return view.status();
  return (*view)->Describe(true);
}

}  // namespace weft::shm
