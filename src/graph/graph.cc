// Routes in one process: latest values, observers and envelopes (weft/graph/graph.h).
#include "weft/graph/graph.h"

#include <atomic>
#include <algorithm>
#include <cstdio>
#include <deque>
#include <functional>
#include <map>
#include <random>
#include <thread>

#include "internal/hooks.h"
#include "internal/json.h"
#include "internal/record.h"
#include "weft/core/clock.h"
#include "weft/graph/flow.h"
#include "weft/graph/inspect.h"
#include "weft/log/log.h"
#include "weft/core/mutex.h"

namespace weft::graph {
namespace internal {

// One observer: called only while active; Cancel waits out calls in flight on other threads.
// While it replays a route's history, live values wait in `pending`.
struct Entry {
  uint64_t id = 0;
  Observer fn;
  std::atomic<bool> active{true};
  std::atomic<int> inflight{0};
  std::atomic<bool> replaying{false};
  Mutex replay_mu;
  std::vector<SampleRef> pending WEFT_GUARDED_BY(replay_mu);
};
using Entries = std::vector<std::shared_ptr<Entry>>;

thread_local const Entry* t_calling = nullptr;  // the observer this thread is inside, if any
thread_local Status* t_refusal = nullptr;        // where RefuseValue puts its answer, inside Deliver

struct RouteState {
  RouteName name;
  Schema schema;
  uint64_t uid = 0;  // the route's number in its process (ids of its values)
  mutable Mutex mu;
  uint64_t seq WEFT_GUARDED_BY(mu) = 0;
  SampleRef latest WEFT_GUARDED_BY(mu);
  std::shared_ptr<const Entries> entries WEFT_GUARDED_BY(mu) = std::make_shared<Entries>();  // copied on change
  uint64_t next_entry WEFT_GUARDED_BY(mu) = 1;
  // Retention.
  bool ephemeral WEFT_GUARDED_BY(mu) = false;
  bool retaining WEFT_GUARDED_BY(mu) = false;
  Retention retention WEFT_GUARDED_BY(mu);
  std::deque<SampleRef> history WEFT_GUARDED_BY(mu);
  std::unique_ptr<log::Log> log WEFT_GUARDED_BY(mu);
  std::atomic<bool> durable{false};  // values need their bytes before the lock (for the log)
  // Inspection.
  uint64_t refused WEFT_GUARDED_BY(mu) = 0;
  std::vector<std::pair<uint64_t, uint64_t>> producers WEFT_GUARDED_BY(mu);  // up to kMaxProducers ids
  struct EdgeRec {
    uint64_t id;
    RouteName to;
    std::string kind, name;
  };
  std::vector<EdgeRec> out_edges WEFT_GUARDED_BY(mu);
  uint64_t next_edge WEFT_GUARDED_BY(mu) = 1;
  uint64_t tainted[4] WEFT_GUARDED_BY(mu) = {0, 0, 0, 0};  // values carrying each taint bit
  std::deque<RepairNote> repairs WEFT_GUARDED_BY(mu);
  static constexpr size_t kMaxProducers = 16;
  static constexpr size_t kMaxRepairs = 4096;

