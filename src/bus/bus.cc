#include "weft/bus/bus.h"

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <mutex>
#include <thread>

#include "internal/groups.h"
#include "internal/layout.h"
#include "internal/ring.h"
#include "weft/core/crc32c.h"
#include "weft/shm/segment.h"
#include "weft/shm/slot.h"

namespace weft::bus {

using namespace internal;

namespace {

constexpr int64_t kLivenessSliceNs = 20'000'000;  // a member checks the others' liveness this often
constexpr int64_t kLazyCommitNs = 50'000'000;     // an automatic commit reaches the shared cursors within this

// Each thread that ingests gets the next shard in turn, for the events it sends without a key.
uint32_t ThreadShard(uint32_t shards) {
  static std::atomic<uint32_t> next{0};
  thread_local const uint32_t mine = next.fetch_add(1, std::memory_order_relaxed);
  return mine % shards;
}

// The bytes of a bus: an anonymous mapping for memory:.
class Region {
 public:
  static Result<std::unique_ptr<Region>> Anonymous(size_t bytes) {
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return ErrnoStatus(errno, "mmap of " + std::to_string(bytes) + " bytes for the bus");
    auto r = std::unique_ptr<Region>(new Region());
    r->base_ = static_cast<uint8_t*>(p);
    r->size_ = bytes;
    return r;
  }
  ~Region() {
    if (base_ != nullptr) ::munmap(base_, size_);
  }
  uint8_t* base() const { return base_; }

 private:
  Region() = default;
  uint8_t* base_ = nullptr;
  size_t size_ = 0;
};

// What a bus handle and its consumers share; consumers keep it alive.
struct Core {
  BusOptions options;
  std::unique_ptr<Region> region;  // memory:
  shm::Segment segment;            // shm:
  View view;
  std::vector<Shard> shards;
  bool timestamps = false;
  const uint64_t id = NextCoreId();  // tells bus handles apart in thread-local caches

  // shm: the producer slot of each thread that ingested through this handle.
  std::mutex producers_mu;
  std::vector<std::pair<std::thread::id, std::pair<uint32_t, uint32_t>>> producers;  // thread -> (slot, epoch)

  Overflow policy() const { return options.backpressure; }
  bool shared() const { return segment.base() != nullptr; }

  // A shm: bus whose file another process shrank reads zeros where it was (weft/shm/segment.h):
  // every call says so instead of delivering nothing or writing events nobody will see.
  Status Intact() const {
    if (!segment.damaged()) return Status::Ok();
    return Status(Code::kCorrupt, "bus '" + options.url + "': another process shrank its shared memory; the bus is gone");
  }

  ~Core() {
    for (auto& [thread, slot] : producers) shm::ReleaseSlot(view.producer(slot.first).slot, slot.second, shm::kSlotEmpty);
  }

  static uint64_t NextCoreId() {
    static std::atomic<uint64_t> next{1};
    return next.fetch_add(1, std::memory_order_relaxed);
  }

  // The calling thread's producer slot (shm:), claimed on first use; nullptr for memory:.
  Result<ProducerSlot*> Producer() {
    if (!shared()) return static_cast<ProducerSlot*>(nullptr);
    thread_local uint64_t cached_core = 0;
    thread_local ProducerSlot* cached_slot = nullptr;
    if (cached_core == id) return cached_slot;
    std::lock_guard<std::mutex> g(producers_mu);
    const std::thread::id me = std::this_thread::get_id();
    for (auto& [thread, slot] : producers) {
      if (thread == me) {
        cached_core = id;
        cached_slot = &view.producer(slot.first);
        return cached_slot;
      }
    }
    for (uint32_t i = 0; i < kMaxProducers; ++i) {
      ProducerSlot& p = view.producer(i);
      // A dead holder's claim in flight is repaired before its slot is reused; if that cannot
      // be done yet (a live producer's intent covers it), the slot waits for a reader to do it.
      if (A(p.intent_shard).load(std::memory_order_acquire) != 0 && !RepairOrClear(p)) continue;
      Result<uint32_t> epoch = shm::BeginClaim(p.slot, "bus producer slot");
      if (!epoch.ok()) continue;
      if (A(p.intent_shard).load(std::memory_order_acquire) != 0) {  // died meanwhile: leave it
        shm::ReleaseSlot(p.slot, *epoch, shm::kSlotClosed);
        continue;
      }
      shm::FinishClaim(p.slot, *epoch);
      producers.push_back({me, {i, *epoch}});
      cached_core = id;
      cached_slot = &p;
      return cached_slot;
    }
    return Status(Code::kResourceExhausted, "bus '" + options.url + "' has " + std::to_string(kMaxProducers) +
                                                " producing threads already");
  }

