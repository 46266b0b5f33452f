// Write bindings, lifecycles and control loops (weft/graph/write.h). The reconciler's state is
// under one lock; what it publishes (desired, effective, events) is queued under that lock and
// published by one thread at a time after it, in order: an actuator in the same process that
// reports from inside its desired observer re-enters the binding, and finds its report queued
// behind the send that caused it.
#include "weft/graph/write.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "internal/json.h"
#include "weft/core/mutex.h"

namespace weft::graph {

int64_t RetryPolicy::BackoffBefore(uint32_t attempt) const {
  if (attempt < 2) return 0;
  double b = static_cast<double>(backoff_ns) * std::pow(multiplier, static_cast<double>(attempt - 2));
  b = std::min(b, static_cast<double>(max_backoff_ns));
  return static_cast<int64_t>(b);
}

const char* WritePhaseName(WritePhase p) {
  switch (p) {
    case WritePhase::kIdle: return "idle";
    case WritePhase::kQueued: return "queued";
    case WritePhase::kInFlight: return "in_flight";
    case WritePhase::kBackoff: return "backoff";
    case WritePhase::kSynced: return "synced";
    case WritePhase::kFailed: return "failed";
  }
  return "?";
}

const char* WriteFailureName(WriteFailure f) {
  switch (f) {
    case WriteFailure::kNone: return "none";
    case WriteFailure::kNoReport: return "no_report";
    case WriteFailure::kMismatch: return "mismatch";
  }
  return "?";
}

std::string SchedulerSnapshot::ToJson() const {
  char buf[640];
  std::snprintf(buf, sizeof(buf),
                ",\"phase\":\"%s\",\"guard_open\":%s,\"coherent\":%s,\"attempt\":%u,\"next_at_ns\":%lld,"
                "\"deadline_ns\":%lld,\"last_failure\":\"%s\",\"request_id\":%llu,\"reported_id\":%llu,"
                "\"requests\":%llu,\"coalesced\":%llu,\"sends\":%llu,\"retries\":%llu,\"acknowledged\":%llu,"
                "\"drifts\":%llu,\"failures\":%llu,\"incoherent\":%llu}",
                WritePhaseName(phase), guard_open ? "true" : "false", coherent ? "true" : "false", attempt,
                static_cast<long long>(next_at_ns), static_cast<long long>(deadline_ns), WriteFailureName(last_failure),
                static_cast<unsigned long long>(request_id), static_cast<unsigned long long>(reported_id),
                static_cast<unsigned long long>(requests), static_cast<unsigned long long>(coalesced),
                static_cast<unsigned long long>(sends), static_cast<unsigned long long>(retries),
                static_cast<unsigned long long>(acknowledged), static_cast<unsigned long long>(drifts),
                static_cast<unsigned long long>(failures), static_cast<unsigned long long>(incoherent));
  return "{\"binding\":" + internal::JsonString(binding) + buf;
}

namespace {

enum class Out { kDesired, kEffective, kEvent };

// One thing to publish, in the order the reconciler decided it.
struct Action {
  Out what;
  SampleRef value{};     // kDesired: the request's value; kEffective: the report
  uint8_t taints = 0;    // kEffective
  std::string event{};   // kEvent: its JSON
  Envelope cause{};      // kEvent: the value it is about
  bool has_cause = false;
};

bool EqualBytes(const Sample& a, const Sample& b) {
  auto x = a.bytes();
  auto y = b.bytes();
  return x.ok() && y.ok() && x->size() == y->size() && std::equal(x->begin(), x->end(), y->begin());
}

}  // namespace

struct WriteBinding::State {
  WriteBindingOptions o;
  Clock* clock = nullptr;
  std::string name;  // owner/family/stream
  Route request, desired, reported, effective, events;
  std::optional<Route> guard;
  Subscription on_request, on_reported, on_guard;
  uint64_t edges[2] = {0, 0};

