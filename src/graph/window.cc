// Count and event-time windows (weft/graph/window.h).
//
// Partitions are found by an open-addressing table (a partition's state is an index into a
// vector); each holds its few open windows, sorted by start. Closing is driven by timers: a map
// from a window's end (and, under kUpdate, its end plus the allowed lateness) to the windows
// that end then, so a watermark closes what it passes without visiting the other partitions.
#include "weft/graph/window.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

namespace weft::graph {

namespace {

// Keys to dense indices: linear probing over a power-of-two table.
class PartitionIndex {
 public:
  static constexpr uint32_t kNone = UINT32_MAX;
  static constexpr uint64_t kDense = 1 << 16;  // small keys (sensor ids, shard numbers): an array
  uint32_t Find(uint64_t key) const {
    if (key < dense_.size()) return dense_[key];  // one compare for the small keys seen so far
    if (slots_.empty()) return kNone;
    for (size_t i = Hash(key);; i = (i + 1) & mask_) {
      if (slots_[i].index == kNone) return kNone;
      if (slots_[i].key == key) return slots_[i].index;
    }
  }
  void Insert(uint64_t key, uint32_t index) {
    if (key < kDense) {
      if (key >= dense_.size()) dense_.resize(std::min<size_t>(kDense, std::max<size_t>(key + 1, dense_.size() * 2)), kNone);
      dense_[key] = index;
      return;
    }
    if ((count_ + 1) * 2 > slots_.size()) Grow();
    Place(key, index);
    ++count_;
  }

 private:
  struct Slot {
    uint64_t key = 0;
    uint32_t index = kNone;
  };
  size_t Hash(uint64_t key) const { return static_cast<size_t>((key * 0x9E3779B97F4A7C15ull) >> shift_); }
  void Place(uint64_t key, uint32_t index) {
    size_t i = Hash(key);
    while (slots_[i].index != kNone) i = (i + 1) & mask_;
    slots_[i] = {key, index};
  }
  void Grow() {
    std::vector<Slot> old = std::move(slots_);
    const size_t n = old.empty() ? 64 : old.size() * 2;
    slots_.assign(n, Slot{});
    mask_ = n - 1;
    shift_ = 64 - static_cast<int>(std::log2(static_cast<double>(n)));
    for (const Slot& s : old) {
      if (s.index != kNone) Place(s.key, s.index);
    }
  }
  std::vector<uint32_t> dense_;
  std::vector<Slot> slots_;
  size_t mask_ = 0, count_ = 0;
  int shift_ = 64;
};

struct Acc {
  uint64_t count = 0;
  double sum = 0, min = HUGE_VAL, max = -HUGE_VAL;
  std::vector<double> values;
  __attribute__((always_inline)) void Add(double v, bool keep) {
    min = v < min ? v : min;
    max = v > max ? v : max;
    ++count;
    sum += v;
    if (__builtin_expect(keep, 0)) values.push_back(v);
  }
};

// Nearest rank: the smallest value with at least q of the values at or below it.
void Percentiles(const std::vector<double>& values, const std::vector<double>& qs, std::vector<double>* out) {
  out->clear();
  if (qs.empty() || values.empty()) return;
  std::vector<double> sorted = values;
  std::sort(sorted.begin(), sorted.end());
  for (double q : qs) {
    const double rank = std::ceil(q * static_cast<double>(sorted.size()));
    const size_t i = rank < 1 ? 0 : std::min(sorted.size() - 1, static_cast<size_t>(rank) - 1);
    out->push_back(sorted[i]);
  }
}

Status CheckQuantiles(const std::vector<double>& qs) {
  for (double q : qs) {
    if (!(q >= 0 && q <= 1)) return InvalidArgument("a percentile is a quantile in [0, 1], not " + std::to_string(q));
  }
  return Status::Ok();
}

int64_t FloorTo(int64_t t, int64_t width) {
  int64_t q = t / width;
  if (t % width != 0 && t < 0) --q;
  return q * width;
}

}  // namespace

// ---- TimeWindows ------------------------------------------------------------------------

struct TimeWindows::Impl {
  // A window's aggregate where it lives: in its partition's ring of kRing slots, by window
  // number (a stream's open windows are a few consecutive ones), or, when its slot is taken by
  // another window (a value far ahead or far behind), in the spill map.
  static constexpr int64_t kFree = INT64_MIN;
  static constexpr uint32_t kRing = 4;
  struct Slot {
    int64_t start = kFree;
    uint64_t count = 0;
    double sum = 0, min = HUGE_VAL, max = -HUGE_VAL;  // 40 bytes: four to a partition's ring
    __attribute__((always_inline)) void Add(double v) {
      min = v < min ? v : min;
      max = v > max ? v : max;
      ++count;
      sum += v;
    }
  };
  using WinKey = std::pair<uint32_t, int64_t>;  // (partition index, start)
  struct Part {
    uint64_t key;
    int64_t watermark = INT64_MIN;
    int64_t moved_ns = INT64_MIN;  // when its watermark last moved (or Tick first saw it without one)
    bool has_watermark = false;
    bool idle = false;
  };
  struct Timer {
    uint32_t part;
    uint32_t ring;  // the window's ring slot (no division to find it)
    int64_t start;
    bool purge;     // the end of its allowed lateness (else: its end)
  };