  // The claim in flight of a producer slot whose holder is gone: pads what it left unpublished.
  bool RepairOrClear(ProducerSlot& p) {
    const shm::SlotView holder = shm::ReadSlot(p.slot);
    if (!shm::HolderGone(holder)) return false;
    const uint64_t s = A(p.intent_shard).load(std::memory_order_acquire);
    if (s == 0 || s > shards.size()) return s == 0;
    Shard& sh = shards[s - 1];
    const uint64_t pos = A(p.intent_pos).load(std::memory_order_relaxed);
    const uint64_t end = A(p.intent_end).load(std::memory_order_relaxed);
    // Space below `oldest` was reclaimed: whatever of the claim lay there was published.
    const uint64_t stuck = sh.PublishedEnd(std::max(pos, sh.oldest()));
    if (stuck >= end || stuck >= sh.tail()) {  // all published, or the claim never happened
      uint64_t expect = s;
      return A(p.intent_shard).compare_exchange_strong(expect, 0, std::memory_order_acq_rel) || expect == 0;
    }
    return sh.Repair(stuck) && A(p.intent_shard).load(std::memory_order_acquire) == 0;
  }
};

constexpr std::string_view kShm = "shm:";

Status CheckOptions(BusOptions* o) {
  if (o->url.rfind(kShm, 0) == 0) {
    const Status named = shm::ValidateName(std::string_view(o->url).substr(kShm.size()));
    if (!named.ok()) return Status(named.code(), "bus url '" + o->url + "': " + named.message());
  } else if (o->url != "memory:") {
    return Status(Code::kInvalidArgument,
                  "bus url '" + o->url + "': memory: or shm:<name> (log:, nats: and redis: are not built yet)");
  }
  if (o->shards == 0) o->shards = std::clamp<uint32_t>(std::thread::hardware_concurrency(), 1, kMaxShards);
  if (o->shards > kMaxShards) return Status(Code::kInvalidArgument, "a bus has at most " + std::to_string(kMaxShards) + " shards");
  const uint64_t b = o->shard_bytes;
  if (b < kMinShardBytes || b > (uint64_t{1} << 40) || (b & (b - 1)) != 0) {
    return Status(Code::kInvalidArgument, "shard_bytes must be a power of two from 4 KiB to 1 TiB");
  }
  const uint64_t most = b / 4 - sizeof(RecordHeader) - 8;
  if (o->max_event == 0) o->max_event = static_cast<uint32_t>(std::min<uint64_t>(most, UINT32_MAX / 2));
  if (o->max_event > most) {
    return Status(Code::kInvalidArgument, "max_event " + std::to_string(o->max_event) + " does not fit a quarter of a " +
                                              std::to_string(b) + "-byte shard (at most " + std::to_string(most) + ")");
  }
  if (static_cast<uint32_t>(o->backpressure) >= kOverflowCount) return Status(Code::kInvalidArgument, "unknown backpressure policy");
  if (o->groups.size() > kMaxGroups) return Status(Code::kInvalidArgument, "a bus has at most " + std::to_string(kMaxGroups) + " groups");
  for (const std::string& g : o->groups) WEFT_RETURN_IF_ERROR(ValidateGroupName(g));
  return Status::Ok();
}

class Member final : public Consumer {
 public:
  Member(std::shared_ptr<Core> core, uint32_t group, std::string name, uint32_t index, uint32_t epoch,
         const ConsumerOptions& options)
      : core_(std::move(core)), v_(core_->view), g_(group), name_(std::move(name)), index_(index), epoch_(epoch),
        me_(OwnerWord(index, epoch)), options_(options), waiter_(options.wait), owned_(v_.geo.shards, false),
        next_(v_.geo.shards, 0), taken_(v_.geo.shards, 0), published_(v_.geo.shards, 0) {
    waiter_.set_policy({.spin_ns = options.wait.spin_ns, .adaptive = options.wait.adaptive,
                        .liveness_check_ns = kLivenessSliceNs});
  }
  ~Member() override { Close().IgnoreError(); }