  mutable Mutex mu;
  bool closed WEFT_GUARDED_BY(mu) = false;
  SchedulerSnapshot snap WEFT_GUARDED_BY(mu);
  SampleRef pending WEFT_GUARDED_BY(mu);   // a request not yet sent
  SampleRef value WEFT_GUARDED_BY(mu);     // the request being reconciled
  SampleRef report WEFT_GUARDED_BY(mu);    // the latest report
  bool queued_said WEFT_GUARDED_BY(mu) = false;  // the pending request's "queued" event went out
  bool waiting_guard WEFT_GUARDED_BY(mu) = false;  // a retry waits for the guard
  bool reported_since_send WEFT_GUARDED_BY(mu) = false;  // a report (not matching) came after the last send
  int64_t last_send_ns WEFT_GUARDED_BY(mu) = INT64_MIN;
  // A timer on the clock; one of an older generation is stale when it fires.
  struct Timer {
    uint64_t id = 0;
    uint64_t gen = 0;
  };
  Timer timer WEFT_GUARDED_BY(mu);     // the send, ack, backoff and minimum-interval timer
  Timer deadline WEFT_GUARDED_BY(mu);  // the coherence deadline
  std::vector<Action> outbox WEFT_GUARDED_BY(mu);
  bool draining WEFT_GUARDED_BY(mu) = false;
  std::weak_ptr<State> self;

  // The guard's state, read when its value comes, outside the lock: reading a value may encode
  // it, and a binding's encoder may need its own lock (the GIL).
  bool guard_open WEFT_GUARDED_BY(mu) = true;
  bool GuardOpen() const WEFT_REQUIRES(mu) { return guard_open; }

  void Event(const char* kind, const SampleRef& about, WriteFailure failure = WriteFailure::kNone)
      WEFT_REQUIRES(mu) {
    char buf[256];
    std::snprintf(buf, sizeof(buf), ",\"kind\":\"%s\",\"attempt\":%u,\"value\":%llu,\"failure\":\"%s\",\"at_ns\":%lld}",
                  kind, snap.attempt, static_cast<unsigned long long>(about != nullptr ? about->envelope().id : 0),
                  WriteFailureName(failure), static_cast<long long>(clock->NowNs()));
    Action a{.what = Out::kEvent, .event = "{\"binding\":" + internal::JsonString(name) + buf};
    if (about != nullptr) {
      a.cause = about->envelope();
      a.has_cause = true;
    }
    outbox.push_back(std::move(a));
  }

  void PublishEffective(const SampleRef& r) WEFT_REQUIRES(mu) {
    outbox.push_back({.what = Out::kEffective, .value = r, .taints = snap.coherent ? uint8_t{0} : uint8_t{kIncoherent}});
  }

  void Arm(Timer& t, int64_t at, void (State::*fire)(uint64_t)) WEFT_REQUIRES(mu) {
    if (t.id != 0) clock->Cancel(t.id);
    const uint64_t gen = ++t.gen;
    std::weak_ptr<State> weak = self;
    t.id = clock->At(at, [weak, gen, fire] {
      if (auto s = weak.lock()) ((*s).*fire)(gen);
    });
  }
  void Stop(Timer& t) WEFT_REQUIRES(mu) {
    if (t.id != 0) clock->Cancel(t.id);
    t.id = 0;
    ++t.gen;
  }
  void ArmTimer(int64_t at) WEFT_REQUIRES(mu) {
    snap.next_at_ns = at;
    Arm(timer, at, &State::OnTimer);
  }
  void StopTimer() WEFT_REQUIRES(mu) {
    Stop(timer);
    snap.next_at_ns = 0;
  }
  void ArmDeadline(int64_t now) WEFT_REQUIRES(mu) {
    snap.deadline_ns = now + o.coherence_deadline_ns;
    Arm(deadline, snap.deadline_ns, &State::OnDeadline);
  }
  void StopDeadline() WEFT_REQUIRES(mu) {
    Stop(deadline);
    snap.deadline_ns = 0;
  }

  void Send(int64_t now) WEFT_REQUIRES(mu) {
    ++snap.attempt;
    ++snap.sends;
    if (snap.attempt > 1) ++snap.retries;
    last_send_ns = now;
    snap.phase = WritePhase::kInFlight;
    waiting_guard = false;
    reported_since_send = false;
    outbox.push_back({.what = Out::kDesired, .value = value});
    Event(snap.attempt > 1 ? "retry" : "sent", value, snap.attempt > 1 ? snap.last_failure : WriteFailure::kNone);
    ArmTimer(now + o.retry.ack_timeout_ns);
  }

