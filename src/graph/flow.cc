// Mailboxes, capacitors, resistors, watchdogs and clocks (weft/graph/flow.h).
#include "weft/graph/flow.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <deque>
#include <map>
#include <thread>
#include <vector>

#include "internal/hooks.h"
#include "weft/core/mutex.h"

namespace weft::graph {

const char* OverflowName(Overflow o) {
  switch (o) {
    case Overflow::kBlock:
      return "block";
    case Overflow::kDropOldest:
      return "drop_oldest";
    case Overflow::kDropNewest:
      return "drop_newest";
    case Overflow::kCoalesce:
      return "coalesce";
  }
  return "?";
}

Result<Overflow> ParseOverflow(std::string_view name) {
  for (Overflow o : {Overflow::kBlock, Overflow::kDropOldest, Overflow::kDropNewest, Overflow::kCoalesce}) {
    if (name == OverflowName(o)) return o;
  }
  return InvalidArgument("an overflow policy is block, drop_oldest, drop_newest or coalesce, not '" + std::string(name) + "'");
}

namespace {

Status CheckPolicy(const FlowPolicy& p, const std::string& what) {
  if (p.capacity == 0) return InvalidArgument(what + ": a capacity of at least 1");
  return Status::Ok();
}

Status SameSchema(const Route& a, const Route& b) {
  if (a.schema() == b.schema()) return Status::Ok();
  return Status(Code::kSchemaMismatch, "route " + b.name().ToString() + " carries '" + b.schema().text() + "', not '" +
                                           a.schema().text() + "' as " + a.name().ToString() + " does");
}

// Values waiting under a policy: the storage of mailboxes and capacitors.
class Store {
 public:
  Store(std::string name, FlowPolicy policy) : name_(std::move(name)), policy_(policy) {
    MutexLock l(mu_);
    counts_.name = name_;
    counts_.capacity = policy.capacity;
  }

  // Takes a value in under the policy; kResourceExhausted if it waited its whole block
  // timeout. With `demand_passes`, pending demand lets the value pass instead (*pass set).
  Status Put(const SampleRef& v, bool demand_passes, bool* pass) {
    MutexLock l(mu_);
    bool waited = false;
    for (;;) {
      if (closed_) return Status::Ok();
      if (demand_passes && pending_ > 0 && q_.empty()) {
        --pending_;
        ++counts_.accepted;
        ++counts_.delivered;
        *pass = true;
        return Status::Ok();
      }
      if (q_.size() < policy_.capacity) break;
      switch (policy_.overflow) {
        case Overflow::kDropOldest:
          q_.pop_front();
          ++counts_.dropped_oldest;
          break;
        case Overflow::kDropNewest:
          ++counts_.dropped_newest;
          return Status::Ok();
        case Overflow::kCoalesce:
          q_.back() = v;
          ++counts_.accepted;
          ++counts_.coalesced;
          return Status::Ok();
        case Overflow::kBlock: {
          if (!waited) ++counts_.blocked;
          waited = true;
          const int64_t t0 = MonotonicNs();
          const Deadline d = Deadline::AfterMs(policy_.block_timeout_ms);
          // The binding's own lock (the GIL) goes first, without this one held, so that its
          // holder can come in here meanwhile; it comes back the same way.
          void* token = nullptr;
          if (void* (*release)() = internal::g_release_hook.load(); release != nullptr) {
            l.Unlock();
            token = release();
            l.Lock();
          }
          bool refused = false;
          while (q_.size() >= policy_.capacity && !closed_) {
            if (d.is_never()) {
              room_.Wait(l);
            } else if (d.Expired() || room_.WaitForNs(l, d.RemainingNs())) {
              refused = q_.size() >= policy_.capacity && !closed_;
              break;
            }
          }
          counts_.blocked_ns += MonotonicNs() - t0;
          if (refused) ++counts_.refused;
          if (void (*reacquire)(void*) = internal::g_reacquire_hook.load(); token != nullptr && reacquire != nullptr) {
            l.Unlock();
            reacquire(token);
            l.Lock();
          }
          if (refused) {
            return Status(Code::kResourceExhausted, name_ + " stayed full for " + std::to_string(policy_.block_timeout_ms) +
                                                         " ms: the value was not taken");
          }
          continue;  // look again: others came in while the binding's lock came back
        }
      }
      break;
    }
    q_.push_back(v);
    ++counts_.accepted;
    items_.NotifyOne();
    return Status::Ok();
  }

