// Topics: per (publisher, subscriber) rings of sample entries in a topic segment, samples in
// the topic's pool, holds handed to subscribers with Pool::Grant.
#include "weft/shm/topic.h"

#include <algorithm>
#include <bit>
#include <climits>
#include <atomic>
#include <cstring>
#include <sched.h>

#include <thread>

#include <unistd.h>

#include "weft/shm/doorbell.h"
#include "internal/futex.h"
#include "internal/registry.h"
#include "weft/core/pair.h"
#include "weft/shm/slot.h"
#include "internal/channel_layout.h"  // test hooks
#include "internal/topic_layout.h"

namespace weft::shm {

using internal::PublisherRecord;
using internal::Ring;
using internal::SampleEntry;
using internal::SubscriberRecord;
using internal::TopicLayout;

namespace {

template <typename T>
std::atomic_ref<T> A(T& v) {
  return std::atomic_ref<T>(v);
}

uint64_t Align64(uint64_t n) { return (n + 63) / 64 * 64; }

constexpr int64_t kLivenessSliceNs = 20'000'000;

std::string BellName(std::string_view topic, int index, uint32_t epoch) {
  return "weft." + std::string(topic) + ".s" + std::to_string(index) + "." + std::to_string(epoch);
}

// Entries are read while a concurrent writer may reuse the slot (the reader then discards
// what it read): field by field, atomically.
SampleEntry LoadEntry(SampleEntry& e) {
  return {A(e.block).load(std::memory_order_relaxed), A(e.size).load(std::memory_order_relaxed),
          A(e.seq).load(std::memory_order_relaxed), A(e.pool_slot).load(std::memory_order_relaxed)};
}

// A ring's head and drop record, changed together by one 16-byte compare-and-swap
// (weft/core/pair.h).
struct HeadPair {
  uint64_t head, dropped;
};

WordPair* PairOf(Ring& ring) {
  static_assert(offsetof(Ring, dropped) == offsetof(Ring, head) + 8 && alignof(Ring) >= 16);
  return reinterpret_cast<WordPair*>(&ring.head);
}

// Replaces *expected with desired if the ring holds *expected (a full barrier); otherwise loads
// the ring's pair into *expected and returns false.
bool CasHead(Ring& ring, HeadPair* expected, HeadPair desired) {
  WordPair e{expected->head, expected->dropped};
  if (CasPair(PairOf(ring), &e, {desired.head, desired.dropped})) return true;
  *expected = {e.first, e.second};
  return false;
}

HeadPair LoadHead(Ring& ring) {
  const WordPair p = LoadPair(PairOf(ring));
  return {p.first, p.second};
}

// Clears the ring's drop record if it still is `record`; true if this call cleared it (and so
// must revoke its hold).
bool ClearDrop(Ring& ring, uint64_t record) {
  HeadPair cur = LoadHead(ring);
  while (cur.dropped == record) {
    if (CasHead(ring, &cur, {cur.head, 0})) return true;
  }
  return false;
}

void StoreEntry(SampleEntry& e, const SampleEntry& v) {
  A(e.block).store(v.block, std::memory_order_relaxed);
  A(e.size).store(v.size, std::memory_order_relaxed);
  A(e.seq).store(v.seq, std::memory_order_relaxed);
  A(e.pool_slot).store(v.pool_slot, std::memory_order_relaxed);
}

}  // namespace

namespace internal {

Status ValidateTopic(const void* bytes, size_t size) {
  WEFT_RETURN_IF_ERROR(
      ValidateHeader(bytes, size, static_cast<uint32_t>(SegmentKind::kTopic), kTopicLayoutVersion));
  if (size < sizeof(TopicLayout)) return Corrupt("topic segment smaller than its layout");
  TopicConfig c;
  std::memcpy(&c, static_cast<const uint8_t*>(bytes) + offsetof(TopicLayout, config), sizeof(c));
  return ValidateTopicConfig(c, size);
}

Status ValidateTopicConfig(const TopicConfig& c, size_t size) {
  if (c.max_publishers == 0 || c.max_publishers > 64 || c.max_subscribers == 0 || c.max_subscribers > 64) {
    return Corrupt("topic publisher or subscriber count out of range");
  }
  if (c.queue_depth == 0 || c.queue_depth > (1u << 20) || (c.queue_depth & (c.queue_depth - 1)) != 0) {
    return Corrupt("topic queue depth is not a power of two up to 2^20");
  }
  if (c.history > kMaxTopicHistory) return Corrupt("topic history above 64");
  if (c.pub_stride != Align64(sizeof(PublisherRecord) + c.history * sizeof(SampleEntry)) ||
      c.ring_stride != Align64(sizeof(Ring) + uint64_t{c.queue_depth} * sizeof(SampleEntry))) {
    return Corrupt("topic record sizes do not match its config");
  }
  const uint64_t pubs_end = c.pubs_offset + c.max_publishers * c.pub_stride;
  const uint64_t subs_end = c.subs_offset + c.max_subscribers * sizeof(SubscriberRecord);
  const uint64_t rings_end = c.rings_offset + uint64_t{c.max_publishers} * c.max_subscribers * c.ring_stride;
  if (c.pubs_offset < sizeof(TopicLayout) || c.pubs_offset % 64 || c.subs_offset < pubs_end ||
      c.subs_offset % 64 || c.rings_offset < subs_end || c.rings_offset % 64 || rings_end > size) {
    return Corrupt("topic areas overlap or exceed the segment");
  }
  return Status::Ok();
}

}  // namespace internal

// The mapped topic segment and this endpoint's membership of the topic's pool.
class Topic {
 private:
  internal::TopicConfig cfg_{};

 public:
  Segment segment;
  TopicLayout* layout = nullptr;
  std::unique_ptr<Pool> pool;