  Result<std::span<const Event>> Poll(size_t limit, Deadline deadline) override {
    if (closed_) return Status(Code::kClosed, "consumer is closed");
    if (limit == 0) return InvalidArgument("poll limit is 0");
    if (options_.auto_commit) CommitTaken(false);
    batch_.clear();
    for (;;) {
      if (waiter_.interrupted()) return Status(Code::kClosed, "consumer interrupted");
      WEFT_RETURN_IF_ERROR(core_->Intact());
      Rebalance();
      WEFT_RETURN_IF_ERROR(Gather(limit));
      if (!batch_.empty()) return std::span<const Event>(batch_);
      if (deadline.is_now()) {
        static const Status::Fixed kNone{Code::kWouldBlock, "no event yet"};
        return Status(kNone);
      }
      const WaitReport r = waiter_.Wait(
          GroupEvents(v_, g_), deadline, [&] { return Ready(); },
          [&] {
            if (!core_->Intact().ok()) return false;  // the loop reports it
            if (ReapDeadMembers(v_, g_)) MembershipChanged(v_, g_);
            RepairStuckShards();
            return true;
          });
      if (r.end == WaitEnd::kInterrupted) return Status(Code::kClosed, "consumer interrupted");
      if (r.end == WaitEnd::kStopped) continue;
      if (r.end == WaitEnd::kTimeout) {
        static const Status::Fixed kLate{Code::kTimeout, "no event before the deadline"};
        return Status(kLate);
      }
    }
  }

  Status Commit() override {
    if (closed_) return Status(Code::kClosed, "consumer is closed");
    CommitTaken();
    batch_.clear();
    return Status::Ok();
  }

  std::vector<uint32_t> shards() const override {
    std::vector<uint32_t> out;
    for (uint32_t s = 0; s < v_.geo.shards; ++s) {
      if (owned_[s]) out.push_back(s);
    }
    return out;
  }
  const std::string& group() const override { return name_; }

  void Interrupt() override { waiter_.Interrupt(GroupEvents(v_, g_)); }

  Status Close() override {
    if (closed_) return Status::Ok();
    closed_ = true;
    if (options_.auto_commit) CommitTaken();
    batch_.clear();
    for (uint32_t s = 0; s < v_.geo.shards; ++s) {
      if (owned_[s]) Release(s);
    }
    shm::ReleaseSlot(v_.group(g_).members[index_], epoch_, shm::kSlotEmpty);
    MembershipChanged(v_, g_);
    return Status::Ok();
  }

 private:
  // Commits what was taken from every shard this member reads. Under block, an automatic
  // commit (at a poll) reaches the shared cursors lazily: once an eighth of the ring was taken
  // since the last, or when a producer sleeps waiting for space, or 50 ms later; until then the
  // group would resume a little earlier (at-least-once either way). Under the dropping
  // policies it is written at once: what a member holds cannot be dropped, so it holds only
  // its last batch. Commit, Close and a handover publish at once.
  void CommitTaken(bool now = true) {
    const bool lazy = !now && core_->policy() == Overflow::kBlock;
    const int64_t t = lazy ? MonotonicNs() : 0;
    const bool due = !lazy || t - published_at_ >= kLazyCommitNs;
    for (uint32_t s = 0; s < v_.geo.shards; ++s) {
      if (!owned_[s] || taken_[s] == 0) continue;
      Shard& sh = core_->shards[s];
      if (!due && next_[s] - published_[s] < v_.geo.shard_bytes / 8 &&
          A(sh.state().space_sleepers).load(std::memory_order_relaxed) == 0) {
        continue;
      }
      sh.Commit(g_, next_[s], core_->policy());
      published_[s] = next_[s];
      taken_[s] = 0;
    }
    if (lazy && due) published_at_ = t;
  }