  TimeWindowOptions o;
  OnWindow on_window;
  OnLate on_late;
  bool keep = false;
  PartitionIndex index;
  std::vector<Part> parts;
  // Ring-major: slot (ring r, partition p) at r * stride + p, so that the windows open now (one
  // or two ring positions) are contiguous across partitions, not interleaved with cold ones.
  std::vector<Slot> slots;
  size_t stride = 0;
  std::map<WinKey, Slot> spill;
  std::map<WinKey, std::vector<double>> values;  // each window's values, if kept
  std::set<WinKey> emitted_open;  // kUpdate: windows emitted, kept for their allowed lateness
  std::map<WinKey, uint8_t> tainted;  // windows with a tainted value, and the taints
  std::map<WinKey, std::vector<uint64_t>> inputs;  // each window's input ids, if kept
  std::map<int64_t, std::vector<Timer>> timers;
  std::vector<Timer>* last_timers = nullptr;  // the bucket of last_timers_at (most new windows share it)
  int64_t last_timers_at = INT64_MIN;
  int64_t cur_start = 0, cur_end = INT64_MIN;  // the window the last value fell in (no division)
  uint32_t cur_ring = 0;
  int64_t watermark = INT64_MIN;
  size_t open = 0;
  uint64_t seen = 0, emitted = 0, updates = 0, late_dropped = 0, late_sided = 0;  // added: seen less the late
  WindowResult result;  // reused for each emission
  std::vector<double> no_values;
  std::vector<uint64_t> no_inputs;

  uint32_t RingOf(int64_t start) const { return static_cast<uint32_t>(static_cast<uint64_t>(start / o.width_ns) & (kRing - 1)); }

  __attribute__((always_inline)) uint32_t PartOf(uint64_t key) {
    uint32_t i = index.Find(key);
    if (__builtin_expect(i == PartitionIndex::kNone, 0)) {
      i = static_cast<uint32_t>(parts.size());
      parts.push_back(Part{key});
      if (parts.size() > stride) {  // re-lay the rings for more partitions
        const size_t wider = std::max<size_t>(64, stride * 2);
        std::vector<Slot> moved(wider * kRing);
        for (uint32_t r = 0; r < kRing; ++r) {
          for (size_t q = 0; q < stride; ++q) moved[r * wider + q] = slots[r * stride + q];
        }
        slots.swap(moved);
        stride = wider;
      }
      index.Insert(key, i);
    }
    return i;
  }

  Slot* Find(uint32_t pi, int64_t start) { return FindAt(pi, start, RingOf(start)); }
  Slot* FindAt(uint32_t pi, int64_t start, uint32_t ring) {
    Slot& s = slots[ring * stride + pi];
    if (s.start == start) return &s;
    if (spill.empty()) return nullptr;
    auto it = spill.find({pi, start});
    return it == spill.end() ? nullptr : &it->second;
  }