  // Takes the mapped segment; its config is copied once and validated as copied, and never
  // read from shared memory again (a scribbled count or stride changes nothing here).
  Status Adopt(Segment seg) {
    segment = std::move(seg);
    layout = reinterpret_cast<TopicLayout*>(segment.base());
    std::memcpy(&cfg_, segment.base() + offsetof(TopicLayout, config), sizeof(cfg_));
    Status v = internal::ValidateTopicConfig(cfg_, segment.size());
    if (!v.ok()) return v.Annotate("topic '" + segment.name() + "'");
    return Status::Ok();
  }
  const internal::TopicConfig& config() const { return cfg_; }
  Status Damaged() const {
    return Corrupt("topic '" + segment.name() + "': another process shrank its shared memory; the topic is gone");
  }
  PublisherRecord& pub(int i) {
    return *reinterpret_cast<PublisherRecord*>(segment.base() + config().pubs_offset + i * config().pub_stride);
  }
  SampleEntry* history(int i) { return reinterpret_cast<SampleEntry*>(&pub(i) + 1); }
  SubscriberRecord& sub(int i) {
    return reinterpret_cast<SubscriberRecord*>(segment.base() + config().subs_offset)[i];
  }
  Ring& ring(int p, int s) {
    return *reinterpret_cast<Ring*>(segment.base() + config().rings_offset +
                                    (uint64_t(p) * config().max_subscribers + s) * config().ring_stride);
  }
  SampleEntry* entries(int p, int s) { return reinterpret_cast<SampleEntry*>(&ring(p, s) + 1); }