  // Sends the pending request if the guard and the minimum interval allow.
  void TrySchedule(int64_t now) WEFT_REQUIRES(mu) {
    if (pending == nullptr) return;
    const bool too_soon = o.min_interval_ns > 0 && last_send_ns != INT64_MIN && now < last_send_ns + o.min_interval_ns;
    if (!GuardOpen() || too_soon) {
      snap.phase = WritePhase::kQueued;
      if (!queued_said) Event("queued", pending);
      queued_said = true;
      if (!GuardOpen()) {
        if (timer.id != 0) StopTimer();  // the guard's next value schedules it
      } else {
        ArmTimer(last_send_ns + o.min_interval_ns);
      }
      return;
    }
    value = std::move(pending);
    pending = nullptr;
    queued_said = false;
    snap.request_id = value->envelope().id;
    snap.attempt = 0;
    snap.last_failure = WriteFailure::kNone;
    ArmDeadline(now);
    Send(now);
  }

  void OnRequest(const SampleRef& s) {
    (void)s->bytes();  // encoded here, outside the lock, for the comparisons to come
    {
      MutexLock l(mu);
      if (closed) return;
      ++snap.requests;
      if (pending != nullptr) ++snap.coalesced;
      pending = s;
      queued_said = false;
      Event("requested", s);
      TrySchedule(clock->NowNs());
    }
    Drain();
  }

  // Whether report `r` carries value `v`: the user's function or equal bytes. Called outside
  // the lock (a binding's function may need its own lock).
  bool Matches(const SampleRef& v, const SampleRef& r) const {
    return o.matches ? o.matches(*v, *r) : EqualBytes(*v, *r);
  }

  void OnReported(const SampleRef& s) {
    (void)s->bytes();
    SampleRef against;
    {
      MutexLock l(mu);
      against = value;
    }
    bool matched = against != nullptr && Matches(against, s);
    {
      MutexLock l(mu);
      if (closed) return;
      if (value != against) {  // a new value was sent meanwhile: compare with it
        SampleRef now = value;
        l.Unlock();
        matched = now != nullptr && Matches(now, s);
        l.Lock();
        if (closed) return;
        if (value != now) matched = false;  // and yet another: this report is not its answer
      }
      report = s;
      snap.reported_id = s->envelope().id;
      if (value == nullptr) {
        PublishEffective(s);  // nothing desired yet: the report is the truth
      } else if (matched) {
        if (snap.phase != WritePhase::kSynced) {
          ++snap.acknowledged;
          snap.phase = WritePhase::kSynced;
          snap.last_failure = WriteFailure::kNone;
          StopTimer();
          StopDeadline();
          Event("acknowledged", s);
        }
        if (!snap.coherent) {
          snap.coherent = true;
          Event("coherent", s);
        }
        PublishEffective(s);
        TrySchedule(clock->NowNs());  // a request that waited behind this one
      } else {
        snap.last_failure = WriteFailure::kMismatch;
        reported_since_send = true;
        Event("mismatch", s, WriteFailure::kMismatch);
        PublishEffective(s);
        if (snap.phase == WritePhase::kSynced) {  // the device left the value: correct it
          ++snap.drifts;
          Event("drift", s, WriteFailure::kMismatch);
          const int64_t now = clock->NowNs();
          snap.attempt = 0;
          ArmDeadline(now);
          if (GuardOpen()) {
            Send(now);
          } else {
            snap.phase = WritePhase::kBackoff;
            waiting_guard = true;
          }
        }
      }
    }
    Drain();
  }

  void OnGuard(const SampleRef& g) {
    auto b = g->bytes();
    const bool open = b.ok() && std::any_of(b->begin(), b->end(), [](uint8_t c) { return c != 0; });
    {
      MutexLock l(mu);
      if (closed) return;
      guard_open = open;
      if (!open) return;
      const int64_t now = clock->NowNs();
      if (snap.phase == WritePhase::kBackoff && waiting_guard) {
        Send(now);
      } else {
        TrySchedule(now);
      }
    }
    Drain();
  }

