// The reactive graph: typed routes in one process, each with its latest value and observers.
// Publishing closes an envelope around the value (sequence, producer, times, trace, causality,
// correlation) and hands the same immutable sample to every observer, synchronously, on the
// publisher's thread. Guide: docs/graph.md.
//
//   auto g = graph::Graph::Create();
//   auto temp = g->Declare({.owner = "sensor", .family = "env", .stream = "temp"},
//                          graph::Schema::Pod<double>("celsius.v1")).value();
//   auto sub = temp.Observe([](const graph::SampleRef& s) { use(s->as<double>()); });
//   temp.Publish(21.5);
//   temp.Latest()->as<double>();  // 21.5
#pragma once

#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "weft/core/bytes.h"
#include "weft/core/status.h"
#include "weft/graph/route.h"

namespace weft::graph {

// What the graph knows of a value besides the value.
struct Envelope {
  uint64_t seq = 0;          // the route's count of values, from 1
  uint64_t id = 0;           // this value's id, unique in the graph's process (never 0)
  uint64_t producer = 0;     // who published it (the publisher's word; 0: not said)
  int64_t event_ns = 0;      // when it happened, UNIX ns (the publisher's word; else ingest_ns)
  int64_t ingest_ns = 0;     // when the graph took it, UNIX ns
  uint64_t trace = 0;        // the flow it belongs to: its cause's trace, else its own id
  uint64_t causality = 0;    // the id of the value that caused it (0: none)
  uint64_t correlation = 0;  // the user's own (a request id); its cause's if not said
  uint8_t taints = 0;        // Taint bits: its own, and every one of its cause's
};

// What a value is marked as, and passes on to every value made from it (through forwards,
// pipes, filters, capacitors, resistors, windows and joins).
enum Taint : uint8_t {
  kNondeterministic = 1,  // made from randomness, the wall clock, an unordered race...
  kSensitive = 2,         // not to leave where it may be read by the wrong eyes
  kRepaired = 4,          // changed after the fact by a repair (its note says how)
  kIncoherent = 8,        // reported while it disagreed with what was desired past a deadline (writes)
};
inline constexpr uint8_t kAllTaints = kNondeterministic | kSensitive | kRepaired | kIncoherent;
// "nondeterministic", "sensitive", "repaired", "incoherent".
const char* TaintName(Taint t);

// What a publisher may say about a value; the graph fills in the rest.
struct Meta {
  uint64_t producer = 0;
  int64_t event_ns = 0;
  uint64_t correlation = 0;
  const Envelope* cause = nullptr;  // the value this one was made from: trace, causality, correlation, taints
  uint8_t taints = 0;               // Taint bits the publisher marks it with (added to its cause's)
  uint64_t* published_id = nullptr; // if set, receives the id the value was given (its lineage handle)
};

// A language binding's own form of a value (a Python object), carried beside the bytes so that
// observers of that language take it without decoding; `language` is a tag the binding owns.
// It owns `object`: `release` is called on it once, when the sample that carries it is freed.
class LocalValue {
 public:
  LocalValue() = default;
  LocalValue(void* object, const void* language, void (*release)(void*))
      : object_(object), language_(language), release_(release) {}
  LocalValue(LocalValue&& o) noexcept : object_(o.object_), language_(o.language_), release_(o.release_) {
    o.object_ = nullptr;
    o.release_ = nullptr;
  }
  LocalValue& operator=(LocalValue&& o) noexcept {
    if (this != &o) {
      Reset();
      object_ = o.object_;
      language_ = o.language_;
      release_ = o.release_;
      o.object_ = nullptr;
      o.release_ = nullptr;
    }
    return *this;
  }
  LocalValue(const LocalValue&) = delete;
  LocalValue& operator=(const LocalValue&) = delete;
  ~LocalValue() { Reset(); }
  void* object() const { return object_; }
  const void* language() const { return language_; }