  // Drops what the limits no longer keep.
  void Trim(int64_t now_ns) WEFT_REQUIRES(mu) {
    if (retention.keep_last != 0) {
      while (history.size() > retention.keep_last) history.pop_front();
    }
    if (retention.max_age_ms != 0) {
      const int64_t oldest = now_ns - retention.max_age_ms * 1'000'000;
      while (!history.empty() && history.front()->envelope().ingest_ns < oldest) history.pop_front();
    }
  }
};

struct GraphState {
  mutable Mutex mu;
  std::map<RouteName, std::shared_ptr<RouteState>> routes WEFT_GUARDED_BY(mu);
};

namespace {
std::atomic<uint64_t> g_route_uids{1};
// Mixed into value ids so that two processes' ids differ (with high probability).
const uint64_t g_process_salt = std::random_device{}() * 0x9E3779B97F4A7C15ull ^ std::random_device{}();

// A bijection of 64-bit numbers (splitmix64's finalizer): distinct inputs, distinct ids.
uint64_t Mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
}  // namespace

std::atomic<void* (*)()> g_release_hook{nullptr};
std::atomic<void (*)(void*)> g_reacquire_hook{nullptr};

}  // namespace internal

void SetWaitHooks(WaitHooks hooks) {
  internal::g_release_hook = hooks.release;
  internal::g_reacquire_hook = hooks.reacquire;
}

using internal::Entry;
using internal::Entries;
using internal::RouteState;

Result<ByteView> Sample::bytes() const {
  if (origin_ != nullptr) return origin_->bytes();
  if (keep_ != nullptr) return view_;
  if (has_bytes_) return ByteView(reinterpret_cast<const uint8_t*>(bytes_.data()), bytes_.size());
  std::call_once(once_, [this] {
    if (encoder_ == nullptr) {
      encoded_ = Status(Code::kInternal, "a local value without an encoder");
      return;
    }
    auto b = encoder_->Encode(local_);
    if (b.ok()) {
      bytes_ = std::move(*b);
    } else {
      encoded_ = b.status();
    }
  });
  if (!encoded_.ok()) return encoded_;
  return ByteView(reinterpret_cast<const uint8_t*>(bytes_.data()), bytes_.size());
}

Subscription& Subscription::operator=(Subscription&& o) noexcept {
  if (this != &o) {
    Cancel();
    route_ = std::move(o.route_);
    id_ = o.id_;
  }
  return *this;
}

void Subscription::Cancel() {
  if (route_ == nullptr) return;
  std::shared_ptr<Entry> gone;
  {
    MutexLock g(route_->mu);
    auto next = std::make_shared<Entries>();
    for (const auto& e : *route_->entries) {
      if (e->id == id_) {
        gone = e;
      } else {
        next->push_back(e);
      }
    }
    route_->entries = std::move(next);
  }
  route_.reset();
  if (gone == nullptr) return;
  gone->active.store(false);
  // Calls that started on other threads finish first (a call on this thread is the caller).
  const int own = internal::t_calling == gone.get() ? 1 : 0;
  if (gone->inflight.load() <= own) return;
  // The call may need the binding's lock (the GIL) to finish: let it go while waiting.
  void* (*release)() = internal::g_release_hook.load();
  void* token = release != nullptr ? release() : nullptr;
  while (gone->inflight.load() > own) std::this_thread::yield();
  if (void (*reacquire)(void*) = internal::g_reacquire_hook.load(); token != nullptr && reacquire != nullptr) reacquire(token);
}

const RouteName& Route::name() const { return s_->name; }
const Schema& Route::schema() const { return s_->schema; }

namespace {
// What a publisher said of a value; its cause gives trace, causality and (unless said) correlation.
Envelope EnvelopeOf(const Meta& meta) {
  Envelope env;
  env.producer = meta.producer;
  env.event_ns = meta.event_ns;
  env.correlation = meta.correlation;
  env.taints = meta.taints & kAllTaints;
  if (meta.cause != nullptr) {
    env.trace = meta.cause->trace;
    env.causality = meta.cause->id;
    env.taints |= meta.cause->taints;
    if (env.correlation == 0) env.correlation = meta.cause->correlation;
  }
  return env;
}
}  // namespace

Status Route::Publish(std::string bytes, const Meta& meta) const {
  if (s_ == nullptr) return InvalidArgument("publishing to a route that was not declared");
  const size_t fixed = s_->schema.fixed_size();
  if (fixed != 0 && bytes.size() != fixed) {
    return InvalidArgument("route " + s_->name.ToString() + " carries " + s_->schema.text() + ": a value is " +
                           std::to_string(fixed) + " bytes, not " + std::to_string(bytes.size()));
  }
  return Deliver(std::make_shared<Sample>(EnvelopeOf(meta), std::move(bytes)), meta.published_id);
}

Status Route::PublishLocal(LocalValue value, std::shared_ptr<const Encoder> encoder, const Meta& meta) const {
  if (s_ == nullptr) return InvalidArgument("publishing to a route that was not declared");
  return Deliver(std::make_shared<Sample>(EnvelopeOf(meta), std::move(value), std::move(encoder)), meta.published_id);
}

void RefuseValue(Status why) {
  if (internal::t_refusal != nullptr && internal::t_refusal->ok()) *internal::t_refusal = std::move(why);
}

namespace {

// What every value from another process must be: of the route's size if fixed, with an id.
Status CheckInjected(const internal::RouteState& r, const Envelope& remote, size_t size) {
  const size_t fixed = r.schema.fixed_size();
  if (fixed != 0 && size != fixed) {
    return Corrupt("route " + r.name.ToString() + " carries " + r.schema.text() + ": a value of " + std::to_string(size) +
                   " bytes came from another process");
  }
  if (remote.id == 0) return Corrupt("a value from another process without an id");
  return Status::Ok();
}

Envelope Injected(Envelope env) {
  env.seq = 0;  // this route's own count
  return env;
}

}  // namespace

Status Route::Inject(const Envelope& remote, std::string bytes, const void* origin) const {
  if (s_ == nullptr) return InvalidArgument("injecting into a route that was not declared");
  WEFT_RETURN_IF_ERROR(CheckInjected(*s_, remote, bytes.size()));
  auto sample = std::make_shared<Sample>(Injected(remote), std::move(bytes));
  sample->set_origin(origin);
  return Deliver(sample);
}

Status Route::InjectInPlace(const Envelope& remote, ByteView bytes, std::shared_ptr<const void> keep, const void* origin) const {
  if (s_ == nullptr) return InvalidArgument("injecting into a route that was not declared");
  WEFT_RETURN_IF_ERROR(CheckInjected(*s_, remote, bytes.size()));
  auto sample = std::make_shared<Sample>(Injected(remote), bytes, std::move(keep));
  sample->set_origin(origin);
  return Deliver(sample);
}

Status Route::Forward(const SampleRef& value, const Meta& meta) const {
  if (s_ == nullptr) return InvalidArgument("forwarding to a route that was not declared");
  if (value == nullptr) return InvalidArgument("forwarding no value");
  Envelope env;
  env.producer = meta.producer;
  env.event_ns = meta.event_ns != 0 ? meta.event_ns : value->envelope().event_ns;
  env.correlation = meta.correlation;
  const Envelope& cause = meta.cause != nullptr ? *meta.cause : value->envelope();
  env.trace = cause.trace;
  env.causality = cause.id;
  env.taints = static_cast<uint8_t>((meta.taints & kAllTaints) | value->envelope().taints | cause.taints);
  if (env.correlation == 0) env.correlation = cause.correlation;
  return Deliver(std::make_shared<Sample>(env, value), meta.published_id);
}

// Stamps the sample (seq, id, times), makes it the latest, and hands it to each observer;
// `published_id` (if set) receives its id.
Status Route::Deliver(const SampleRef& sample, uint64_t* published_id) const {
  auto& env = const_cast<Envelope&>(sample->envelope());  // not yet shared: ours to stamp
  if (env.ingest_ns == 0) env.ingest_ns = WallNs();  // an injected value keeps its first ingest
  if (env.event_ns == 0) env.event_ns = env.ingest_ns;
  ByteView bytes;
  if (s_->durable.load()) {  // made before the lock: an encoder may need a binding's lock (the GIL)
    auto b = sample->bytes();
    if (!b.ok()) return b.status();
    bytes = *b;
  }
  std::shared_ptr<const Entries> entries;
  SampleRef replaced;  // the latest before this one: freed after the observers ran, off their path
  {
    MutexLock g(s_->mu);
    env.seq = ++s_->seq;
    if (env.id == 0) env.id = internal::Mix(internal::g_process_salt ^ (s_->uid << 40 | (env.seq & ((uint64_t{1} << 40) - 1))));
    if (env.trace == 0) env.trace = env.id;
    if (published_id != nullptr) *published_id = env.id;
    if (s_->log != nullptr) {
      auto appended = s_->log->Append(AsBytes(internal::EncodeRecord(env, s_->schema.id(), bytes)));
      if (!appended.ok()) {
        --s_->seq;  // not published: nobody saw it
        return appended.status();
      }
    }
    bool counted = false;
    for (auto& [id, n] : s_->producers) {
      if (id == env.producer) {
        ++n;
        counted = true;
        break;
      }
    }
    if (!counted && s_->producers.size() < internal::RouteState::kMaxProducers) s_->producers.emplace_back(env.producer, 1);
    if (__builtin_expect(env.taints != 0, 0)) {
      for (int b = 0; b < 4; ++b) s_->tainted[b] += (env.taints >> b) & 1;
    }
    replaced = std::move(s_->latest);
    s_->latest = sample;
    if (s_->retaining) {
      s_->history.push_back(sample);
      s_->Trim(env.ingest_ns);
    }
    entries = s_->entries;
  }
  Status refusal;
  Status* outer_refusal = internal::t_refusal;
  internal::t_refusal = &refusal;
  for (const auto& e : *entries) {
    e->inflight.fetch_add(1);
    if (e->active.load()) {
      bool deliver = true;
      if (e->replaying.load()) {  // it is still being given the history: this value waits its turn
        MutexLock l(e->replay_mu);
        if (e->replaying.load()) {
          e->pending.push_back(sample);
          deliver = false;
        }
      }
      if (deliver) {
        const Entry* outer = internal::t_calling;
        internal::t_calling = e.get();
        e->fn(sample);
        internal::t_calling = outer;
      }
    }
    e->inflight.fetch_sub(1);
  }
  internal::t_refusal = outer_refusal;
  if (!refusal.ok()) {
    MutexLock g(s_->mu);
    ++s_->refused;
  }
  return refusal;
}

SampleRef Route::Latest() const {
  if (s_ == nullptr) return nullptr;
  MutexLock g(s_->mu);
  return s_->latest;
}

Subscription Route::Observe(Observer observer) const { return Observe(std::move(observer), false); }

Subscription Route::Observe(Observer observer, bool replay) const {
  auto e = std::make_shared<Entry>();
  e->fn = std::move(observer);
  std::deque<SampleRef> history;
  {
    MutexLock g(s_->mu);
    e->id = s_->next_entry++;
    if (replay && s_->retaining) {
      s_->Trim(WallNs());
      history = s_->history;
      e->replaying = !history.empty();
    }
    auto next = std::make_shared<Entries>(*s_->entries);
    next->push_back(e);
    s_->entries = std::move(next);
  }
  Subscription sub(s_, e->id);
  if (!e->replaying.load()) return sub;
  // The history, then what was published meanwhile (held back in order), then live.
  const Entry* outer = internal::t_calling;
  internal::t_calling = e.get();
  for (const SampleRef& v : history) e->fn(v);
  for (;;) {
    std::vector<SampleRef> more;
    {
      MutexLock l(e->replay_mu);
      if (e->pending.empty()) {
        e->replaying = false;
        break;
      }
      more.swap(e->pending);
    }
    for (const SampleRef& v : more) e->fn(v);
  }
  internal::t_calling = outer;
  return sub;
}

Status Route::MarkEphemeral() const {
  MutexLock g(s_->mu);
  if (s_->retaining) return InvalidArgument("route " + s_->name.ToString() + " is retained: it cannot be ephemeral");
  s_->ephemeral = true;
  return Status::Ok();
}

Status Route::SetRetention(const Retention& r) const {
  MutexLock g(s_->mu);
  const std::string name = s_->name.ToString();
  if (s_->ephemeral) return InvalidArgument("route " + name + " is ephemeral: its values are never retained");
  if (r.keep_last == 0 && r.max_age_ms <= 0) return InvalidArgument("retention of route " + name + " needs keep_last or max_age_ms");
  if (s_->retaining) return InvalidArgument("route " + name + " has its retention already");
  std::unique_ptr<log::Log> lg;
  std::deque<SampleRef> history;
  uint64_t seq = s_->seq;
  if (!r.durable_path.empty()) {
    log::LogOptions o;
    o.retention_events = r.keep_last;
    o.retention_age_ms = r.max_age_ms;
    auto opened = log::Log::Open(r.durable_path, o);
    if (!opened.ok()) return opened.status();
    lg = std::move(*opened);
    // What the log holds comes back: the newest within the limits, the latest, the count.
    const uint64_t first = lg->first_seq(), next = lg->next_seq();
    const uint64_t from = r.keep_last != 0 && next - first > r.keep_last ? next - r.keep_last : first;
    for (uint64_t i = from; i < next; ++i) {
      auto rec = lg->Read(i);
      if (!rec.ok()) return rec.status();
      auto d = internal::DecodeRecord(rec->payload);
      if (!d.ok()) return Status(Code::kCorrupt, "the log of route " + name + " at " + r.durable_path + ", record " +
                                                     std::to_string(i) + ": " + d.status().message());
      if (d->schema_id != s_->schema.id()) {
        return Status(Code::kSchemaMismatch, "the log of route " + name + " at " + r.durable_path +
                                                 " holds values of another schema than '" + s_->schema.text() + "'");
      }
      if (s_->schema.fixed_size() != 0 && d->value.size() != s_->schema.fixed_size()) {
        return Status(Code::kCorrupt, "the log of route " + name + ", record " + std::to_string(i) + ": a value of " +
                                          std::to_string(d->value.size()) + " bytes for '" + s_->schema.text() + "'");
      }
      history.push_back(std::make_shared<Sample>(d->env, std::string(d->value.begin(), d->value.end())));
      seq = std::max(seq, d->env.seq);
    }
  }
  s_->retention = r;
  s_->retaining = true;
  if (lg != nullptr) {
    if (!history.empty() && (s_->latest == nullptr || history.back()->envelope().seq > s_->seq)) s_->latest = history.back();
    s_->seq = seq;
    for (auto& v : s_->history) history.push_back(v);  // values published before, if any
    s_->history = std::move(history);
    s_->log = std::move(lg);
    s_->durable = true;
  }
  s_->Trim(WallNs());
  return Status::Ok();
}

std::vector<SampleRef> Route::History() const {
  MutexLock g(s_->mu);
  if (!s_->retaining) return {};
  s_->Trim(WallNs());
  return std::vector<SampleRef>(s_->history.begin(), s_->history.end());
}

uint64_t Route::published() const {
  MutexLock g(s_->mu);
  return s_->seq;
}

size_t Route::observers() const {
  MutexLock g(s_->mu);
  return s_->entries->size();
}

RouteAudit Route::Audit() const {
  MutexLock g(s_->mu);
  RouteAudit a;
  a.name = s_->name;
  a.schema = s_->schema.text();
  a.published = s_->seq;
  a.refused = s_->refused;
  a.observers = s_->entries->size();
  a.retained = s_->retaining;
  a.ephemeral = s_->ephemeral;
  a.producers = s_->producers;
  for (int b = 0; b < 4; ++b) a.tainted[b] = s_->tainted[b];
  a.repairs = s_->repairs.size();
  for (const auto& e : s_->out_edges) a.out.push_back(Edge{s_->name, e.to, e.kind, e.name});
  return a;
}

void Route::NoteRepair(uint64_t repaired, std::string note) const {
  MutexLock g(s_->mu);
  s_->repairs.push_back({repaired, std::move(note)});
  if (s_->repairs.size() > internal::RouteState::kMaxRepairs) s_->repairs.pop_front();
}

std::vector<RepairNote> Route::RepairNotes() const {
  MutexLock g(s_->mu);
  return {s_->repairs.begin(), s_->repairs.end()};
}

uint64_t Route::AddEdge(const Route& to, std::string kind, std::string name) const {
  MutexLock g(s_->mu);
  const uint64_t id = s_->next_edge++;
  s_->out_edges.push_back({id, to.name(), std::move(kind), std::move(name)});
  return id;
}

void Route::RemoveEdge(uint64_t id) const {
  MutexLock g(s_->mu);
  std::erase_if(s_->out_edges, [id](const internal::RouteState::EdgeRec& e) { return e.id == id; });
}

Topology Graph::Describe() const {
  Topology t;
  for (const Route& r : Routes()) {
    t.routes.push_back(r.Audit());
    for (const Edge& e : t.routes.back().out) t.edges.push_back(e);
  }
  for (RouteAudit& a : t.routes) {
    for (const Edge& e : t.edges) {
      if (e.to == a.name) a.in.push_back(e);
    }
  }
  return t;
}

std::vector<std::string> Graph::Validate() const {
  std::vector<std::string> problems;
  Topology t = Describe();
  std::map<RouteName, const RouteAudit*> by_name;
  for (const RouteAudit& a : t.routes) by_name[a.name] = &a;
  // Edges that move values as they are must join routes of one schema.
  for (const Edge& e : t.edges) {
    if (e.kind == "map" || e.kind == "watchdog") continue;  // these make values of their own
    auto from = by_name.find(e.from), to = by_name.find(e.to);
    if (from != by_name.end() && to != by_name.end() && from->second->schema != to->second->schema) {
      problems.push_back("schema mismatch: " + e.kind + " " + e.from.ToString() + " -> " + e.to.ToString() + " joins '" +
                         from->second->schema + "' to '" + to->second->schema + "'");
    }
  }
  // A cycle of synchronous edges (none of them a capacitor, which stores; a watchdog, which
  // publishes from its clock) would publish for ever inside one publish.
  std::map<RouteName, std::vector<RouteName>> next;
  for (const Edge& e : t.edges) {
    if (e.kind != "capacitor" && e.kind != "watchdog") next[e.from].push_back(e.to);
  }
  std::map<RouteName, int> state;  // 0 new, 1 on the path, 2 done
  std::vector<RouteName> path;
  std::function<void(const RouteName&)> visit = [&](const RouteName& n) {
    state[n] = 1;
    path.push_back(n);
    for (const RouteName& m : next[n]) {
      if (state[m] == 1) {
        std::string cycle;
        bool in = false;
        for (const RouteName& p : path) {
          if (p == m) in = true;
          if (in) cycle += p.ToString() + " -> ";
        }
        problems.push_back("a cycle with no capacitor: " + cycle + m.ToString());
      } else if (state[m] == 0) {
        visit(m);
      }
    }
    path.pop_back();
    state[n] = 2;
  };
  for (const auto& [n, _] : next) {
    if (state[n] == 0) visit(n);
  }
  // A sink nobody reads: values come in, nothing observes or moves them on.
  for (const RouteAudit& a : t.routes) {
    if (!a.in.empty() && a.out.empty() && a.observers == 0 && !a.retained) {
      problems.push_back("unconnected sink: " + a.name.ToString() + " receives values (from " + a.in[0].from.ToString() +
                         ") that nobody observes, moves on or retains");
    }
  }
  return problems;
}

std::vector<LineageEntry> Graph::Lineage(const LineageQuery& q) const {
  std::vector<LineageEntry> all;
  for (const Route& r : Routes()) {
    for (const SampleRef& v : r.History()) all.push_back({r.name(), v->envelope()});
  }
  std::vector<LineageEntry> out;
  if (q.causality != 0) {  // the value, then its causes
    std::map<uint64_t, const LineageEntry*> by_id;
    for (const LineageEntry& e : all) by_id[e.envelope.id] = &e;
    uint64_t id = q.causality;
    for (size_t hops = 0; id != 0 && hops <= all.size(); ++hops) {
      auto it = by_id.find(id);
      if (it == by_id.end()) break;
      out.push_back(*it->second);
      id = it->second->envelope.causality;
    }
    return out;
  }
  for (const LineageEntry& e : all) {
    if (q.route != nullptr && !(e.route == *q.route)) continue;
    if (q.trace != 0 && e.envelope.trace != q.trace) continue;
    if (q.correlation != 0 && e.envelope.correlation != q.correlation) continue;
    out.push_back(e);
  }
  std::sort(out.begin(), out.end(), [](const LineageEntry& a, const LineageEntry& b) {
    return a.envelope.ingest_ns < b.envelope.ingest_ns || (a.envelope.ingest_ns == b.envelope.ingest_ns && a.envelope.id < b.envelope.id);
  });
  return out;
}

using internal::JsonString;

namespace {
// The fields a route's audit and its entry in the topology share.
std::string RouteFields(const RouteAudit& a) {
  return "\"name\":" + JsonString(a.name.ToString()) + ",\"schema\":" + JsonString(a.schema) +
         ",\"published\":" + std::to_string(a.published) + ",\"observers\":" + std::to_string(a.observers) +
         ",\"refused\":" + std::to_string(a.refused) + ",\"retained\":" + (a.retained ? "true" : "false") +
         ",\"ephemeral\":" + (a.ephemeral ? "true" : "false");
}

std::string EdgeJson(const Edge& e) {
  return std::string("{\"from\":") + JsonString(e.from.ToString()) + ",\"to\":" + JsonString(e.to.ToString()) +
         ",\"kind\":" + JsonString(e.kind) + ",\"name\":" + JsonString(e.name) + "}";
}

std::string EdgesJson(const std::vector<Edge>& edges) {
  std::string j = "[";
  for (size_t i = 0; i < edges.size(); ++i) j += (i ? "," : "") + EdgeJson(edges[i]);
  return j + "]";
}
}  // namespace

std::string RouteAudit::ToJson() const {
  std::string p = "[";
  for (size_t i = 0; i < producers.size(); ++i) {
    p += (i ? "," : "") + std::string("{\"producer\":") + std::to_string(producers[i].first) + ",\"values\":" +
         std::to_string(producers[i].second) + "}";
  }
  std::string t = "{";
  for (int b = 0; b < 4; ++b) {
    t += (b ? ",\"" : "\"") + std::string(TaintName(static_cast<Taint>(1 << b))) + "\":" + std::to_string(tainted[b]);
  }
  return "{" + RouteFields(*this) + ",\"producers\":" + p + "],\"in\":" + EdgesJson(in) + ",\"out\":" + EdgesJson(out) +
         ",\"tainted\":" + t + "},\"repairs\":" + std::to_string(repairs) + "}";
}

std::string Topology::RoutesJson() const {
  std::string j = "[";
  for (size_t i = 0; i < routes.size(); ++i) j += (i ? ",{" : "{") + RouteFields(routes[i]) + "}";
  return j + "]";
}

std::string Topology::ToJson() const { return "{\"routes\":" + RoutesJson() + ",\"edges\":" + EdgesJson(edges) + "}"; }

std::string Topology::ToDot() const {
  std::string d = "digraph weft {\n  rankdir=LR;\n";
  for (const RouteAudit& a : routes) {
    d += "  " + JsonString(a.name.ToString()) + " [shape=box, label=" + JsonString(a.name.ToString() + "\n" + a.schema) + "];\n";
  }
  for (const Edge& e : edges) {
    d += "  " + JsonString(e.from.ToString()) + " -> " + JsonString(e.to.ToString()) + " [label=" + JsonString(e.name.empty() ? e.kind : e.kind + ": " + e.name) + "];\n";
  }
  return d + "}\n";
}

const char* TaintName(Taint t) {
  switch (t) {
    case kNondeterministic:
      return "nondeterministic";
    case kSensitive:
      return "sensitive";
    case kRepaired:
      return "repaired";
    case kIncoherent:
      return "incoherent";
  }
  return "unknown";
}

std::shared_ptr<Graph> Graph::Create() { return std::shared_ptr<Graph>(new Graph()); }
Graph::Graph() : s_(std::make_unique<internal::GraphState>()) {}
Graph::~Graph() = default;

Result<Route> Graph::Declare(const RouteName& name, const Schema& schema) {
  WEFT_RETURN_IF_ERROR(name.Validate());
  MutexLock g(s_->mu);
  auto it = s_->routes.find(name);
  if (it != s_->routes.end()) {
    if (!(it->second->schema == schema)) return SchemaMismatch(name, it->second->schema, schema);
    return Route(it->second);
  }
  auto r = std::make_shared<RouteState>();
  r->name = name;
  r->schema = schema;
  r->uid = internal::g_route_uids.fetch_add(1);
  s_->routes.emplace(name, r);
  return Route(r);
}

Result<Route> Graph::Find(const RouteName& name) const {
  MutexLock g(s_->mu);
  auto it = s_->routes.find(name);
  if (it == s_->routes.end()) return NotFound("no route " + name.ToString() + " in this graph");
  return Route(it->second);
}

std::vector<Route> Graph::Routes() const {
  MutexLock g(s_->mu);
  std::vector<Route> out;
  for (const auto& [name, r] : s_->routes) out.push_back(Route(r));
  return out;
}

}  // namespace weft::graph