  void Erase(uint32_t pi, int64_t start, uint32_t ring) {
    Slot& s = slots[ring * stride + pi];
    if (s.start == start) {
      s.start = kFree;  // the rest is written when the slot opens again
    } else {
      spill.erase({pi, start});
    }
    if (keep) values.erase({pi, start});
    if (!emitted_open.empty()) emitted_open.erase({pi, start});
    if (!tainted.empty()) tainted.erase({pi, start});
    if (o.keep_inputs) inputs.erase({pi, start});
    --open;
  }

  __attribute__((always_inline)) void AddTimer(int64_t at, Timer tm) {
    if (__builtin_expect(at != last_timers_at || last_timers == nullptr, 0)) {
      last_timers = &timers[at];
      last_timers_at = at;
    }
    last_timers->push_back(tm);
  }

  void Emit(uint32_t pi, const Slot& w, bool update) {
    result.partition = parts[pi].key;
    result.start_ns = w.start;
    result.end_ns = w.start + o.width_ns;
    result.count = w.count;
    result.sum = w.sum;
    result.min = o.min_max ? w.min : std::nan("");
    result.max = o.min_max ? w.max : std::nan("");
    result.update = update;
    result.taints = 0;
    if (!tainted.empty()) {
      auto t = tainted.find({pi, w.start});
      if (t != tainted.end()) result.taints = t->second;
    }
    const std::vector<double>* vs = &no_values;
    if (keep) {
      auto it = values.find({pi, w.start});
      if (it != values.end()) vs = &it->second;
    }
    if (!o.percentiles.empty()) Percentiles(*vs, o.percentiles, &result.percentiles);
    result.values = o.keep_values ? vs : nullptr;
    result.inputs = nullptr;
    if (o.keep_inputs) {
      auto it = inputs.find({pi, w.start});
      result.inputs = it != inputs.end() ? &it->second : &no_inputs;
    }
    ++(update ? updates : emitted);
    on_window(result);
  }

  void Late(uint32_t pi, int64_t t, double v, uint8_t taints, uint64_t id) {
    if (o.late == LatePolicy::kUpdate) {
      const int64_t start = FloorTo(t, o.width_ns);
      Slot* w = Find(pi, start);
      if (w != nullptr && emitted_open.count({pi, start}) != 0) {  // still within its allowed lateness
        w->Add(v);
        if (taints != 0) tainted[{pi, start}] |= taints;
        if (o.keep_inputs) inputs[{pi, start}].push_back(id);
        if (keep) values[{pi, start}].push_back(v);
        Emit(pi, *w, true);
        return;
      }
    }
    if (o.late == LatePolicy::kSide && on_late) {
      ++late_sided;
      on_late(LateValue{parts[pi].key, t, v, watermark});
      return;
    }
    ++late_dropped;
  }

  // A window opened for (pi, start): its ring slot if free, else the spill map.
  __attribute__((always_inline)) Slot& Open(uint32_t pi, int64_t start, Slot& ring_slot) {
    Slot* w = &ring_slot;
    if (ring_slot.start != kFree) w = &spill[{pi, start}];
    *w = Slot{};  // a free ring slot's fields are stale
    w->start = start;
    ++open;
    AddTimer(start + o.width_ns, Timer{pi, RingOf(start), start, false});
    return *w;
  }