  void OnTimer(uint64_t gen) {
    {
      MutexLock l(mu);
      if (closed || gen != timer.gen) return;
      timer.id = 0;
      snap.next_at_ns = 0;
      const int64_t now = clock->NowNs();
      switch (snap.phase) {
        case WritePhase::kQueued:
          TrySchedule(now);
          break;
        case WritePhase::kInFlight: {  // the ack timeout
          snap.last_failure = reported_since_send ? WriteFailure::kMismatch : WriteFailure::kNoReport;
          if (o.retry.max_attempts != 0 && snap.attempt >= o.retry.max_attempts) {
            snap.phase = WritePhase::kFailed;
            ++snap.failures;
            Event("failed", value, snap.last_failure);
            TrySchedule(now);  // a newer request may go
          } else {
            snap.phase = WritePhase::kBackoff;
            ArmTimer(now + o.retry.BackoffBefore(snap.attempt + 1));
          }
          break;
        }
        case WritePhase::kBackoff:
          if (GuardOpen()) {
            Send(now);
          } else {
            waiting_guard = true;
          }
          break;
        default:
          break;
      }
    }
    Drain();
  }

  void OnDeadline(uint64_t gen) {
    {
      MutexLock l(mu);
      if (closed || gen != deadline.gen) return;
      deadline.id = 0;
      if (value == nullptr || snap.phase == WritePhase::kSynced) return;
      if (snap.coherent) {
        snap.coherent = false;
        ++snap.incoherent;
        Event("incoherent", value, snap.last_failure == WriteFailure::kNone ? WriteFailure::kNoReport : snap.last_failure);
        if (report != nullptr) PublishEffective(report);
      }
    }
    Drain();
  }