  static Result<std::unique_ptr<Topic>> OpenOrCreate(std::string_view name, const TopicOptions& o);
};

namespace {
// Subscribers sleep on `events` (bumped by a publish that finds one asleep).
EventCount EventsOf(Topic& t) { return EventCount::Counter(&t.layout->wake.events, &t.layout->wake.sleepers); }
// Publishers waiting for room in subscriber `rec`'s queue count themselves in its pub_waiting
// and sleep on the topic's `space`.
EventCount SpaceEvents(Topic& t, internal::SubscriberRecord& rec) {
  return EventCount::Counter(&t.layout->wake.space, &rec.state.pub_waiting);
}
}  // namespace

Result<std::unique_ptr<Topic>> Topic::OpenOrCreate(std::string_view name, const TopicOptions& o) {
  if (name.size() > 70) return InvalidArgument("topic name longer than 70 characters");
  WEFT_RETURN_IF_ERROR(ValidateName(name));
  auto topic = std::make_unique<Topic>();
  bool created_here = false;
  for (int attempt = 0; attempt < 3; ++attempt) {
    Result<Segment> seg = Segment::OpenValidated(name, SegmentKind::kTopic, internal::kTopicLayoutVersion,
                                                 internal::ValidateTopic);
    if (seg.ok()) {
      WEFT_RETURN_IF_ERROR(topic->Adopt(std::move(seg).value()));
      break;
    }
    if (seg.status().code() != Code::kNotFound) return seg.status();
    if (o.max_publishers == 0 || o.max_publishers > 64 || o.max_subscribers == 0 || o.max_subscribers > 64 ||
        o.queue_depth == 0 || o.queue_depth > (1u << 20) || (o.queue_depth & (o.queue_depth - 1)) != 0 ||
        o.history > internal::kMaxTopicHistory) {
      return InvalidArgument("topic options: 1-64 publishers and subscribers, queue depth a power of two, history <= 64");
    }
    internal::TopicConfig c{};
    c.max_publishers = o.max_publishers;
    c.max_subscribers = o.max_subscribers;
    c.queue_depth = o.queue_depth;
    c.history = o.history;
    c.pub_stride = Align64(sizeof(PublisherRecord) + o.history * sizeof(SampleEntry));
    c.ring_stride = Align64(sizeof(Ring) + uint64_t{o.queue_depth} * sizeof(SampleEntry));
    c.pubs_offset = Align64(sizeof(TopicLayout));
    c.subs_offset = c.pubs_offset + c.max_publishers * c.pub_stride;
    c.rings_offset = Align64(c.subs_offset + c.max_subscribers * sizeof(SubscriberRecord));
    Result<Segment> created = Segment::Create(name, SegmentKind::kTopic, internal::kTopicLayoutVersion,
                                              c.rings_offset + uint64_t{c.max_publishers} * c.max_subscribers * c.ring_stride);
    if (!created.ok()) {
      if (created.status().code() == Code::kAlreadyExists) continue;  // lost the race: open it
      return created.status();
    }
    reinterpret_cast<TopicLayout*>(created->base())->config = c;
    created->Publish();
    WEFT_RETURN_IF_ERROR(topic->Adopt(std::move(created).value()));
    created_here = true;
    break;
  }
  if (topic->segment.base() == nullptr) return Status(Code::kBusy, "topic keeps appearing and vanishing");
  if (!created_here && o.must_match &&
      (topic->config().queue_depth != o.queue_depth || topic->config().history != o.history)) {
    return InvalidArgument("topic '" + std::string(name) + "' exists with queue depth " +
                           std::to_string(topic->config().queue_depth) + " and history " +
                           std::to_string(topic->config().history) + ", not " + std::to_string(o.queue_depth) +
                           " and " + std::to_string(o.history) + " as asked");
  }
  Status registered = internal::RegisterName(name, static_cast<uint32_t>(SegmentKind::kTopic));
  if (!registered.ok()) {
    if (created_here) Segment::Unlink(name).IgnoreError();  // leave nothing behind
    return registered;
  }
  auto pool = Pool::OpenOrCreate(std::string(name) + ".pool", o.pool);
  if (!pool.ok()) {
    Status st = pool.status();
    return st.Annotate("topic pool");
  }
  topic->pool = std::move(pool).value();
  return topic;
}

// Claims the first free slot among `count` slots at `slot(i)`; returns its index.
template <typename SlotAt>
Result<int> ClaimAny(int count, SlotAt slot, const char* what, uint32_t* epoch) {
  for (int i = 0; i < count; ++i) {
    Result<uint32_t> e = BeginClaim(slot(i), what);
    if (e.ok()) {
      *epoch = *e;
      return i;
    }
  }
  return Status(Code::kBusy, std::string("every ") + what + " is held by a live process");
}

Status UnlinkTopic(std::string_view name) {
  WEFT_RETURN_IF_ERROR(ValidateName(name));
  // Only a topic is removed by this call: the name must be one.
  auto seg = Segment::Open(name, static_cast<uint32_t>(SegmentKind::kTopic), internal::kTopicLayoutVersion);
  if (!seg.ok()) return seg.status();
  WEFT_RETURN_IF_ERROR(Segment::Unlink(name));
  Status pool = Pool::Unlink(std::string(name) + ".pool");
  if (!pool.ok() && pool.code() != Code::kNotFound) return pool;
  return Status::Ok();  // the registry drops entries whose segment is gone
}

Result<std::vector<std::string>> ListTopics() {
  return internal::RegisteredNames(static_cast<uint32_t>(SegmentKind::kTopic));
}

Result<TopicInfo> InspectTopic(std::string_view name) {
  Result<Segment> seg = Segment::OpenValidated(name, SegmentKind::kTopic, internal::kTopicLayoutVersion,
                                               internal::ValidateTopic);
  if (!seg.ok()) return seg.status();
  Topic t;
  WEFT_RETURN_IF_ERROR(t.Adopt(std::move(seg).value()));
  const internal::TopicConfig& c = t.config();
  TopicInfo info;
  info.max_publishers = c.max_publishers;
  info.max_subscribers = c.max_subscribers;
  info.queue_depth = c.queue_depth;
  info.history = c.history;
  for (uint32_t p = 0; p < c.max_publishers; ++p) {
    const SlotView v = ReadSlot(t.pub(static_cast<int>(p)).slot);
    if (v.state != kSlotAttached && v.state != kSlotClaiming) continue;
    TopicInfo::Endpoint e;
    e.index = static_cast<int>(p);
    e.pid = v.who.pid;
    e.alive = !HolderGone(v);
    e.published = A(t.pub(static_cast<int>(p)).state.seq).load(std::memory_order_relaxed);
    info.publishers.push_back(e);
  }
  for (uint32_t s = 0; s < c.max_subscribers; ++s) {
    SubscriberRecord& rec = t.sub(static_cast<int>(s));
    const SlotView v = ReadSlot(rec.slot);
    if (v.state != kSlotAttached && v.state != kSlotClaiming) continue;
    TopicInfo::Endpoint e;
    e.index = static_cast<int>(s);
    e.pid = v.who.pid;
    e.alive = !HolderGone(v);
    const uint32_t policy = A(rec.state.on_full).load(std::memory_order_relaxed);
    e.on_full = OverflowName(static_cast<Overflow>(policy));
    for (uint32_t p = 0; p < c.max_publishers; ++p) {
      Ring& ring = t.ring(static_cast<int>(p), static_cast<int>(s));
      e.queued += A(ring.tail).load(std::memory_order_relaxed) - A(ring.head).load(std::memory_order_relaxed);
    }
    e.taken = A(rec.state.taken).load(std::memory_order_relaxed);
    e.drops_newest = A(rec.state.drops_newest).load(std::memory_order_relaxed);
    e.drops_oldest = A(rec.state.drops_oldest).load(std::memory_order_relaxed);
    info.subscribers.push_back(e);
  }
  return info;
}

// ---- publisher ------------------------------------------------------------------------------

Publisher::~Publisher() {
  Close().IgnoreError();
  if (send_fd_ >= 0) ::close(send_fd_);
}

Result<std::unique_ptr<Publisher>> Publisher::Open(std::string_view name, const TopicOptions& options) {
  auto topic = Topic::OpenOrCreate(name, options);
  if (!topic.ok()) return topic.status();
  std::unique_ptr<Publisher> pub(new Publisher());
  // A publisher facing a full queue spins a fixed 20 us, then sleeps until the subscriber has
  // emptied half of it. An adaptive spin grows long while the subscriber keeps up, and with
  // more processes than cores it takes the core a subscriber needs (64 B streams to 1-2
  // subscribers lost a third of their rate that way).
  pub->waiter_.set_policy({.spin_ns = 20'000, .adaptive = false, .liveness_check_ns = kLivenessSliceNs});
  pub->topic_ = std::move(topic).value();
  Topic& t = *pub->topic_;
  auto index = ClaimAny(static_cast<int>(t.config().max_publishers), [&](int i) -> Slot& { return t.pub(i).slot; },
                        "publisher slot", &pub->epoch_);
  if (!index.ok()) return index.status();
  pub->index_ = *index;
  internal::PublisherState& ps = t.pub(*index).state;
  // A predecessor that died mid-publish: revoke the holds it granted for entries that never
  // became visible (an entry is visible if it stands just below its ring's tail).
  // exchange: a subscriber may clear its own bit meanwhile (Subscriber::RecoverOrphans); each
  // bit is revoked by whoever clears it.
  const uint64_t bits = A(ps.pending_bits).exchange(0, std::memory_order_acq_rel);
  if (bits != 0) {
    const uint64_t block = A(ps.pending_block).load(std::memory_order_relaxed);
    const uint64_t seq = A(ps.pending_seq).load(std::memory_order_relaxed);
    uint64_t visible = 0;
    for (uint32_t s = 0; s < t.config().max_subscribers; ++s) {
      Ring& ring = t.ring(*index, static_cast<int>(s));
      const uint64_t tail = A(ring.tail).load(std::memory_order_acquire);
      if (tail == 0) continue;
      const SampleEntry e = LoadEntry(t.entries(*index, static_cast<int>(s))[(tail - 1) % t.config().queue_depth]);
      if (e.block == block && e.seq == seq && e.pool_slot < 64) visible |= uint64_t{1} << e.pool_slot;
    }
    for (uint64_t b = bits & ~visible; b != 0; b &= b - 1) {
      t.pool->Revoke(block, std::countr_zero(b)).IgnoreError();
    }
    A(ps.pending_bits).store(0, std::memory_order_release);
  }
  // A drop record a predecessor left (it died mid-drop) is resolved by its subscriber, which
  // alone knows which of its holds are still referenced (Subscriber::RecoverOrphans).
  // A predecessor's history was freed with its pool holds: start empty. Sequence numbers go on.
  A(ps.history_count).store(0, std::memory_order_relaxed);
  FinishClaim(t.pub(*index).slot, pub->epoch_);
  return pub;
}

int Publisher::subscribers_approx() const {
  int n = 0;
  for (uint32_t s = 0; s < topic_->config().max_subscribers; ++s) {
    n += ReadSlot(topic_->sub(s).slot).state == kSlotAttached;
  }
  return n;
}

Result<Sample> Publisher::Loan(size_t n) {
  if (index_ < 0) return Status(Code::kClosed, "publisher is closed");
  auto b = topic_->pool->Allocate(n);
  if (!b.ok()) return b.status();
  auto d = topic_->pool->Data(*b);
  if (!d.ok()) return d.status();
  Sample s;
  s.block = *b;
  s.data = *d;
  s.publisher = index_;
  return s;
}

Status Publisher::Discard(Sample& sample) {
  if (index_ < 0) return Status(Code::kClosed, "publisher is closed");
  Status s = topic_->pool->Release(sample.block);
  sample = Sample{};
  return s;
}

Status Publisher::Publish(Sample& sample, size_t size, Deadline deadline) {
  if (size > sample.data.size()) return InvalidArgument("publish size exceeds the loan");
  Status s = Publish(sample.block, size, deadline);
  if (s.ok()) sample = Sample{};
  return s;
}

namespace {

// The subscribers one publish goes to, and the pool slot of each, read once.
struct Targets {
  uint64_t subs = 0;   // bit s: subscriber s gets the sample
  uint64_t grant = 0;  // bit k: pool slot k gets a hold
  uint32_t slot_of[Pool::kMaxHolders];
};

enum class Room { kYes, kSkip };

// Phase 1, for one subscriber: makes room in its queue from publisher `p`, by its policy
// (waits, drops the oldest, or skips the sample: drop-newest, or a subscriber that left or
// died while we waited).
Result<Room> MakeRoom(Topic& t, int p, int s, const SlotView& v, Waiter& waiter, Deadline deadline) {
  const uint32_t depth = t.config().queue_depth;
  internal::SubscriberRecord& rec = t.sub(s);
  Ring& ring = t.ring(p, s);
  const uint64_t tail = A(ring.tail).load(std::memory_order_relaxed);
  const auto policy = static_cast<Overflow>(A(rec.state.on_full).load(std::memory_order_relaxed));
  for (;;) {
    const uint64_t head = A(ring.head).load(std::memory_order_acquire);
    if (tail - head < depth) return Room::kYes;
    if (policy == Overflow::kDropNewest || policy == Overflow::kFail) {
      // (A fail subscriber full here filled up after the check in Publish: counted as a drop.)
      A(rec.state.drops_newest).fetch_add(1, std::memory_order_relaxed);
      return Room::kSkip;
    }
    if (policy == Overflow::kDropOldest) {
      const SampleEntry old = LoadEntry(t.entries(p, s)[head % depth]);
      HeadPair cur = LoadHead(ring);
      if (cur.head != head) continue;  // the subscriber took it meanwhile
      if (cur.dropped != 0) {
        // A predecessor died mid-drop and the subscriber has not resolved it yet: this sample
        // is not queued for it (counted as dropped newest), rather than guess at its holds.
        A(rec.state.drops_newest).fetch_add(1, std::memory_order_relaxed);
        return Room::kSkip;
      }
      // Our own hold on the block keeps it from being freed and reused until the drop is
      // complete, so a revoke on our behalf after a crash can never hit a later sample.
      bool added = false;
      if (!t.pool->Hold(old.block, &added).ok()) continue;
      // Takes the oldest entry away from the subscriber and records its hold in the same
      // CAS; a failure means the subscriber took that entry first.
      const uint64_t record = internal::DropRecord(old.block, old.pool_slot);
      if (CasHead(ring, &cur, {head + 1, record})) {
        if (internal::Hooks().drop_stops_after_cas.load(std::memory_order_relaxed)) {
          return Status(Code::kInternal, "test hook: stopped after dropping");
        }
        t.pool->Revoke(old.block, static_cast<int>(old.pool_slot)).IgnoreError();
        ClearDrop(ring, record);
        A(rec.state.drops_oldest).fetch_add(1, std::memory_order_relaxed);
      }
      t.pool->Release(old.block).IgnoreError();
      continue;
    }
    // Block: wait for room (the subscriber wakes us once half its queue is free), unless it
    // dies or leaves: the liveness check runs once per slice.
    const WaitReport r = waiter.Wait(
        SpaceEvents(t, rec), deadline, [&] { return tail - A(ring.head).load(std::memory_order_acquire) < depth; },
        [&] {
          const SlotView now = ReadSlot(rec.slot);
          return now.state == kSlotAttached && now.epoch == v.epoch && !HolderGone(now);
        });
    if (r.end == WaitEnd::kReady) continue;
    if (r.end == WaitEnd::kStopped) return Room::kSkip;
    if (r.end == WaitEnd::kInterrupted) return Status(Code::kClosed, "publisher closed while waiting");
    return Status(Code::kTimeout, "subscriber " + std::to_string(s) + " of the topic is full");
  }
}

// A subscriber whose policy is fail refuses the whole publish when its queue is full: checked
// before anything is written or dropped for anyone. (Only this publisher adds to its rings, so
// room seen here stays.)
Status CheckFailSubscribers(Topic& t, int p) {
  // Most topics have none: one shared word says so, and the scan of every record is skipped.
  if (A(t.layout->wake.fail_subscribers).load(std::memory_order_acquire) == 0) return Status::Ok();
  const int subs = static_cast<int>(t.config().max_subscribers);
  for (int s = 0; s < subs; ++s) {
    internal::SubscriberRecord& rec = t.sub(s);
    if (A(rec.state.on_full).load(std::memory_order_relaxed) != static_cast<uint32_t>(Overflow::kFail)) continue;
    if (ReadSlot(rec.slot).state != kSlotAttached) continue;
    Ring& ring = t.ring(p, s);
    if (A(ring.tail).load(std::memory_order_relaxed) - A(ring.head).load(std::memory_order_acquire) >=
        t.config().queue_depth) {
      A(rec.state.drops_newest).fetch_add(1, std::memory_order_relaxed);
      return Status(Code::kResourceExhausted, "subscriber " + std::to_string(s) +
                                                  " of the topic is full and refuses producers (overflow policy fail)");
    }
  }
  return Status::Ok();
}

// Phases 2-4: writes the entries (not yet visible), hands out the holds with one OR into the
// block's mask, then makes the entries visible. Returns the sample's sequence number.
Result<uint64_t> Deliver(Topic& t, int p, BlockId block, size_t size, const Targets& tg) {
  const uint32_t depth = t.config().queue_depth;
  const int subs = static_cast<int>(t.config().max_subscribers);
  const uint64_t seq = A(t.pub(p).state.seq).load(std::memory_order_relaxed) + 1;
  for (int s = 0; s < subs; ++s) {
    if (!(tg.subs >> s & 1)) continue;
    Ring& ring = t.ring(p, s);
    const uint64_t tail = A(ring.tail).load(std::memory_order_relaxed);
    StoreEntry(t.entries(p, s)[tail % depth], {block, size, seq, tg.slot_of[s]});
  }
  internal::PublisherState& ps = t.pub(p).state;
  A(ps.pending_block).store(block, std::memory_order_relaxed);
  A(ps.pending_seq).store(seq, std::memory_order_relaxed);
  // release: block and seq are set before the bits say a publish is pending.
  A(ps.pending_bits).store(tg.grant, std::memory_order_release);
  if (tg.grant != 0) WEFT_RETURN_IF_ERROR(t.pool->Grant(block, tg.grant));
  if (internal::Hooks().publish_stops_after_grant.load(std::memory_order_relaxed)) {
    return Status(Code::kInternal, "test hook: stopped after granting");
  }
  A(ps.seq).store(seq, std::memory_order_relaxed);
  for (int s = 0; s < subs; ++s) {
    if (!(tg.subs >> s & 1)) continue;
    Ring& ring = t.ring(p, s);
    // release: publishes the entry (and, through Grant, the sample's bytes); pairs with the
    // acquire of the tail in Subscriber::TryTake.
    A(ring.tail).store(A(ring.tail).load(std::memory_order_relaxed) + 1, std::memory_order_release);
  }
  A(ps.pending_bits).store(0, std::memory_order_release);  // the entries are visible
  return seq;
}

// Phase 5: keeps the publisher's hold on the last `history` samples for late joiners, and
// drops it otherwise.
Status KeepHistory(Topic& t, int p, BlockId block, size_t size, uint64_t seq) {
  const uint32_t h = t.config().history;
  if (h == 0) return t.pool->Release(block);
  internal::PublisherState& ps = t.pub(p).state;
  const uint64_t count = A(ps.history_count).load(std::memory_order_relaxed);
  SampleEntry& slot = t.history(p)[count % h];
  if (count >= h) t.pool->Release(A(slot.block).load(std::memory_order_relaxed)).IgnoreError();
  StoreEntry(slot, {block, size, seq, 0});
  // release: the entry is complete before late joiners see the count.
  A(ps.history_count).store(count + 1, std::memory_order_release);
  return Status::Ok();
}

}  // namespace

Status Publisher::Publish(BlockId block, size_t size, Deadline deadline) {
  if (index_ < 0) return Status(Code::kClosed, "publisher is closed");
  Topic& t = *topic_;
  if (t.segment.damaged()) return t.Damaged();
  {
    auto d = t.pool->Data(block);
    if (!d.ok()) return d.status();
    if (size > d->size()) return InvalidArgument("publish size exceeds the loan");
  }
  WEFT_RETURN_IF_ERROR(CheckFailSubscribers(t, index_));
  // 1. Room in every attached subscriber's queue, or a drop per its policy.
  Targets tg;
  const int subs = static_cast<int>(t.config().max_subscribers);
  for (int s = 0; s < subs; ++s) {
    if (s == excluded_) continue;
    const SlotView v = ReadSlot(t.sub(s).slot);
    if (v.state != kSlotAttached) continue;
    Result<Room> room = MakeRoom(t, index_, s, v, waiter_, deadline);
    if (!room.ok()) return room.status();
    if (*room == Room::kSkip) continue;
    // The slot is shared memory a subscriber wrote: a value out of range names nobody.
    const uint32_t pool_slot = A(t.sub(s).state.pool_slot).load(std::memory_order_relaxed);
    if (pool_slot >= static_cast<uint32_t>(Pool::kMaxHolders)) continue;
    tg.subs |= uint64_t{1} << s;
    tg.grant |= uint64_t{1} << pool_slot;
    tg.slot_of[s] = pool_slot;
  }
  // 2-4. Entries, holds, visibility.
  Result<uint64_t> seq = Deliver(t, index_, block, size, tg);
  if (!seq.ok()) return seq.status();
  if (tg.subs != 0) {
    // One wake per sleep: sleepers woken but not yet running are not woken again. The notify's
    // fence also orders the descriptor checks below (Dekker with the arming in Take).
    EventsOf(t).Notify();
    for (int s = 0; s < subs; ++s) {  // subscribers waiting on their descriptors
      if (!(tg.subs >> s & 1)) continue;
      uint32_t& armed = t.sub(s).state.bell_armed;
      // acq_rel: one ring per arming; pairs with the seq_cst store that armed it.
      if (A(armed).load(std::memory_order_relaxed) == 0 || A(armed).exchange(0, std::memory_order_acq_rel) == 0) continue;
      const SlotView v = ReadSlot(t.sub(s).slot);
      shm::RingDoorbell(BellName(t.segment.name(), s, v.epoch), &send_fd_);
    }
  }
  // 5. History.
  WEFT_RETURN_IF_ERROR(KeepHistory(t, index_, block, size, *seq));
  // A shrink under us during the publish left it talking to zeros: nobody got the sample.
  if (t.segment.damaged()) return t.Damaged();
  return Status::Ok();
}

Status Publisher::Close() {
  if (index_ < 0) return Status::Ok();
  A(topic_->pub(index_).state.history_count).store(0, std::memory_order_release);
  ReleaseSlot(topic_->pub(index_).slot, epoch_, kSlotClosed);
  topic_->pool->Close().IgnoreError();  // releases loans and history
  index_ = -1;
  return Status::Ok();
}

// ---- subscriber -----------------------------------------------------------------------------

Subscriber::~Subscriber() {
  Close().IgnoreError();
  if (bell_fd_ >= 0) ::close(bell_fd_);
  if (send_fd_ >= 0) ::close(send_fd_);
}

Result<int> Subscriber::WaitFd() {
  if (index_ < 0) return Status(Code::kClosed, "subscriber is closed");
  if (bell_fd_ >= 0) return bell_fd_;
  const std::string bell = BellName(topic_->segment.name(), index_, epoch_);
  Result<int> fd = shm::BindDoorbell(bell);
  if (!fd.ok()) return fd.status();
  bell_fd_ = *fd;
  // The descriptor starts readable: a sample may already be queued, or a Take that missed
  // before the descriptor existed armed nothing. The first poll returns at once; the Take(Now)
  // that follows either gets a sample or arms the descriptor.
  shm::RingDoorbell(bell, &send_fd_);
  return bell_fd_;
}

Result<std::unique_ptr<Subscriber>> Subscriber::Open(std::string_view name, const SubscriberOptions& options,
                                                     const TopicOptions& create) {
  if (static_cast<uint32_t>(options.on_full) >= kOverflowCount) return InvalidArgument("unknown on_full policy");
  auto topic = Topic::OpenOrCreate(name, create);
  if (!topic.ok()) return topic.status();
  std::unique_ptr<Subscriber> sub(new Subscriber());
  sub->topic_ = std::move(topic).value();
  Topic& t = *sub->topic_;
  auto index = ClaimAny(static_cast<int>(t.config().max_subscribers), [&](int i) -> Slot& { return t.sub(i).slot; },
                        "subscriber slot", &sub->epoch_);
  if (!index.ok()) return index.status();
  const int s = *index;
  sub->index_ = s;
  sub->waiter_.set_policy(
      {.spin_ns = options.spin_ns, .adaptive = true, .liveness_check_ns = kLivenessSliceNs});
  internal::SubscriberState& st = t.sub(s).state;
  A(st.pool_slot).store(static_cast<uint32_t>(t.pool->holder_slot()), std::memory_order_relaxed);
  A(st.on_full).store(static_cast<uint32_t>(options.on_full), std::memory_order_relaxed);
  if (options.on_full == Overflow::kFail) A(t.layout->wake.fail_subscribers).fetch_add(1, std::memory_order_acq_rel);
  A(st.drops_newest).store(0, std::memory_order_relaxed);
  A(st.drops_oldest).store(0, std::memory_order_relaxed);
  A(st.taken).store(0, std::memory_order_relaxed);
  // Entries a predecessor left in our queues were granted to its pool slot, not ours: skip them.
  for (uint32_t p = 0; p < t.config().max_publishers; ++p) {
    Ring& ring = t.ring(static_cast<int>(p), s);
    // A predecessor's unrevoked drop went with its pool holds: forget it (no revoke).
    HeadPair cur = LoadHead(ring);
    while (!CasHead(ring, &cur, {A(ring.tail).load(std::memory_order_acquire), 0})) {
    }
  }
  FinishClaim(t.sub(s).slot, sub->epoch_);
  // History: hold the last samples of each live publisher, oldest first.
  const uint32_t h = std::min(options.history, t.config().history);
  sub->history_seq_.assign(t.config().max_publishers, 0);
  for (uint32_t p = 0; p < t.config().max_publishers && h > 0; ++p) {
    const SlotView v = ReadSlot(t.pub(static_cast<int>(p)).slot);
    if (v.state != kSlotAttached || HolderGone(v)) continue;
    internal::PublisherState& ps = t.pub(static_cast<int>(p)).state;
    const uint64_t count = A(ps.history_count).load(std::memory_order_acquire);
    for (uint64_t j = count > h ? count - h : 0; j < count; ++j) {
      SampleEntry& slot = t.history(static_cast<int>(p))[j % t.config().history];
      const SampleEntry e = LoadEntry(slot);
      bool added = false;
      if (!t.pool->Hold(e.block, &added).ok()) continue;
      // The publisher may have moved on and freed the block meanwhile: keep it only if the
      // history still names it, from the same publisher.
      const uint64_t now = A(ps.history_count).load(std::memory_order_acquire);
      if (now - j > t.config().history || LoadEntry(slot).seq != e.seq ||
          ReadSlot(t.pub(static_cast<int>(p)).slot).word != v.word) {
        t.pool->Release(e.block).IgnoreError();
        continue;
      }
      auto d = t.pool->Data(e.block);
      if (!d.ok()) {
        t.pool->Release(e.block).IgnoreError();
        continue;
      }
      sub->pending_.push_back({e.block, d->subspan(0, std::min<uint64_t>(e.size, d->size())), e.seq, static_cast<int>(p)});
      // Already granted through our queue: that entry will be skipped, and with it this extra hold.
      if (!added) sub->history_extra_.push_back(e.block);
      sub->history_seq_[p] = e.seq;
    }
  }
  return sub;
}

bool Subscriber::TryTake(Sample* out) {
  Topic& t = *topic_;
  const uint32_t pubs = t.config().max_publishers;
  const uint32_t depth = t.config().queue_depth;
  const uint32_t my_pool_slot = static_cast<uint32_t>(t.pool->holder_slot());
  for (uint32_t k = 0; k < pubs; ++k) {
    const int p = static_cast<int>((next_publisher_ + k) % pubs);
    Ring& ring = t.ring(p, index_);
    HeadPair cur{A(ring.head).load(std::memory_order_acquire), A(ring.dropped).load(std::memory_order_relaxed)};
    for (;;) {
      const uint64_t head = cur.head;
      // acquire: pairs with the release of the tail in Publish.
      const uint64_t tail = A(ring.tail).load(std::memory_order_acquire);
      if (head == tail) break;
      const SampleEntry e = LoadEntry(t.entries(p, index_)[head % depth]);
      // A full barrier: takes the entry, keeping the drop record (a failure means the publisher
      // dropped it, or the pair was read torn: cur is reloaded), and Dekker with a publisher
      // waiting for room (its store of pub_waiting, then its load of the head).
      if (!CasHead(ring, &cur, {head + 1, cur.dropped})) continue;
      cur.head = head + 1;
      if (cur.dropped != 0) orphan_check_ = true;  // mid-drop, or a dropper that died
      // A publisher waiting for room is woken once half the queue is free: one wake per half
      // queue, not one per sample.
      // (The head CAS is the seq_cst change of the event count's notify.)
      if (tail - (head + 1) <= depth / 2) SpaceEvents(t, t.sub(index_)).NotifySeqCst();
      if (e.pool_slot != my_pool_slot) continue;  // granted to a predecessor, not to us
      if (e.seq <= history_seq_[p]) {
        // Already delivered from the history. Its hold and this entry's grant are one bit,
        // counted twice only if the grant came first.
        auto it = std::find(history_extra_.begin(), history_extra_.end(), e.block);
        if (it != history_extra_.end()) {
          history_extra_.erase(it);
          t.pool->Release(e.block).IgnoreError();
        }
        continue;
      }
      auto d = t.pool->Data(e.block);
      if (!d.ok()) continue;
      *out = {e.block, d->subspan(0, std::min<uint64_t>(e.size, d->size())), e.seq, p};
      next_publisher_ = static_cast<uint32_t>(p + 1);
      return true;
    }
  }
  return false;
}

Result<Sample> Subscriber::Take(Deadline deadline) {
  if (index_ < 0) return Status(Code::kClosed, "subscriber is closed");
  Topic& t = *topic_;
  if (t.segment.damaged()) return t.Damaged();
  internal::SubscriberState& st = t.sub(index_).state;
  Sample out;
  auto done = [&] {
    A(st.taken).fetch_add(1, std::memory_order_relaxed);
    outstanding_.push_back(out.block);
    return out;
  };
  if (!pending_.empty()) {
    out = pending_.front();
    pending_.pop_front();
    return done();
  }
  if (orphan_check_) {
    orphan_check_ = false;
    RecoverOrphans();
  }
  if (TryTake(&out)) return done();
  if (deadline.is_now() && bell_fd_ >= 0) {
    // Arm the descriptor, then look once more: Dekker with the publisher's seq_cst RMW on
    // `events` before it reads bell_armed.
    shm::DrainDoorbell(bell_fd_);
    A(st.bell_armed).store(1, std::memory_order_seq_cst);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (TryTake(&out)) return done();
    {
      static const Status::Fixed kNone{Code::kWouldBlock, "no sample on the topic"};
      return Status(kNone);
    }
  }
  bool damaged = false;
  const WaitReport r = waiter_.Wait(EventsOf(t), deadline, [&] { return TryTake(&out); }, [&] {
    if (t.segment.damaged()) {
      damaged = true;
      return false;
    }
    // At most once per slice (it scans every publisher): whether a dead one left us holds.
    const int64_t now = MonotonicNs();
    if (now >= next_orphan_check_ns_) {
      next_orphan_check_ns_ = now + kLivenessSliceNs;
      RecoverOrphans();
    }
    return true;
  });
  switch (r.end) {
    case WaitEnd::kReady:
      return done();
    case WaitEnd::kInterrupted:
      return Status(Code::kClosed, "subscriber closed while waiting");
    case WaitEnd::kStopped:
      if (damaged) return t.Damaged();
      break;
    case WaitEnd::kTimeout:
      break;
  }
  // A miss allocates nothing (pollers see many).
  static const Status::Fixed kNone{Code::kWouldBlock, "no sample on the topic"};
  static const Status::Fixed kLate{Code::kTimeout, "no sample on the topic before the deadline"};
  return Status(deadline.is_now() ? kNone : kLate);
}

Status Subscriber::Release(const Sample& sample) {
  if (index_ < 0) return Status(Code::kClosed, "subscriber is closed");
  // Newest first: samples are mostly released soon after they are taken.
  for (size_t i = outstanding_.size(); i-- > 0;) {
    if (outstanding_[i] == sample.block) {
      outstanding_[i] = outstanding_.back();
      outstanding_.pop_back();
      break;
    }
  }
  return topic_->pool->Release(sample.block);
}

// A publisher that died between granting holds and making its entries visible left those holds
// behind: the entries that would have carried them never appear; one that died between a
// drop-oldest and its revoke left the dropped sample's hold. A successor publisher in its slot
// revokes them; a subscriber revokes its own at once, without waiting for a successor.
// Exactly one party clears each bit of pending_bits (fetch_and / exchange) and only that party
// revokes it.
size_t Subscriber::RecoverOrphans() {
  if (index_ < 0) return 0;
  Topic& t = *topic_;
  const int my_slot = t.pool->holder_slot();
  const uint64_t my_bit = uint64_t{1} << my_slot;
  const uint32_t depth = t.config().queue_depth;
  size_t revoked = 0;
  for (uint32_t p = 0; p < t.config().max_publishers; ++p) {
    internal::PublisherRecord& rec = t.pub(static_cast<int>(p));
    Ring& dring = t.ring(static_cast<int>(p), index_);
    const uint64_t record = A(dring.dropped).load(std::memory_order_acquire);
    const bool pending = (A(rec.state.pending_bits).load(std::memory_order_acquire) & my_bit) != 0;
    if (record == 0 && !pending) continue;
    if (!HolderGone(ReadSlot(rec.slot))) continue;  // publishing now
    // It died in the middle of dropping one of our samples: after the drop, maybe after the
    // revoke. The hold is ours to give back if nothing we have or will take refers to the block
    // (while the dropper lived, its own hold kept the block from being reused).
    if (record != 0 && ClearDrop(dring, record)) {
      const BlockId block = internal::DropBlock(record);
      if (internal::DropSlot(record) == my_slot && !Referenced(block) && t.pool->Revoke(block, my_slot).ok()) {
        ++revoked;
      }
    }
    if (!pending) continue;
    const uint64_t block = A(rec.state.pending_block).load(std::memory_order_relaxed);
    const uint64_t seq = A(rec.state.pending_seq).load(std::memory_order_relaxed);
    // Visible after all (the publisher died after advancing our tail): the entry carries it.
    Ring& ring = t.ring(static_cast<int>(p), index_);
    const uint64_t tail = A(ring.tail).load(std::memory_order_acquire);
    bool visible = false;
    if (tail != 0) {
      const SampleEntry e = LoadEntry(t.entries(static_cast<int>(p), index_)[(tail - 1) % depth]);
      visible = e.block == block && e.seq == seq;
    }
    if ((A(rec.state.pending_bits).fetch_and(~my_bit, std::memory_order_acq_rel) & my_bit) == 0) continue;
    if (A(rec.state.pending_block).load(std::memory_order_acquire) != block ||
        A(rec.state.pending_seq).load(std::memory_order_relaxed) != seq) {
      // A successor took the slot and is publishing: the bit was its grant; give it back.
      A(rec.state.pending_bits).fetch_or(my_bit, std::memory_order_acq_rel);
      continue;
    }
    if (!visible && t.pool->Revoke(block, my_slot).ok()) ++revoked;
  }
  return revoked;
}

// Whether one of our holds on `block` is accounted for: a sample taken and not released, a
// history sample waiting, or an entry granted to us in one of our queues.
bool Subscriber::Referenced(BlockId block) {
  if (std::find(outstanding_.begin(), outstanding_.end(), block) != outstanding_.end()) return true;
  for (const Sample& s : pending_) {
    if (s.block == block) return true;
  }
  if (std::find(history_extra_.begin(), history_extra_.end(), block) != history_extra_.end()) return true;
  Topic& t = *topic_;
  const uint32_t depth = t.config().queue_depth;
  const uint64_t my_slot = static_cast<uint64_t>(t.pool->holder_slot());
  for (uint32_t p = 0; p < t.config().max_publishers; ++p) {
    Ring& ring = t.ring(static_cast<int>(p), index_);
    const uint64_t tail = A(ring.tail).load(std::memory_order_acquire);
    for (uint64_t i = A(ring.head).load(std::memory_order_acquire); i < tail; ++i) {
      const SampleEntry e = LoadEntry(t.entries(static_cast<int>(p), index_)[i % depth]);
      if (e.block == block && e.pool_slot == my_slot) return true;
    }
    // A publish in progress (its entry not yet visible) that granted us this block.
    const internal::PublisherState& ps = t.pub(static_cast<int>(p)).state;
    if ((A(const_cast<uint64_t&>(ps.pending_bits)).load(std::memory_order_acquire) >> my_slot & 1) != 0 &&
        A(const_cast<uint64_t&>(ps.pending_block)).load(std::memory_order_acquire) == block) {
      return true;
    }
  }
  return false;
}

SubscriberCounters Subscriber::counters() const {
  SubscriberCounters c;
  if (index_ < 0) return c;
  internal::SubscriberState& st = topic_->sub(index_).state;
  c.taken = A(st.taken).load(std::memory_order_relaxed);
  c.drops_newest = A(st.drops_newest).load(std::memory_order_relaxed);
  c.drops_oldest = A(st.drops_oldest).load(std::memory_order_relaxed);
  return c;
}

void Publisher::Interrupt() {
  if (topic_ == nullptr) return;
  waiter_.Interrupt(EventCount::Uncounted(&topic_->layout->wake.space));
}

void Subscriber::Interrupt() {
  if (topic_ == nullptr) return;
  waiter_.Interrupt(EventsOf(*topic_));
}

Status Subscriber::Close() {
  if (index_ < 0) return Status::Ok();
  ReleaseSlot(topic_->sub(index_).slot, epoch_, kSlotClosed);
  topic_->pool->Close().IgnoreError();  // every hold: taken, queued, from history
  EventCount::Uncounted(&topic_->layout->wake.space).WakeAll();  // a publisher waiting on our full queue moves on
  pending_.clear();
  index_ = -1;
  return Status::Ok();
}

}  // namespace weft::shm
