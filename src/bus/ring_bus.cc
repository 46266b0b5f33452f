#include "weft/bus/bus.h"

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <thread>

#include "internal/backends.h"
#include "internal/groups.h"
#include "internal/member.h"
#include "internal/layout.h"
#include "internal/ring.h"
#include "internal/segment.h"
#include "weft/core/crc32c.h"
#include "weft/core/mutex.h"
#include "weft/shm/segment.h"
#include "weft/shm/slot.h"

namespace weft::bus {

using namespace internal;

namespace {



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
  bool log_control = false;  // a log: bus's control segment (kBusLogControl)
  const uint64_t id = NextCoreId();  // tells bus handles apart in thread-local caches

  // shm: the producer slot of each thread that ingested through this handle.
  Mutex producers_mu;
  // thread -> (slot, epoch)
  std::vector<std::pair<std::thread::id, std::pair<uint32_t, uint32_t>>> producers WEFT_GUARDED_BY(producers_mu);

  Overflow policy() const { return options.backpressure; }
  bool shared() const { return segment.base() != nullptr; }

  // A shm: bus whose file another process shrank reads zeros where it was (weft/shm/segment.h):
  // every call says so instead of delivering nothing or writing events nobody will see.
  // The control segment of a log: bus opened as shm: serves stats (weft inspect, weft gc)
  // and nothing else: its rings are not where the events are.
  Status Intact() const {
    if (!segment.damaged() && !log_control) return Status::Ok();
    if (log_control) {
      return Status(Code::kInvalidArgument, "'" + options.url + "' is the control segment of a log: bus: open the bus by its log: url");
    }
    return Status(Code::kCorrupt, "bus '" + options.url + "': another process shrank its shared memory; the bus is gone");
  }

  ~Core() {
    MutexLock g(producers_mu);
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
    MutexLock g(producers_mu);
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

constexpr std::string_view kShm = kShmScheme;

// What only rings ask of the options: the ring's size and the largest event that fits it.
Status CheckRingOptions(BusOptions* o) {
  if (o->url.rfind(kShm, 0) == 0) {
    const Status named = shm::ValidateName(std::string_view(o->url).substr(kShm.size()));
    if (!named.ok()) return Status(named.code(), "bus url '" + o->url + "': " + named.message());
  }
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
  return Status::Ok();
}

// A member's reads of the rings: Shard::Read and Take (a compare-and-swap against evictions
// under drop_oldest), commits that wake producers waiting for space, and the repair of claims
// that dead producers left.
class RingReader final : public ShardReader {
 public:
  RingReader(std::shared_ptr<Core> core, uint32_t g) : core_(std::move(core)), g_(g) {}

  Status Intact() const override { return core_->Intact(); }
  bool Readable(uint32_t s, uint64_t at) override { return core_->shards[s].IsPublished(at); }

  // Under drop_oldest producers move the group's cursors past events they take away: read
  // from the shared cursor when it is ahead.
  uint64_t Next(uint32_t s, uint64_t mine) override {
    if (core_->policy() != Overflow::kDropOldest) return mine;
    return std::max(mine, NextOf(core_->view.cursor(g_, s)));
  }

  Result<uint64_t> Read(uint32_t s, uint64_t from, size_t limit, std::vector<Event>* out) override {
    Shard& sh = core_->shards[s];
    for (;;) {
      const size_t before = out->size();
      Result<uint64_t> to = sh.Read(from, limit, out);
      if (to.ok() && sh.Take(g_, from, *to, core_->policy())) return to;
      out->resize(before);
      // A producer took events away under us (drop_oldest): read again where it left us.
      if (core_->policy() == Overflow::kDropOldest && Next(s, from) != from) {
        from = Next(s, from);
        continue;
      }
      if (!to.ok()) return to.status();
    }
  }

  Status Commit(uint32_t s, uint64_t to) override {
    core_->shards[s].Commit(g_, to, core_->policy());
    return Status::Ok();
  }
  // Under block a commit at a poll may wait: what a member holds back only delays producers.
  // Under the dropping policies what a member holds cannot be dropped, so it holds only its
  // last batch.
  bool LazyCommits() const override { return core_->policy() == Overflow::kBlock; }
  bool CommitUrgent(uint32_t s, uint64_t pending) const override {
    return pending >= core_->view.geo.shard_bytes / 8 ||
           A(core_->shards[s].state().space_sleepers).load(std::memory_order_relaxed) != 0;
  }
  // A shard whose next record was claimed and never published may belong to a producer that
  // died in between: its claim is turned into pads (Shard::Repair), and reading goes on.
  void Repair(uint32_t s, uint64_t at) override {
    Shard& sh = core_->shards[s];
    if (!sh.IsPublished(at) && sh.tail() > at) sh.Repair(at);
  }

 private:
  std::shared_ptr<Core> core_;
  uint32_t g_;
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
    WEFT_RETURN_IF_ERROR(core_->Intact());
    auto g = FindOrCreateGroup(core_->view, group, options.start);
    if (!g.ok()) return g.status();
    return JoinGroup(core_, core_->view, *g, group, options, std::make_unique<RingReader>(core_, *g));
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
    out.groups = DescribeGroups(v, out.per_shard);
    if (core_->shared()) out.producers = Holders([&](uint32_t i) -> shm::Slot& { return v.producer(i).slot; }, kMaxProducers);
    return out;
  }

  uint32_t shards() const override { return core_->view.geo.shards; }
  const BusOptions& options() const override { return core_->options; }

 private:
  uint64_t Fixed() const { return core_->timestamps ? 8 : 0; }

  static void PauseForTest() {
    const int64_t ns = PauseAfterClaimForTest().load(std::memory_order_relaxed);
    if (ns > 0) std::this_thread::sleep_for(std::chrono::nanoseconds(ns));
  }

  Status CheckSize(size_t key, size_t data) const { return CheckEventSize(key, data, core_->options.max_event); }

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

namespace internal {

Result<std::unique_ptr<Bus>> OpenRingBus(BusOptions o) {
  WEFT_RETURN_IF_ERROR(CheckRingOptions(&o));
  auto core = std::make_shared<Core>();
  if (o.url.rfind(kShm, 0) == 0) {
    WEFT_RETURN_IF_ERROR(OpenBusSegment(o.url.substr(kShm.size()), 0, &o, &core->segment, &core->view));
    core->log_control = (A(core->view.header().flags).load(std::memory_order_relaxed) & kBusLogControl) != 0;
  } else {
    const Geometry geo = GeometryOf(o.shards, o.shard_bytes);
    auto region = Region::Anonymous(geo.total);
    if (!region.ok()) return region.status();
    core->region = std::move(region).value();
    InitLayout(core->region->base(), geo, o, 0);
    core->view = View{core->region->base(), geo};
  }
  core->view.geo.max_event = o.max_event;
  core->timestamps = o.timestamps;
  for (uint32_t s = 0; s < o.shards; ++s) core->shards.emplace_back(core->view, s);
  core->options = o;
  for (const std::string& g : core->log_control ? std::vector<std::string>() : o.groups) {
    auto made = FindOrCreateGroup(core->view, g, Start::kOldest);
    if (!made.ok()) return made.status();
  }
  return std::unique_ptr<Bus>(new RingBus(std::move(core)));
}

}  // namespace internal
}  // namespace weft::bus