  void Release(uint32_t s) {
    if (options_.auto_commit && taken_[s] != 0) core_->shards[s].Commit(g_, next_[s], core_->policy());
    published_[s] = next_[s];
    taken_[s] = 0;
    uint64_t expect = me_;
    A(v_.cursor(g_, s).owner).compare_exchange_strong(expect, 0, std::memory_order_acq_rel);
    owned_[s] = false;
    GroupEvents(v_, g_).WakeAll();  // the member it goes to may be waiting for it
  }

  // Takes shard s if its owner is gone; the group resumes there from the committed position.
  bool Acquire(uint32_t s) {
    GroupShard& c = v_.cursor(g_, s);
    uint64_t owner = A(c.owner).load(std::memory_order_acquire);
    if (owner == me_) return true;
    if (!OwnerGone(v_, g_, owner)) return false;
    if (!A(c.owner).compare_exchange_strong(owner, me_, std::memory_order_acq_rel)) return false;
    // What the previous owner took but did not commit is delivered again (at-least-once):
    // next goes back to committed, both read and written at once (a producer may move them
    // under drop_oldest).
    WordPair p = LoadPair(&c.cursors);
    while (p.first != p.second && !CasPair(&c.cursors, &p, {p.second, p.second})) {
    }
    next_[s] = p.second;
    published_[s] = p.second;
    owned_[s] = true;
    taken_[s] = 0;
    return true;
  }

  void Rebalance() {
    const uint32_t gen = A(v_.group(g_).generation).load(std::memory_order_acquire);
    if (gen == seen_generation_ && !pending_) return;
    const std::vector<uint32_t> live = LiveMembers(v_, g_);
    auto me = std::find(live.begin(), live.end(), index_);
    std::vector<bool> assigned(v_.geo.shards, false);
    if (me != live.end()) {
      for (uint32_t s : AssignedShards(v_.geo.shards, live.size(), static_cast<size_t>(me - live.begin()))) {
        assigned[s] = true;
      }
    }
    for (uint32_t s = 0; s < v_.geo.shards; ++s) {
      if (owned_[s] && !assigned[s]) Release(s);
    }
    pending_ = false;
    for (uint32_t s = 0; s < v_.geo.shards; ++s) {
      if (assigned[s] && !owned_[s] && !Acquire(s)) pending_ = true;  // its owner hands it over at its next poll
    }
    seen_generation_ = gen;
  }

  // A shard whose next record was claimed and never published may belong to a producer that
  // died in between: its claim is turned into pads (Shard::Repair), and reading goes on.
  void RepairStuckShards() {
    for (uint32_t s = 0; s < v_.geo.shards; ++s) {
      if (!owned_[s]) continue;
      Shard& sh = core_->shards[s];
      const uint64_t at = CurrentNext(s);
      if (!sh.IsPublished(at) && sh.tail() > at) sh.Repair(at);
    }
  }

  // True when a poll would find something: an event in an owned shard, a membership change,
  // or a shard this member waits for that its owner has let go.
  bool Ready() {
    if (A(v_.group(g_).generation).load(std::memory_order_acquire) != seen_generation_) return true;
    for (uint32_t s = 0; s < v_.geo.shards; ++s) {
      if (owned_[s] && core_->shards[s].IsPublished(CurrentNext(s))) return true;
    }
    if (pending_) {
      for (uint32_t s = 0; s < v_.geo.shards; ++s) {
        if (!owned_[s] && OwnerGone(v_, g_, A(v_.cursor(g_, s).owner).load(std::memory_order_acquire))) return true;
      }
    }
    return false;
  }

  // Where this member reads shard s next: its own cursor, or under drop_oldest the shared one
  // (producers move it past events they take away).
  uint64_t CurrentNext(uint32_t s) const {
    if (core_->policy() != Overflow::kDropOldest) return next_[s];
    return std::max(next_[s], NextOf(v_.cursor(g_, s)));
  }