  // Values in order. The window the last value fell in, the watermark and the slots' base are
  // kept in locals: the compiler cannot keep members in registers across the slots' stores.
  void AddRun(const uint64_t* keys, const int64_t* times, const double* vals, size_t n, const uint8_t* taints = nullptr,
              const uint64_t* ids = nullptr) {
    // Unswitched: the columns of a batch carry no taints and nothing is kept, usually.
    if (keep || o.keep_inputs) {
      AddRunOf<true, true, true>(keys, times, vals, n, taints, ids);
    } else if (taints != nullptr) {
      AddRunOf<false, true, true>(keys, times, vals, n, taints, ids);
    } else if (o.min_max) {
      AddRunOf<false, false, true>(keys, times, vals, n, taints, ids);
    } else {
      AddRunOf<false, false, false>(keys, times, vals, n, taints, ids);  // counts and sums only
    }
  }
  template <bool kKeep, bool kTaints, bool kMinMax>
  void AddRunOf(const uint64_t* keys, const int64_t* times, const double* vals, size_t n, const uint8_t* taints,
                const uint64_t* ids) {
    int64_t cs = cur_start, ce = cur_end;
    uint32_t cr = cur_ring;
    const int64_t wm = watermark;  // INT64_MIN before the first: nothing is late
    Slot* ring = slots.data() + cr * stride;  // the current window's ring position
    for (size_t i = 0; i < n; ++i) {
      const int64_t t = times[i];
      const double v = vals[i];
      uint32_t pi = index.Find(keys[i]);
      if (__builtin_expect(pi == PartitionIndex::kNone, 0)) {
        pi = PartOf(keys[i]);
        ring = slots.data() + cr * stride;
      }
      if (t < cs || t >= ce) {
        cs = FloorTo(t, o.width_ns);
        ce = cs + o.width_ns;
        cr = RingOf(cs);
        ring = slots.data() + cr * stride;
      }
      if (__builtin_expect(ce <= wm, 0)) {
        Late(pi, t, v, kTaints && taints != nullptr ? taints[i] : 0, ids != nullptr ? ids[i] : 0);
        continue;
      }
      if constexpr (kTaints) {
        if (taints != nullptr && taints[i] != 0) tainted[{pi, cs}] |= taints[i];
      }
      Slot& sl = ring[pi];
      if (__builtin_expect(sl.start == cs, 1)) {
        if constexpr (kMinMax) {
          sl.Add(v);
        } else {
          ++sl.count;
          sl.sum += v;
        }
      } else {
        // Not in its ring slot: a new window in a free slot (the usual case), or one in the
        // spill map (it found the slot taken once), or a new one there.
        if (__builtin_expect(sl.start == kFree && spill.empty(), 1)) {
          sl = Slot{cs, 1, v, v, v};  // a free slot's other fields are stale: all written here
          ++open;
          AddTimer(ce, Timer{pi, cr, cs, false});
        } else {
          Slot* w = Find(pi, cs);
          if (w == nullptr) w = &Open(pi, cs, sl);
          w->Add(v);
        }
      }
      if constexpr (kKeep) {
        if (keep) values[{pi, cs}].push_back(v);
        if (o.keep_inputs) inputs[{pi, cs}].push_back(ids != nullptr ? ids[i] : 0);
      }
    }
    cur_start = cs;
    cur_end = ce;
    cur_ring = cr;
    seen += n;
  }

  // Closes what the watermark passed: timers in order of time, each time's windows in the order
  // they opened.
  void CloseTo(int64_t wm) {
    while (!timers.empty() && timers.begin()->first <= wm) {
      std::vector<Timer> due = std::move(timers.begin()->second);
      if (last_timers == &timers.begin()->second) last_timers = nullptr;
      timers.erase(timers.begin());
      for (const Timer& tm : due) {
        Slot* w = FindAt(tm.part, tm.start, tm.ring);
        if (w == nullptr) continue;
        if (!tm.purge) {
          Emit(tm.part, *w, false);
          if (o.late == LatePolicy::kUpdate && o.allowed_lateness_ns > 0) {
            emitted_open.insert({tm.part, tm.start});
            AddTimer(tm.start + o.width_ns + o.allowed_lateness_ns, Timer{tm.part, tm.ring, tm.start, true});
            continue;
          }
        }
        Erase(tm.part, tm.start, tm.ring);
      }
    }
  }

  Status Advance(int64_t wm) {
    if (watermark != INT64_MIN && wm < watermark) {
      return InvalidArgument("a watermark went backwards: " + std::to_string(wm) + " after " + std::to_string(watermark));
    }
    watermark = wm;
    CloseTo(wm);
    return Status::Ok();
  }