  // The oldest value, or null (empty).
  SampleRef Pop() {
    MutexLock l(mu_);
    if (q_.empty()) return nullptr;
    SampleRef v = std::move(q_.front());
    q_.pop_front();
    ++counts_.delivered;
    room_.NotifyOne();
    return v;
  }

  // Up to n of the oldest values; with `remember`, what is not met is kept as demand (up to
  // the capacity) for values still to come.
  std::vector<SampleRef> Demand(size_t n, bool remember) {
    MutexLock l(mu_);
    std::vector<SampleRef> out;
    while (out.size() < n && !q_.empty()) {
      out.push_back(std::move(q_.front()));
      q_.pop_front();
      ++counts_.delivered;
    }
    if (!out.empty()) room_.NotifyAll();
    if (remember && !closed_) pending_ = std::min<uint64_t>(policy_.capacity, pending_ + (n - out.size()));
    return out;
  }

  Result<SampleRef> Take(Deadline d) {
    MutexLock l(mu_);
    while (q_.empty()) {
      if (closed_) return Status(Code::kClosed, name_ + " is closed");
      if (d.is_now() || d.Expired()) return Status(Code::kTimeout, "nothing in " + name_ + " before the deadline");
      if (d.is_never()) {
        items_.Wait(l);
      } else {
        items_.WaitForNs(l, d.RemainingNs());
      }
    }
    SampleRef v = std::move(q_.front());
    q_.pop_front();
    ++counts_.delivered;
    room_.NotifyOne();
    return v;
  }

  void Close() {
    MutexLock l(mu_);
    closed_ = true;
    room_.NotifyAll();
    items_.NotifyAll();
  }

  FlowSnapshot Snapshot() const {
    MutexLock l(mu_);
    FlowSnapshot s = counts_;
    s.depth = q_.size();
    s.pending_demand = pending_;
    return s;
  }

 private:
  const std::string name_;
  const FlowPolicy policy_;
  mutable Mutex mu_;
  CondVar room_, items_;
  std::deque<SampleRef> q_ WEFT_GUARDED_BY(mu_);
  FlowSnapshot counts_ WEFT_GUARDED_BY(mu_);
  uint64_t pending_ WEFT_GUARDED_BY(mu_) = 0;
  bool closed_ WEFT_GUARDED_BY(mu_) = false;
};

}  // namespace

// ---- Mailbox ----

struct Mailbox::State {
  explicit State(std::string name, FlowPolicy p) : store(std::move(name), p) {}
  Store store;
};

Result<std::shared_ptr<Mailbox>> Mailbox::Create(Route source, FlowPolicy policy, std::string name) {
  if (name.empty()) name = "mailbox of " + source.name().ToString();
  WEFT_RETURN_IF_ERROR(CheckPolicy(policy, name));
  std::shared_ptr<Mailbox> m(new Mailbox());
  m->s_ = std::make_shared<State>(std::move(name), policy);
  std::weak_ptr<State> weak = m->s_;
  m->sub_ = source.Observe([weak](const SampleRef& v) {
    auto s = weak.lock();
    if (s == nullptr) return;
    bool pass = false;
    Status st = s->store.Put(v, false, &pass);
    if (!st.ok()) RefuseValue(std::move(st));
  });
  return m;
}

Mailbox::~Mailbox() { Close(); }
Result<SampleRef> Mailbox::Take(Deadline deadline) { return s_->store.Take(deadline); }
SampleRef Mailbox::TryTake() { return s_->store.Pop(); }
void Mailbox::Close() {
  s_->store.Close();
  sub_.Cancel();
}
FlowSnapshot Mailbox::snapshot() const { return s_->store.Snapshot(); }

// ---- Capacitor ----

struct Capacitor::State {
  State(std::string name, FlowPolicy p, Route out, bool immediate)
      : store(std::move(name), p), sink(std::move(out)), immediate(immediate) {}
  Store store;
  Route sink;
  bool immediate;
  Route source;
  uint64_t edge = 0;