  Status Gather(size_t limit) {
    const uint32_t n = v_.geo.shards;
    for (uint32_t k = 0; k < n && batch_.size() < limit; ++k) {
      const uint32_t s = (rotation_ + k) % n;
      if (!owned_[s]) continue;
      Shard& sh = core_->shards[s];
      for (;;) {
        const uint64_t from = CurrentNext(s);
        const size_t before = batch_.size();
        Result<uint64_t> to = sh.Read(from, limit - batch_.size(), &batch_);
        if (!to.ok() || !sh.Take(g_, from, to.ok() ? *to : from, core_->policy())) {
          batch_.resize(before);
          // A producer took events away under us (drop_oldest): read again where it left us.
          if (core_->policy() == Overflow::kDropOldest && CurrentNext(s) != from) continue;
          if (!to.ok()) return to.status();
          continue;
        }
        if (*to == from) break;
        const uint64_t got = batch_.size() - before;
        GroupShard& c = v_.cursor(g_, s);
        A(c.delivered).store(A(c.delivered).load(std::memory_order_relaxed) + got, std::memory_order_relaxed);
        next_[s] = *to;
        taken_[s] += got == 0 ? 1 : got;  // a pad moves the cursor too: commit it
        break;
      }
    }
    ++rotation_;
    return Status::Ok();
  }

  std::shared_ptr<Core> core_;
  View v_;
  uint32_t g_;
  std::string name_;
  uint32_t index_;
  uint32_t epoch_;
  uint64_t me_;
  ConsumerOptions options_;
  Waiter waiter_;
  std::vector<bool> owned_;
  std::vector<uint64_t> next_;   // the next position to read, per owned shard
  std::vector<uint64_t> taken_;  // taken since the last commit (0: nothing to commit)
  std::vector<uint64_t> published_;  // the committed position last written to the shared cursors
  int64_t published_at_ = 0;
  std::vector<Event> batch_;
  uint32_t seen_generation_ = UINT32_MAX;
  bool pending_ = false;
  uint32_t rotation_ = 0;
  bool closed_ = false;
};

class RingBus final : public Bus {
 public:
  explicit RingBus(std::shared_ptr<Core> core) : core_(std::move(core)) {}

  Result<Position> Ingest(ByteView data, Deadline deadline) override {
    return IngestOne(ThreadShard(core_->view.geo.shards), ByteView(), data, deadline);
  }

  Result<Position> IngestKeyed(ByteView key, ByteView data, Deadline deadline) override {
    if (key.size() > UINT16_MAX) return InvalidArgument("a key has at most 65535 bytes");
    return IngestOne(ShardOf(key), key, data, deadline);
  }

  Result<size_t> IngestBatch(std::span<const ByteView> events, Deadline deadline) override {
    if (events.empty()) return size_t{0};
    const uint32_t s = ThreadShard(core_->view.geo.shards);
    Shard& sh = core_->shards[s];
    thread_local std::vector<uint64_t> sizes;
    sizes.clear();
    for (const ByteView& e : events) {
      WEFT_RETURN_IF_ERROR(CheckSize(0, e.size()));
      sizes.push_back(RecordBytes(Fixed() + e.size()));
    }
    WEFT_RETURN_IF_ERROR(core_->Intact());
    Result<ProducerSlot*> intent = core_->Producer();
    if (!intent.ok()) return intent.status();
    const int64_t ts = core_->timestamps ? WallNs() : 0;
    size_t done = 0;
    Waiter waiter;
    while (done < events.size()) {
      const std::span<const uint64_t> rest(sizes.data() + done, sizes.size() - done);
      uint64_t pos = 0;
      size_t n = sh.TryClaim(rest, core_->policy(), &pos, *intent);
      if (n == 0 && core_->policy() == Overflow::kBlock) {
        const WaitReport r = waiter.Wait(
            sh.SpaceEvents(), deadline, [&] { return (n = sh.TryClaim(rest.first(1), core_->policy(), &pos, *intent)) != 0; },
            [] { return true; });
        if (r.end != WaitEnd::kReady) break;
      }
      if (n == 0) break;
      thread_local std::vector<uint64_t> at;
      at.resize(n);
      PauseForTest();
      for (size_t i = 0; i < n; ++i) pos = sh.Write(pos, ByteView(), events[done + i], ts, core_->timestamps, true, &at[i]);
      sh.Publish(at);
      if (*intent != nullptr) A((*intent)->intent_shard).store(0, std::memory_order_release);  // published
      sh.Announce();
      // Shrunk while writing: these events went to memory nobody shares. Say so; the caller
      // still has them.
      WEFT_RETURN_IF_ERROR(core_->Intact());
      done += n;
    }
    if (done < events.size()) {
      switch (core_->policy()) {
        case Overflow::kDropNewest:
        case Overflow::kDropOldest:
          sh.CountDropped(events.size() - done);
          return done;
        case Overflow::kFail:
          if (done == 0) {
            sh.CountDropped(events.size());
            return Full(s);
          }
          return done;
        case Overflow::kBlock:
          if (done == 0) return Status(Code::kTimeout, "bus shard " + std::to_string(s) + " stayed full until the deadline");
          return done;
      }
    }
    return done;
  }