  // The stream's watermark from the partitions': the least of those not idle (a partition known
  // by its values but without a watermark yet holds it back); it never goes back.
  void Recompute() {
    int64_t least = INT64_MAX;
    bool any = false;
    for (const Part& p : parts) {
      if (p.idle) continue;
      least = std::min(least, p.has_watermark ? p.watermark : INT64_MIN);
      any = true;
    }
    if (any && least != INT64_MIN && (watermark == INT64_MIN || least > watermark)) {
      watermark = least;
      CloseTo(least);
    }
  }
};

TimeWindows::TimeWindows(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TimeWindows::~TimeWindows() = default;

Result<std::unique_ptr<TimeWindows>> TimeWindows::Create(TimeWindowOptions options, OnWindow on_window, OnLate on_late) {
  if (options.width_ns <= 0) return InvalidArgument("a time window's width is above 0");
  if (options.allowed_lateness_ns < 0 || options.idle_after_ns < 0) return InvalidArgument("lateness and idleness are 0 or more");
  WEFT_RETURN_IF_ERROR(CheckQuantiles(options.percentiles));
  if (!on_window) return InvalidArgument("a window needs somewhere to emit");
  auto impl = std::make_unique<Impl>();
  impl->keep = options.keep_values || !options.percentiles.empty();
  impl->o = std::move(options);
  impl->on_window = std::move(on_window);
  impl->on_late = std::move(on_late);
  return std::unique_ptr<TimeWindows>(new TimeWindows(std::move(impl)));
}

void TimeWindows::Add(uint64_t partition, int64_t event_ns, double value, uint8_t taints, uint64_t id) {
  impl_->AddRun(&partition, &event_ns, &value, 1, taints != 0 ? &taints : nullptr, &id);
}

void TimeWindows::AddBatch(std::span<const uint64_t> partitions, std::span<const int64_t> event_ns, std::span<const double> values) {
  const size_t n = std::min({partitions.size(), event_ns.size(), values.size()});
  impl_->AddRun(partitions.data(), event_ns.data(), values.data(), n);
}

Status TimeWindows::Advance(int64_t watermark_ns) { return impl_->Advance(watermark_ns); }

Status TimeWindows::AdvancePartition(uint64_t partition, int64_t watermark_ns, int64_t now_ns) {
  Impl& m = *impl_;
  Impl::Part& p = m.parts[m.PartOf(partition)];
  if (p.has_watermark && watermark_ns < p.watermark) {
    return InvalidArgument("partition " + std::to_string(partition) + "'s watermark went backwards: " +
                           std::to_string(watermark_ns) + " after " + std::to_string(p.watermark));
  }
  if (!p.has_watermark || watermark_ns > p.watermark) p.moved_ns = now_ns;
  p.watermark = watermark_ns;
  p.has_watermark = true;
  p.idle = false;
  m.Recompute();
  return Status::Ok();
}

void TimeWindows::Tick(int64_t now_ns) {
  Impl& m = *impl_;
  if (m.o.idle_after_ns <= 0) return;
  bool changed = false;
  for (Impl::Part& p : m.parts) {
    if (p.idle) continue;
    if (p.moved_ns == INT64_MIN) p.moved_ns = now_ns;  // silent since we first looked
    if (now_ns - p.moved_ns >= m.o.idle_after_ns) {
      p.idle = true;
      changed = true;
    }
  }
  if (changed) m.Recompute();
}

void TimeWindows::Flush() {
  Impl& m = *impl_;
  // Every window as if the watermark had passed them all, lateness included.
  std::map<int64_t, std::vector<Impl::Timer>> timers;
  timers.swap(m.timers);
  m.last_timers = nullptr;
  for (auto& [end, due] : timers) {
    for (const Impl::Timer& tm : due) {
      Impl::Slot* w = m.FindAt(tm.part, tm.start, tm.ring);
      if (w == nullptr) continue;
      if (m.emitted_open.count({tm.part, tm.start}) == 0) m.Emit(tm.part, *w, false);
      m.Erase(tm.part, tm.start, tm.ring);
    }
  }
}

WindowSnapshot TimeWindows::snapshot() const {
  const Impl& m = *impl_;
  WindowSnapshot s;
  s.watermark_ns = m.watermark;
  s.partitions = m.parts.size();
  s.open_windows = m.open;
  s.added = m.seen - m.late_dropped - m.late_sided;
  s.emitted = m.emitted;
  s.updates = m.updates;
  s.late_dropped = m.late_dropped;
  s.late_sided = m.late_sided;
  for (const Impl::Part& p : m.parts) {
    if (p.idle) s.idle.push_back(p.key);
  }
  return s;
}

// ---- CountWindows -----------------------------------------------------------------------

struct CountWindows::Impl {
  struct Part {
    uint64_t key;
    std::vector<double> values;    // a ring of `size`
    std::vector<int64_t> times;
    std::vector<uint8_t> taints;
    std::vector<uint64_t> ids;  // if inputs are kept
    size_t next = 0, held = 0, since = 0;
  };
  CountWindowOptions o;
  OnWindow on_window;
  PartitionIndex index;
  std::vector<Part> parts;
  uint64_t added = 0, emitted = 0;
  WindowResult result;
  std::vector<double> window;
  std::vector<uint64_t> window_inputs;
};

CountWindows::CountWindows(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CountWindows::~CountWindows() = default;

Result<std::unique_ptr<CountWindows>> CountWindows::Create(CountWindowOptions options, OnWindow on_window) {
  if (options.size == 0) return InvalidArgument("a count window holds at least one value");
  if (options.trigger == 0) options.trigger = options.size;
  WEFT_RETURN_IF_ERROR(CheckQuantiles(options.percentiles));
  if (!on_window) return InvalidArgument("a window needs somewhere to emit");
  auto impl = std::make_unique<Impl>();
  impl->o = std::move(options);
  impl->on_window = std::move(on_window);
  return std::unique_ptr<CountWindows>(new CountWindows(std::move(impl)));
}

void CountWindows::Add(uint64_t partition, int64_t event_ns, double value, uint8_t taints, uint64_t id) {
  Impl& m = *impl_;
  uint32_t pi = m.index.Find(partition);
  if (pi == PartitionIndex::kNone) {
    pi = static_cast<uint32_t>(m.parts.size());
    m.parts.push_back(Impl::Part{partition, std::vector<double>(m.o.size), std::vector<int64_t>(m.o.size),
                                 std::vector<uint8_t>(m.o.size), std::vector<uint64_t>(m.o.keep_inputs ? m.o.size : 0)});
    m.index.Insert(partition, pi);
  }
  Impl::Part& p = m.parts[pi];
  p.values[p.next] = value;
  p.times[p.next] = event_ns;
  p.taints[p.next] = taints;
  if (m.o.keep_inputs) p.ids[p.next] = id;
  p.next = (p.next + 1) % m.o.size;
  p.held = std::min(p.held + 1, m.o.size);
  ++m.added;
  if (++p.since < m.o.trigger) return;
  p.since = 0;
  // The window: the held values, oldest first.
  m.window.clear();
  const size_t first = (p.next + m.o.size - p.held) % m.o.size;
  Acc acc;
  uint8_t window_taints = 0;
  m.window_inputs.clear();
  for (size_t k = 0; k < p.held; ++k) {
    acc.Add(p.values[(first + k) % m.o.size], true);
    window_taints |= p.taints[(first + k) % m.o.size];
    if (m.o.keep_inputs) m.window_inputs.push_back(p.ids[(first + k) % m.o.size]);
  }
  WindowResult& r = m.result;
  r.partition = partition;
  r.start_ns = p.times[first];
  r.end_ns = p.times[(p.next + m.o.size - 1) % m.o.size];
  r.count = acc.count;
  r.sum = acc.sum;
  r.min = acc.min;
  r.max = acc.max;
  r.update = false;
  r.taints = window_taints;
  Percentiles(acc.values, m.o.percentiles, &r.percentiles);
  m.window = std::move(acc.values);
  r.values = m.o.keep_values ? &m.window : nullptr;
  r.inputs = m.o.keep_inputs ? &m.window_inputs : nullptr;
  ++m.emitted;
  if (m.o.trigger >= m.o.size) p.held = 0;  // tumbling: the next window starts empty
  m.on_window(r);
}

WindowSnapshot CountWindows::snapshot() const {
  WindowSnapshot s;
  s.partitions = impl_->parts.size();
  s.added = impl_->added;
  s.emitted = impl_->emitted;
  for (const auto& p : impl_->parts) s.open_windows += p.held > 0;
  return s;
}

}  // namespace weft::graph
