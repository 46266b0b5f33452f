// Linger (BusOptions::linger_ns): a Bus in front of any backend that gathers each producing
// thread's events without a key and publishes them through the backend's IngestBatch, one
// claim and one wake per batch instead of per event.
#include <memory>
#include <vector>

#include "internal/backends.h"
#include "weft/core/clock.h"

namespace weft::bus::internal {

namespace {

// The age of the oldest gathered event, cheap enough to read at every Ingest: the CPU's
// time-stamp counter on x86 (a third of clock_gettime's cost here), converted by a rate measured
// against the monotonic clock once a millisecond has passed (until then, and elsewhere, the
// monotonic clock itself).
class LingerClock {
 public:
  struct Stamp {
    int64_t ns = 0;
    uint64_t ticks = 0;
  };
  LingerClock() : origin_(Now()) {}
  Stamp Now() const { return {MonotonicNs(), Ticks()}; }
  int64_t AgeNs(const Stamp& since) {
    if (per_ns_ > 0) return static_cast<int64_t>(static_cast<double>(Ticks() - since.ticks) / per_ns_);
    const int64_t ns = MonotonicNs();
    if (kHaveTicks && ns - origin_.ns >= 1'000'000) {
      per_ns_ = static_cast<double>(Ticks() - origin_.ticks) / static_cast<double>(ns - origin_.ns);
    }
    return ns - since.ns;
  }

 private:
#if defined(__x86_64__)
  static constexpr bool kHaveTicks = true;
  static uint64_t Ticks() { return __builtin_ia32_rdtsc(); }
#else
  static constexpr bool kHaveTicks = false;
  static uint64_t Ticks() { return 0; }
#endif
  Stamp origin_;
  double per_ns_ = 0;  // ticks per nanosecond once measured
};

// The backend, kept alive while a producing thread may still publish into it.
struct Backend {
  std::unique_ptr<Bus> bus;
  int64_t linger_ns = 0;
  uint32_t linger_events = 0;
};

// One thread's gathered events for one bus.
struct Gathered {
  std::weak_ptr<Backend> owner;
  const Backend* key = nullptr;
  std::vector<uint8_t> bytes;
  std::vector<uint32_t> sizes;
  LingerClock clock;         // this thread's
  LingerClock::Stamp since;  // when the oldest was gathered

  Status Publish(Backend& b) {
    if (sizes.empty()) return Status::Ok();
    thread_local std::vector<ByteView> views;
    views.clear();
    size_t at = 0;
    for (uint32_t n : sizes) {
      views.emplace_back(bytes.data() + at, n);
      at += n;
    }
    Status st;
    for (size_t done = 0; done < views.size();) {
      // Never: under block the events wait for room; under the dropping policies the backend
      // ingests what fits and counts the rest.
      Result<size_t> r = b.bus->IngestBatch(std::span<const ByteView>(views).subspan(done), Deadline::Never());
      if (!r.ok()) {
        st = r.status();
        break;
      }
      done += *r;
      if (b.bus->options().backpressure != Overflow::kBlock) break;
    }
    bytes.clear();
    sizes.clear();
    return st;
  }
};

// The calling thread's gathered events, per bus; published when the thread exits.
struct ThreadGathers {
  std::vector<std::unique_ptr<Gathered>> all;
  ~ThreadGathers() {
    for (auto& g : all) {
      if (auto b = g->owner.lock()) g->Publish(*b).IgnoreError();
    }
  }
  Gathered& For(const std::shared_ptr<Backend>& b) {
    if (last != nullptr && last->key == b.get() && !last->owner.expired()) return *last;
    for (auto& g : all) {
      if (g->key == b.get() && !g->owner.expired()) return *(last = g.get());
    }
    std::erase_if(all, [](const std::unique_ptr<Gathered>& g) { return g->owner.expired(); });
    auto g = std::make_unique<Gathered>();
    g->owner = b;
    g->key = b.get();
    all.push_back(std::move(g));
    return *(last = all.back().get());
  }
  Gathered* last = nullptr;  // the one used last (most threads produce to one bus)
};

thread_local ThreadGathers t_gathers;

class LingeringBus final : public Bus {
 public:
  explicit LingeringBus(std::shared_ptr<Backend> b) : b_(std::move(b)) {}
  ~LingeringBus() override { Flush().IgnoreError(); }

  Result<Position> Ingest(ByteView data, Deadline) override {
    WEFT_RETURN_IF_ERROR(CheckEventSize(0, data.size(), b_->bus->options().max_event));
    Gathered& g = t_gathers.For(b_);
    if (g.sizes.empty()) g.since = g.clock.Now();  // one clock read per batch; after it, ticks
    g.bytes.insert(g.bytes.end(), data.begin(), data.end());
    g.sizes.push_back(static_cast<uint32_t>(data.size()));
    if (g.sizes.size() >= b_->linger_events || g.clock.AgeNs(g.since) >= b_->linger_ns) {
      WEFT_RETURN_IF_ERROR(g.Publish(*b_));
    }
    return Position{ThreadShard(b_->bus->shards()), kPendingOffset};
  }

  // A keyed event or a batch goes at once, after this thread's gathered events (its order).
  Result<Position> IngestKeyed(ByteView key, ByteView data, Deadline deadline) override {
    WEFT_RETURN_IF_ERROR(Flush());
    return b_->bus->IngestKeyed(key, data, deadline);
  }
  Result<size_t> IngestBatch(std::span<const ByteView> events, Deadline deadline) override {
    WEFT_RETURN_IF_ERROR(Flush());
    return b_->bus->IngestBatch(events, deadline);
  }

  Status Flush() override { return t_gathers.For(b_).Publish(*b_); }

  Result<std::unique_ptr<Consumer>> Subscribe(std::string_view group, const ConsumerOptions& options) override {
    return b_->bus->Subscribe(group, options);
  }
  BusStats Stats() const override { return b_->bus->Stats(); }
  uint32_t shards() const override { return b_->bus->shards(); }
  const BusOptions& options() const override { return b_->bus->options(); }

 private:
  std::shared_ptr<Backend> b_;
};

}  // namespace

Result<std::unique_ptr<Bus>> WithLinger(std::unique_ptr<Bus> bus, int64_t linger_ns, uint32_t linger_events) {
  if (linger_events == 0 || linger_events > 65536) return InvalidArgument("linger_events must be 1 to 65536");
  if (bus->options().backpressure == Overflow::kFail) {
    return InvalidArgument(
        "linger with backpressure fail: a gathered event was already accepted and cannot be refused later; use "
        "block or a drop policy");
  }
  auto b = std::make_shared<Backend>();
  b->bus = std::move(bus);
  b->linger_ns = linger_ns;
  b->linger_events = linger_events;
  return std::unique_ptr<Bus>(new LingeringBus(std::move(b)));
}

}  // namespace weft::bus::internal