  Result<std::unique_ptr<Consumer>> Subscribe(std::string_view group, const ConsumerOptions& options) override {
    const View& v = core_->view;
    auto g = FindOrCreateGroup(v, group, options.start);
    if (!g.ok()) return g.status();
    GroupRecord& gr = v.group(*g);
    for (uint32_t i = 0; i < kMaxMembers; ++i) {
      Result<uint32_t> epoch = shm::BeginClaim(gr.members[i], "bus group member");
      if (!epoch.ok()) continue;
      shm::FinishClaim(gr.members[i], *epoch);
      auto member = std::make_unique<Member>(core_, *g, std::string(group), i, *epoch, options);
      MembershipChanged(v, *g);
      return std::unique_ptr<Consumer>(std::move(member));
    }
    return Status(Code::kResourceExhausted,
                  "group '" + std::string(group) + "' has " + std::to_string(kMaxMembers) + " members already");
  }

  BusStats Stats() const override {
    const View& v = core_->view;
    BusStats out;
    out.shards = v.geo.shards;
    for (uint32_t s = 0; s < v.geo.shards; ++s) {
      const Shard& sh = core_->shards[s];
      ShardState& st = sh.state();
      ShardStats ss;
      ss.tail = sh.tail();
      ss.oldest = sh.oldest();
      ss.depth_bytes = ss.tail - ss.oldest;
      ss.ingested = A(st.ingested).load(std::memory_order_relaxed);
      ss.dropped_newest = A(st.dropped_newest).load(std::memory_order_relaxed);
      ss.dropped_oldest = A(st.dropped_oldest).load(std::memory_order_relaxed);
      ss.lost_events = A(st.lost_events).load(std::memory_order_relaxed);
      out.ingested += ss.ingested;
      out.dropped_newest += ss.dropped_newest;
      out.dropped_oldest += ss.dropped_oldest;
      out.lost_events += ss.lost_events;
      out.per_shard.push_back(ss);
    }
    const uint32_t active = A(v.header().groups_active).load(std::memory_order_acquire);
    for (uint32_t g = 0; g < kMaxGroups; ++g) {
      if ((active & (1u << g)) == 0) continue;
      GroupRecord& gr = v.group(g);
      GroupStats gs;
      const uint32_t n = std::min(A(gr.name_length).load(std::memory_order_acquire), kMaxGroupName);
      for (uint32_t i = 0; i < n; ++i) gs.name.push_back(A(gr.name[i]).load(std::memory_order_relaxed));
      gs.members = static_cast<uint32_t>(LiveMembers(v, g).size());
      gs.holders = Holders([&](uint32_t i) -> shm::Slot& { return gr.members[i]; }, kMaxMembers);
      for (uint32_t s = 0; s < v.geo.shards; ++s) {
        GroupShard& c = v.cursor(g, s);
        GroupShardStats x;
        const WordPair p = LoadPair(&c.cursors);
        x.next = p.first;
        x.committed = p.second;
        x.lag_bytes = out.per_shard[s].tail > x.committed ? out.per_shard[s].tail - x.committed : 0;
        x.delivered = A(c.delivered).load(std::memory_order_relaxed);
        x.dropped = A(c.dropped).load(std::memory_order_relaxed);
        const uint64_t owner = A(c.owner).load(std::memory_order_acquire);
        x.owner = OwnerGone(v, g, owner) ? -1 : static_cast<int32_t>((owner & 0xFF) - 1);
        gs.delivered += x.delivered;
        gs.dropped += x.dropped;
        gs.lag_bytes += x.lag_bytes;
        gs.shards.push_back(x);
      }
      out.groups.push_back(std::move(gs));
    }
    if (core_->shared()) out.producers = Holders([&](uint32_t i) -> shm::Slot& { return v.producer(i).slot; }, kMaxProducers);
    return out;
  }