  // Publishes what was queued, in order, one thread at a time.
  void Drain() {
    {
      MutexLock l(mu);
      if (draining) return;
      draining = true;
    }
    for (;;) {
      std::vector<Action> batch;
      {
        MutexLock l(mu);
        if (outbox.empty()) {
          draining = false;
          return;
        }
        batch.swap(outbox);
      }
      for (Action& a : batch) {
        switch (a.what) {
          case Out::kDesired:
            desired.Forward(a.value).IgnoreError();
            break;
          case Out::kEffective:
            effective.Forward(a.value, {.taints = a.taints}).IgnoreError();
            break;
          case Out::kEvent:
            events.Publish(std::move(a.event), {.cause = a.has_cause ? &a.cause : nullptr}).IgnoreError();
            break;
        }
      }
    }
  }
};

Result<std::shared_ptr<WriteBinding>> WriteBinding::Create(Graph& graph, const RouteName& base, const Schema& schema,
                                                           WriteBindingOptions o) {
  if (o.retry.ack_timeout_ns <= 0) return InvalidArgument("a write binding's ack timeout is at least 1 ns");
  if (o.retry.backoff_ns < 0 || o.retry.max_backoff_ns < 0 || !(o.retry.multiplier >= 1.0) ||
      !std::isfinite(o.retry.multiplier)) {
    return InvalidArgument("a write binding's backoff is at least 0 ns, multiplied by a finite number of at least 1");
  }
  if (o.coherence_deadline_ns <= 0) return InvalidArgument("a write binding's coherence deadline is at least 1 ns");
  if (o.min_interval_ns < 0) return InvalidArgument("a write binding's minimum interval is at least 0 ns");
  auto named = [&](const char* variant, const char* plane, const char* layer) {
    RouteName n = base;
    n.variant = variant;
    n.plane = plane;
    n.layer = layer;
    return n;
  };
  auto s = std::make_shared<State>();
  s->clock = o.clock != nullptr ? o.clock : &Clock::System();
  if (o.guard != nullptr) s->guard = *o.guard;
  s->name = base.owner + "/" + base.family + "/" + base.stream;
  auto event_schema = Schema::FromText(kWriteEventSchema);
  if (!event_schema.ok()) return event_schema.status();
  struct Want {
    Route* route;
    RouteName name;
    const Schema* schema;
  } wants[] = {{&s->request, named("request", "write", "logical"), &schema},
               {&s->desired, named("desired", "write", "shadow"), &schema},
               {&s->reported, named("reported", "read", "shadow"), &schema},
               {&s->effective, named("effective", "read", "logical"), &schema},
               {&s->events, named("event", "debug", "shadow"), &*event_schema}};
  for (Want& w : wants) {
    auto r = graph.Declare(w.name, *w.schema);
    if (!r.ok()) return r.status();
    *w.route = *r;
  }
  o.guard = nullptr;  // kept in s->guard
  s->o = std::move(o);
  s->self = s;
  {
    MutexLock l(s->mu);
    s->snap.binding = s->name;
    s->guard_open = !s->guard || GateOpen(*s->guard);
  }
  std::weak_ptr<State> weak = s;
  s->edges[0] = s->request.AddEdge(s->desired, "reconciler", "write " + s->name);
  s->edges[1] = s->reported.AddEdge(s->effective, "reconciler", "write " + s->name);
  s->on_reported = s->reported.Observe([weak](const SampleRef& v) {
    if (auto st = weak.lock()) st->OnReported(v);
  });
  if (s->guard) {
    s->on_guard = s->guard->Observe([weak](const SampleRef& v) {
      if (auto st = weak.lock()) st->OnGuard(v);
    });
  }
  s->on_request = s->request.Observe([weak](const SampleRef& v) {
    if (auto st = weak.lock()) st->OnRequest(v);
  });
  std::shared_ptr<WriteBinding> b(new WriteBinding());
  b->s_ = std::move(s);
  return b;
}

WriteBinding::~WriteBinding() { Close(); }

Route WriteBinding::request() const { return s_->request; }
Route WriteBinding::desired() const { return s_->desired; }
Route WriteBinding::reported() const { return s_->reported; }
Route WriteBinding::effective() const { return s_->effective; }
Route WriteBinding::events() const { return s_->events; }

SchedulerSnapshot WriteBinding::snapshot() const {
  MutexLock l(s_->mu);
  SchedulerSnapshot snap = s_->snap;
  snap.guard_open = s_->GuardOpen();
  return snap;
}

void WriteBinding::Close() {
  {
    MutexLock l(s_->mu);
    if (s_->closed) return;
    s_->closed = true;
    s_->StopTimer();
    s_->StopDeadline();
  }
  s_->on_request.Cancel();
  s_->on_reported.Cancel();
  s_->on_guard.Cancel();
  s_->request.RemoveEdge(s_->edges[0]);
  s_->reported.RemoveEdge(s_->edges[1]);
}

// ---- Lifecycle ----

Result<std::shared_ptr<Lifecycle>> Lifecycle::Create(Graph& graph, const std::string& owner, const std::string& family,
                                                     const Schema& intent, LifecycleOptions o) {
  std::shared_ptr<Lifecycle> l(new Lifecycle());
  auto health_schema = Schema::FromText("bool");
  if (!health_schema.ok()) return health_schema.status();
  auto health = graph.Declare({.owner = owner, .family = family, .stream = "lifecycle", .variant = "health"}, *health_schema);
  if (!health.ok()) return health.status();
  l->health_ = *health;
  if (o.gate_on_health) o.write.guard = &l->health_;
  auto b = WriteBinding::Create(graph, {.owner = owner, .family = family, .stream = "lifecycle"}, intent, o.write);
  if (!b.ok()) return b.status();
  l->binding_ = std::move(*b);
  return l;
}

// ---- ControlLoop ----

Status ControlLoop::Install(ReadThenWriteNextEpochStep step) {
  if (step.name.empty() || !step.next) return InvalidArgument("a control loop's step has a name and a function");
  MutexLock l(mu_);
  for (const auto& s : steps_) {
    if (s.name == step.name) return InvalidArgument("control loop " + name_ + " already has a step " + step.name);
  }
  steps_.push_back(std::move(step));
  return Status::Ok();
}

Result<uint64_t> ControlLoop::RunOnce() {
  MutexLock run(run_mu_);
  std::vector<ReadThenWriteNextEpochStep> steps;
  uint64_t epoch = 0;
  {
    MutexLock l(mu_);
    steps = steps_;
    epoch = ++epoch_;
  }
  for (const auto& step : steps) {
    SampleRef read = step.read.Latest();
    auto next = step.next(read, epoch);
    if (!next.ok()) {
      if (next.status().code() == Code::kNotFound) continue;
      return next.status();
    }
    WEFT_RETURN_IF_ERROR(step.output.Publish(std::move(*next), {.cause = read != nullptr ? &read->envelope() : nullptr}));
  }
  return epoch;
}

uint64_t ControlLoop::epoch() const {
  MutexLock l(mu_);
  return epoch_;
}

std::vector<std::string> ControlLoop::steps() const {
  MutexLock l(mu_);
  std::vector<std::string> names;
  for (const auto& s : steps_) names.push_back(s.name);
  return names;
}

}  // namespace weft::graph