 private:
  void Reset() {
    if (release_ != nullptr && object_ != nullptr) release_(object_);
    object_ = nullptr;
    release_ = nullptr;
  }
  void* object_ = nullptr;
  const void* language_ = nullptr;
  void (*release_)(void*) = nullptr;
};

// How a binding turns its local values into bytes, for observers that need bytes (other
// languages, other processes, retention): asked once per value, on first need.
class Encoder {
 public:
  virtual ~Encoder() = default;
  virtual Result<std::string> Encode(const LocalValue& value) const = 0;
};

// One published value: immutable, shared by every observer and by the route's latest.
class Sample {
 public:
  Sample(Envelope env, std::string bytes) : env_(env), bytes_(std::move(bytes)), has_bytes_(true) {}
  Sample(Envelope env, LocalValue local, std::shared_ptr<const Encoder> encoder)
      : env_(env), local_(std::move(local)), encoder_(std::move(encoder)) {}
  // A new envelope around another sample's value (forwarded to another route: no copy).
  Sample(Envelope env, std::shared_ptr<const Sample> value) : env_(env), origin_(std::move(value)) {}
  // A value read in place, in memory that `keep` holds (a shared-memory block): no copy.
  Sample(Envelope env, ByteView view, std::shared_ptr<const void> keep)
      : env_(env), view_(view), keep_(std::move(keep)) {}

  const Envelope& envelope() const { return env_; }
  // The value's bytes; a value published as a local value is encoded on first use (an
  // encoding failure is returned to every caller).
  Result<ByteView> bytes() const;
  // The local value, if the publisher gave one (object() null otherwise).
  const LocalValue& local() const { return origin_ != nullptr ? origin_->local() : local_; }
  // True if its bytes are read in place in memory another holds (a shared-memory block).
  bool in_place() const { return origin_ != nullptr ? origin_->in_place() : keep_ != nullptr; }
  // Who injected it (Route::Inject), or null for a value published here.
  const void* origin() const { return origin_tag_; }
  void set_origin(const void* o) { origin_tag_ = o; }  // before it is published
  // A Pod schema's value. The route checked the size at publish.
  template <typename T>
  T as() const {
    T v{};
    auto b = bytes();
    if (b.ok() && b->size() == sizeof(T)) std::memcpy(&v, b->data(), sizeof(T));
    return v;
  }

 private:
  Envelope env_;
  LocalValue local_;
  std::shared_ptr<const Encoder> encoder_;
  std::shared_ptr<const Sample> origin_;  // the sample whose value this one carries, if forwarded
  ByteView view_;                          // in place (keep_ holds the memory)
  std::shared_ptr<const void> keep_;
  const void* origin_tag_ = nullptr;
  mutable std::once_flag once_;
  mutable std::string bytes_;
  mutable Status encoded_;
  bool has_bytes_ = false;
};
using SampleRef = std::shared_ptr<const Sample>;
using Observer = std::function<void(const SampleRef&)>;

namespace internal {
struct RouteState;
struct GraphState;
}  // namespace internal
struct Edge;  // weft/graph/inspect.h
struct RouteAudit;
struct Topology;
struct LineageQuery;
struct LineageEntry;
struct RepairNote;

// How long a route keeps its values, for History and replay.
struct Retention {
  size_t keep_last = 0;      // the newest values kept (0: no limit by count)
  int64_t max_age_ms = 0;    // values taken in within this long (0: no limit by age)
  std::string durable_path;  // a Weft log directory: the values survive the process (empty: memory)
};

// Observation of a route until Cancel() or destruction.
class Subscription {
 public:
  Subscription() = default;
  Subscription(Subscription&&) noexcept = default;
  Subscription& operator=(Subscription&& o) noexcept;
  ~Subscription() { Cancel(); }
  // No observer call starts after it returns (one running on another thread may finish).
  void Cancel();
  bool active() const { return route_ != nullptr; }

 private:
  friend class Route;
  Subscription(std::shared_ptr<internal::RouteState> route, uint64_t id) : route_(std::move(route)), id_(id) {}
  std::shared_ptr<internal::RouteState> route_;
  uint64_t id_ = 0;
};

// A declared route: a cheap handle, valid as long as any handle or its graph lives.
class Route {
 public:
  Route() = default;
  const RouteName& name() const;
  const Schema& schema() const;