  size_t Discharge(size_t n) {
    std::vector<SampleRef> out = store.Demand(n, immediate);
    for (const SampleRef& v : out) sink.Forward(v).IgnoreError();  // the sink's observers' refusals are theirs
    return out.size();
  }
};

Result<std::shared_ptr<Capacitor>> Capacitor::Create(Route source, Route sink, CapacitorOptions o, std::string name) {
  if (name.empty()) name = "capacitor " + source.name().ToString() + " -> " + sink.name().ToString();
  WEFT_RETURN_IF_ERROR(SameSchema(source, sink));
  FlowPolicy p{.capacity = o.capacity,
               .overflow = o.overflow.value_or(o.capacity == 1 ? Overflow::kCoalesce : Overflow::kBlock),
               .block_timeout_ms = o.block_timeout_ms};
  WEFT_RETURN_IF_ERROR(CheckPolicy(p, name));
  std::shared_ptr<Capacitor> c(new Capacitor());
  c->s_ = std::make_shared<State>(name, p, sink, o.immediate);
  c->s_->source = source;
  c->s_->edge = source.AddEdge(sink, "capacitor", name);
  std::weak_ptr<State> weak = c->s_;
  c->in_ = source.Observe([weak](const SampleRef& v) {
    auto s = weak.lock();
    if (s == nullptr) return;
    bool pass = false;
    Status st = s->store.Put(v, s->immediate, &pass);
    if (!st.ok()) RefuseValue(std::move(st));
    if (pass) s->sink.Forward(v).IgnoreError();
  });
  if (o.demand != nullptr) {
    c->demand_ = o.demand->Observe([weak](const SampleRef&) {
      auto s = weak.lock();
      if (s != nullptr) s->Discharge(1);
    });
  }
  return c;
}

Capacitor::~Capacitor() { Close(); }
size_t Capacitor::Discharge(size_t n) { return s_->Discharge(n); }
FlowSnapshot Capacitor::snapshot() const { return s_->store.Snapshot(); }
void Capacitor::Close() {
  s_->source.RemoveEdge(s_->edge);
  s_->store.Close();
  in_.Cancel();
  demand_.Cancel();
}

// ---- Resistor ----

bool GateOpen(const Route& gate) {
  SampleRef g = gate.Latest();
  if (g == nullptr) return false;
  auto b = g->bytes();
  if (!b.ok()) return false;
  return std::any_of(b->begin(), b->end(), [](uint8_t c) { return c != 0; });
}

struct Resistor::State {
  std::string name;
  Route source;
  uint64_t edge = 0;
  Route sink;
  std::optional<Route> gate;
  bool pulsed = false;
  mutable Mutex mu;
  SampleRef held WEFT_GUARDED_BY(mu);
  FlowSnapshot counts WEFT_GUARDED_BY(mu);