  uint32_t shards() const override { return core_->view.geo.shards; }
  const BusOptions& options() const override { return core_->options; }

 private:
  uint64_t Fixed() const { return core_->timestamps ? 8 : 0; }

  template <typename SlotAt>
  static std::vector<Participant> Holders(SlotAt slot, uint32_t count) {
    std::vector<Participant> out;
    for (uint32_t i = 0; i < count; ++i) {
      const shm::SlotView sv = shm::ReadSlot(slot(i));
      if (sv.state != shm::kSlotAttached && sv.state != shm::kSlotClaiming) continue;
      out.push_back({i, sv.who.pid, !shm::HolderGone(sv)});
    }
    return out;
  }

  static void PauseForTest() {
    const int64_t ns = PauseAfterClaimForTest().load(std::memory_order_relaxed);
    if (ns > 0) std::this_thread::sleep_for(std::chrono::nanoseconds(ns));
  }

  Status CheckSize(size_t key, size_t data) const {
    if (key + data > core_->options.max_event) {
      return Status(Code::kTooLarge, "an event of " + std::to_string(key + data) + " bytes (key and data) exceeds max_event " +
                                         std::to_string(core_->options.max_event));
    }
    return Status::Ok();
  }

  static Status Full(uint32_t s) {
    return Status(Code::kResourceExhausted,
                  "bus shard " + std::to_string(s) + " is full and refuses producers (backpressure fail)");
  }

  Result<Position> IngestOne(uint32_t s, ByteView key, ByteView data, Deadline deadline) {
    WEFT_RETURN_IF_ERROR(CheckSize(key.size(), data.size()));
    WEFT_RETURN_IF_ERROR(core_->Intact());
    Result<ProducerSlot*> intent = core_->Producer();
    if (!intent.ok()) return intent.status();
    Shard& sh = core_->shards[s];
    const uint64_t size = RecordBytes(Fixed() + key.size() + data.size());
    uint64_t pos = 0;
    if (sh.TryClaim(std::span<const uint64_t>(&size, 1), core_->policy(), &pos, *intent) == 0) {
      switch (core_->policy()) {
        case Overflow::kDropNewest:
        case Overflow::kDropOldest:  // what members hold cannot be taken away: this event goes
          sh.CountDropped(1);
          return Position{s, kNoOffset};
        case Overflow::kFail:
          sh.CountDropped(1);
          return Full(s);
        case Overflow::kBlock: {
          Waiter waiter;
          const WaitReport r = waiter.Wait(
              sh.SpaceEvents(), deadline,
              [&] { return sh.TryClaim(std::span<const uint64_t>(&size, 1), Overflow::kBlock, &pos, *intent) != 0; },
              [] { return true; });
          if (r.end != WaitEnd::kReady) {
            return Status(Code::kTimeout, "bus shard " + std::to_string(s) + " stayed full until the deadline");
          }
          break;
        }
      }
    }
    PauseForTest();
    const int64_t ts = core_->timestamps ? WallNs() : 0;
    const uint64_t end = sh.Write(pos, key, data, ts, core_->timestamps);
    if (*intent != nullptr) A((*intent)->intent_shard).store(0, std::memory_order_release);  // published
    sh.Announce();
    WEFT_RETURN_IF_ERROR(core_->Intact());  // shrunk meanwhile: the event is not in the bus
    return Position{s, end - size};
  }