  // Publishes bytes (a Pod schema's exact size; kInvalidArgument otherwise).
  Status Publish(std::string bytes, const Meta& meta = {}) const;
  // Publishes a Pod schema's value.
  template <typename T>
  Status Publish(const T& value, const Meta& meta = {}) const {
    static_assert(std::is_trivially_copyable_v<T>, "Publish(T) is for a Pod schema's type");
    return Publish(std::string(reinterpret_cast<const char*>(&value), sizeof(T)), meta);
  }
  // Publishes a binding's local value, to be encoded by `encoder` if anyone needs bytes.
  Status PublishLocal(LocalValue value, std::shared_ptr<const Encoder> encoder, const Meta& meta = {}) const;
  // Publishes a value that another process published on this route (a placement does): its
  // envelope is kept (id, trace, causality, correlation, producer, event and ingest times:
  // when it entered the graph) but for the seq, which is this route's; `origin` marks it for
  // observers (Sample::origin).
  Status Inject(const Envelope& remote, std::string bytes, const void* origin) const;
  // The same for bytes read in place, in memory `keep` holds while any sample of it lives.
  Status InjectInPlace(const Envelope& remote, ByteView bytes, std::shared_ptr<const void> keep, const void* origin) const;
  // Publishes another route's value on this one, shared (no copy), its envelope the cause of
  // the new one (the flow primitives do this; they check at creation that the two routes have
  // one schema).
  Status Forward(const SampleRef& value, const Meta& meta = {}) const;

  // The newest value (the highest seq), or null before the first.
  SampleRef Latest() const;
  // Keeps values for History and replay, as `r` says (a limit by count or age is needed). A
  // durable route reads back what its log holds: its latest, history and seq continue from
  // there. kInvalidArgument for an ephemeral route or no limit; kSchemaMismatch if the log
  // holds another schema's values; the log's own errors (kBusy if another process writes it).
  Status SetRetention(const Retention& r) const;
  // Never retained from now on (refused once retention is set).
  Status MarkEphemeral() const;
  // The retained values, oldest first (empty without retention).
  std::vector<SampleRef> History() const;
  // `observer` is called with each value published from now on, on the publisher's thread.
  // Values published concurrently from several threads may reach it out of seq order. An
  // observer that cannot take a value says so with RefuseValue: the publish returns that.
  Subscription Observe(Observer observer) const;
  // The same, the retained values first (oldest first), then every value published after them,
  // in order, none twice.
  Subscription Observe(Observer observer, bool replay) const;
  uint64_t published() const;
  size_t observers() const;
  // This route's audit (weft/graph/inspect.h).
  RouteAudit Audit() const;
  // Keeps a repair's note on this route (the route repaired values are published on): value
  // `repaired` was fixed as `note` says. The newest 4,096 are kept.
  void NoteRepair(uint64_t repaired, std::string note) const;
  std::vector<RepairNote> RepairNotes() const;  // oldest first
  // Records an edge from this route to `to` (flow primitives and bindings' pipes do), until
  // RemoveEdge with the id it returns.
  uint64_t AddEdge(const Route& to, std::string kind, std::string name) const;
  void RemoveEdge(uint64_t id) const;

 private:
  friend class Graph;
  explicit Route(std::shared_ptr<internal::RouteState> s) : s_(std::move(s)) {}
  Status Deliver(const SampleRef& s, uint64_t* published_id = nullptr) const;
  std::shared_ptr<internal::RouteState> s_;
};

// Called from inside an observer: the Publish (or Forward) that called it returns `why` (the
// first refusal of that value), after every observer ran. Outside an observer it does nothing.
void RefuseValue(Status why);

// A set of routes by name (the graph of one process; placements across processes and hosts
// build on it).
class Graph {
 public:
  static std::shared_ptr<Graph> Create();
  ~Graph();
  // The route of that name, declared on first use; an existing route with another schema is
  // kSchemaMismatch naming both; a malformed name kInvalidArgument.
  Result<Route> Declare(const RouteName& name, const Schema& schema);
  // kNotFound if it was never declared.
  Result<Route> Find(const RouteName& name) const;
  // Every declared route, in name order.
  std::vector<Route> Routes() const;

  // Inspection (weft/graph/inspect.h): the routes and edges; what is wrong (an edge between
  // routes of different schemas, a cycle of edges with no capacitor on it, a route with
  // incoming edges but no observer and no edge out: a sink nobody reads); the lineage of
  // retained values.
  Topology Describe() const;
  std::vector<std::string> Validate() const;
  std::vector<LineageEntry> Lineage(const LineageQuery& q) const;

 private:
  Graph();
  std::unique_ptr<internal::GraphState> s_;
};

}  // namespace weft::graph