  bool Open() const { return !gate || GateOpen(*gate); }
};

Result<std::shared_ptr<Resistor>> Resistor::Create(Route source, Route sink, ResistorOptions o, std::string name) {
  if (name.empty()) name = "resistor " + source.name().ToString() + " -> " + sink.name().ToString();
  WEFT_RETURN_IF_ERROR(SameSchema(source, sink));
  std::shared_ptr<Resistor> r(new Resistor());
  r->s_ = std::make_shared<State>();
  r->s_->name = name;
  r->s_->sink = sink;
  r->s_->source = source;
  r->s_->edge = source.AddEdge(sink, "resistor", name);
  if (o.gate != nullptr) r->s_->gate = *o.gate;
  r->s_->pulsed = o.release != nullptr;
  {
    MutexLock l(r->s_->mu);
    r->s_->counts.name = name;
    r->s_->counts.capacity = r->s_->pulsed ? 1 : 0;
  }
  std::weak_ptr<State> weak = r->s_;
  r->in_ = source.Observe([weak](const SampleRef& v) {
    auto s = weak.lock();
    if (s == nullptr) return;
    const bool open = s->Open();
    {
      MutexLock l(s->mu);
      if (!open) {
        ++s->counts.gated;
        return;
      }
      ++s->counts.accepted;
      if (s->pulsed) {
        if (s->held != nullptr) ++s->counts.coalesced;
        s->held = v;
        return;
      }
      ++s->counts.delivered;
    }
    s->sink.Forward(v).IgnoreError();
  });
  if (o.release != nullptr) {
    r->release_ = o.release->Observe([weak](const SampleRef&) {
      auto s = weak.lock();
      if (s == nullptr) return;
      SampleRef v;
      {
        MutexLock l(s->mu);
        v = std::move(s->held);
        s->held = nullptr;
        if (v != nullptr) ++s->counts.delivered;
      }
      if (v != nullptr) s->sink.Forward(v).IgnoreError();
    });
  }
  return r;
}

Resistor::~Resistor() { Close(); }
FlowSnapshot Resistor::snapshot() const {
  MutexLock l(s_->mu);
  FlowSnapshot out = s_->counts;
  out.depth = s_->held != nullptr ? 1 : 0;
  return out;
}
void Resistor::Close() {
  s_->source.RemoveEdge(s_->edge);
  in_.Cancel();
  release_.Cancel();
}

// ---- clocks ----

namespace {

// Timers by id and time; the clocks below share it.
class Timers {
 public:
  uint64_t Add(int64_t at, std::function<void()> fn) WEFT_REQUIRES(mu) {
    const uint64_t id = next_++;
    by_time_.emplace(std::make_pair(at, id), std::move(fn));
    times_[id] = at;
    return id;
  }
  void Remove(uint64_t id) WEFT_REQUIRES(mu) {
    auto it = times_.find(id);
    if (it == times_.end()) return;
    by_time_.erase({it->second, id});
    times_.erase(it);
  }
  // The earliest timer due at or before `now`: its time and function (removed), or false.
  bool PopDue(int64_t now, int64_t* at, std::function<void()>* fn) WEFT_REQUIRES(mu) {
    if (by_time_.empty() || by_time_.begin()->first.first > now) return false;
    auto it = by_time_.begin();
    *at = it->first.first;
    *fn = std::move(it->second);
    times_.erase(it->first.second);
    by_time_.erase(it);
    return true;
  }
  int64_t Earliest() const WEFT_REQUIRES(mu) { return by_time_.empty() ? INT64_MAX : by_time_.begin()->first.first; }

  Mutex mu;

 private:
  std::map<std::pair<int64_t, uint64_t>, std::function<void()>> by_time_;
  std::map<uint64_t, int64_t> times_;
  uint64_t next_ = 1;
};

class SystemClock final : public Clock {
 public:
  SystemClock() {
    std::thread([this] { Run(); }).detach();  // the process's one timer thread, for its life
  }
  int64_t NowNs() const override { return MonotonicNs(); }
  uint64_t At(int64_t at_ns, std::function<void()> fn) override {
    MutexLock l(t_.mu);
    const bool earlier = at_ns < t_.Earliest();
    const uint64_t id = t_.Add(at_ns, std::move(fn));
    if (earlier) cv_.NotifyOne();
    return id;
  }
  void Cancel(uint64_t id) override {
    MutexLock l(t_.mu);
    t_.Remove(id);
  }