  std::shared_ptr<Core> core_;
};

}  // namespace

uint32_t Bus::ShardOf(ByteView key) const { return Crc32c(0, key.data(), key.size()) % shards(); }

namespace {

// Lays a new bus out at `base` (zeroed memory of geo.total bytes).
void InitLayout(uint8_t* base, const Geometry& geo, const BusOptions& o) {
  BusHeader& h = *reinterpret_cast<BusHeader*>(base);
  h.layout_version = kLayoutVersion;
  h.shards = o.shards;
  h.shard_bytes = o.shard_bytes;
  h.max_event = o.max_event;
  h.backpressure = static_cast<uint32_t>(o.backpressure);
  h.flags = o.timestamps ? uint32_t{kBusTimestamps} : 0u;
  h.bytes = geo.total;
}

// Takes the options of a bus that exists from its (checked) header; with must_match, refuses
// one that differs from what was asked.
Status Adopt(const BusHeader& h, BusOptions* o) {
  BusOptions found = *o;
  found.shards = h.shards;
  found.shard_bytes = h.shard_bytes;
  found.max_event = h.max_event;
  found.backpressure = static_cast<Overflow>(h.backpressure);
  found.timestamps = (h.flags & kBusTimestamps) != 0;
  if (o->must_match && (found.shards != o->shards || found.shard_bytes != o->shard_bytes ||
                        found.max_event != o->max_event || found.backpressure != o->backpressure ||
                        found.timestamps != o->timestamps)) {
    return Status(Code::kInvalidArgument, "bus '" + o->url + "' exists with " + std::to_string(found.shards) +
                                              " shards of " + std::to_string(found.shard_bytes) + " bytes, max_event " +
                                              std::to_string(found.max_event) + ", backpressure " +
                                              OverflowName(found.backpressure) + ": not what was asked");
  }
  *o = found;
  return Status::Ok();
}

// Opens the segment of a shm: bus, or creates it; leaves core->view pointing at its layout.
Status OpenShm(Core& core, BusOptions* o) {
  const std::string name = o->url.substr(kShm.size());
  for (int attempt = 0; attempt < 3; ++attempt) {
    Result<shm::Segment> seg =
        shm::Segment::OpenValidated(name, shm::SegmentKind::kBus, kLayoutVersion, ValidateBusSegment);
    if (seg.ok()) {
      core.segment = std::move(seg).value();
      BusHeader h;
      std::memcpy(&h, core.segment.base() + kSegmentLayoutOffset, sizeof(h));  // checked by ValidateBusSegment
      WEFT_RETURN_IF_ERROR(Adopt(h, o));
      core.view = View{core.segment.base() + kSegmentLayoutOffset, GeometryOf(o->shards, o->shard_bytes)};
      return Status::Ok();
    }
    if (seg.status().code() != Code::kNotFound || !o->create) return seg.status();
    const Geometry geo = GeometryOf(o->shards, o->shard_bytes);
    Result<shm::Segment> made =
        shm::Segment::Create(name, shm::SegmentKind::kBus, kLayoutVersion, kSegmentLayoutOffset + geo.total);
    if (!made.ok()) {
      if (made.status().code() == Code::kAlreadyExists) continue;  // lost the race: open it
      return made.status();
    }
    InitLayout(made->base() + kSegmentLayoutOffset, geo, *o);
    made->Publish();
    core.segment = std::move(made).value();
    core.view = View{core.segment.base() + kSegmentLayoutOffset, geo};
    return Status::Ok();
  }
  return Status(Code::kBusy, "bus '" + o->url + "' keeps appearing and vanishing");
}

}  // namespace

Status Bus::Unlink(std::string_view url) {
  if (url.rfind(kShm, 0) != 0) return InvalidArgument("only a shm: bus has a name to remove");
  return shm::Segment::Unlink(url.substr(kShm.size()));
}

Result<std::unique_ptr<Bus>> Bus::Open(const BusOptions& options) {
  BusOptions o = options;
  WEFT_RETURN_IF_ERROR(CheckOptions(&o));
  auto core = std::make_shared<Core>();
  if (o.url.rfind(kShm, 0) == 0) {
    WEFT_RETURN_IF_ERROR(OpenShm(*core, &o));
  } else {
    const Geometry geo = GeometryOf(o.shards, o.shard_bytes);
    auto region = Region::Anonymous(geo.total);
    if (!region.ok()) return region.status();
    core->region = std::move(region).value();
    InitLayout(core->region->base(), geo, o);
    core->view = View{core->region->base(), geo};
  }
  core->view.geo.max_event = o.max_event;
  core->timestamps = o.timestamps;
  for (uint32_t s = 0; s < o.shards; ++s) core->shards.emplace_back(core->view, s);
  core->options = o;
  for (const std::string& g : o.groups) {
    auto made = FindOrCreateGroup(core->view, g, Start::kOldest);
    if (!made.ok()) return made.status();
  }
  return std::unique_ptr<Bus>(new RingBus(std::move(core)));
}

}  // namespace weft::bus