 private:
  void Run() {
    MutexLock l(t_.mu);
    for (;;) {
      int64_t at = 0;
      std::function<void()> fn;
      if (t_.PopDue(MonotonicNs(), &at, &fn)) {
        l.Unlock();
        fn();
        l.Lock();
        continue;
      }
      const int64_t next = t_.Earliest();
      if (next == INT64_MAX) {
        cv_.Wait(l);
      } else {
        cv_.WaitForNs(l, std::max<int64_t>(1, next - MonotonicNs()));
      }
    }
  }
  Timers t_;
  CondVar cv_;
};

}  // namespace

Clock& Clock::System() {
  static SystemClock* clock = new SystemClock();  // never destroyed: its thread runs to the end
  return *clock;
}

struct ManualClock::State {
  Timers t;
  int64_t now WEFT_GUARDED_BY(t.mu) = 0;
};

ManualClock::ManualClock(int64_t start_ns) : s_(std::make_unique<State>()) {
  MutexLock l(s_->t.mu);
  s_->now = start_ns;
}
ManualClock::~ManualClock() = default;

int64_t ManualClock::NowNs() const {
  MutexLock l(s_->t.mu);
  return s_->now;
}

uint64_t ManualClock::At(int64_t at_ns, std::function<void()> fn) {
  MutexLock l(s_->t.mu);
  return s_->t.Add(at_ns, std::move(fn));
}

void ManualClock::Cancel(uint64_t id) {
  MutexLock l(s_->t.mu);
  s_->t.Remove(id);
}

void ManualClock::Advance(int64_t ns) {
  MutexLock l(s_->t.mu);
  const int64_t target = s_->now + ns;
  for (;;) {
    int64_t at = 0;
    std::function<void()> fn;
    if (!s_->t.PopDue(target, &at, &fn)) break;
    s_->now = std::max(s_->now, at);  // the time the timer was due, while it runs
    l.Unlock();
    fn();
    l.Lock();
  }
  s_->now = target;
}

// ---- Watchdog ----

struct Watchdog::State {
  Route output;
  Route reset_by;
  uint64_t edge = 0;
  int64_t after = 0;
  Clock* clock = nullptr;
  mutable Mutex mu;
  uint64_t timer WEFT_GUARDED_BY(mu) = 0;
  uint64_t generation WEFT_GUARDED_BY(mu) = 0;  // a timer of an older generation is stale
  int64_t misses WEFT_GUARDED_BY(mu) = 0;
  uint64_t fired WEFT_GUARDED_BY(mu) = 0;
  bool closed WEFT_GUARDED_BY(mu) = false;

  void Arm(const std::shared_ptr<State>& self) WEFT_REQUIRES(mu) {
    const uint64_t gen = ++generation;
    std::weak_ptr<State> weak = self;
    timer = clock->At(clock->NowNs() + after, [weak, gen] {
      auto s = weak.lock();
      if (s != nullptr) s->Fire(s, gen);
    });
  }

  void Fire(const std::shared_ptr<State>& self, uint64_t gen) {
    int64_t count = 0;
    {
      MutexLock l(mu);
      if (closed || gen != generation) return;
      count = ++misses;
      ++fired;
      Arm(self);
    }
    output.Publish(std::string(reinterpret_cast<const char*>(&count), sizeof(count))).IgnoreError();
  }
};

Result<std::shared_ptr<Watchdog>> Watchdog::Create(Route reset_by, Route output, int64_t after_ns, Clock& clock,
                                                   std::string name) {
  if (after_ns <= 0) return InvalidArgument("a watchdog's interval is at least 1 ns");
  if (output.schema().text() != "i64" && output.schema().fixed_size() != 8) {
    return Status(Code::kSchemaMismatch, "a watchdog publishes its count of misses as an int64: route " +
                                             output.name().ToString() + " carries '" + output.schema().text() + "'");
  }
  if (name.empty()) name = "watchdog " + reset_by.name().ToString() + " -> " + output.name().ToString();
  std::shared_ptr<Watchdog> w(new Watchdog());
  w->s_ = std::make_shared<State>();
  w->s_->output = output;
  w->s_->reset_by = reset_by;
  w->s_->edge = reset_by.AddEdge(output, "watchdog", name);
  w->s_->after = after_ns;
  w->s_->clock = &clock;
  {
    MutexLock l(w->s_->mu);
    w->s_->Arm(w->s_);
  }
  std::weak_ptr<State> weak = w->s_;
  w->sub_ = reset_by.Observe([weak](const SampleRef&) {
    auto s = weak.lock();
    if (s == nullptr) return;
    MutexLock l(s->mu);
    if (s->closed) return;
    s->clock->Cancel(s->timer);
    s->misses = 0;
    s->Arm(s);
  });
  return w;
}

Watchdog::~Watchdog() { Close(); }

uint64_t Watchdog::fired() const {
  MutexLock l(s_->mu);
  return s_->fired;
}

void Watchdog::Close() {
  s_->reset_by.RemoveEdge(s_->edge);
  sub_.Cancel();
  MutexLock l(s_->mu);
  if (s_->closed) return;
  s_->closed = true;
  s_->clock->Cancel(s_->timer);
}

}  // namespace weft::graph
