// Writes that are facts, not hopes. A write binding keeps apart, as routes of one stream:
//   request    what someone asks for (anyone publishes it)
//   desired    what the reconciler has sent (the actuator observes it)
//   reported   what the actuator says it did (the actuator publishes it)
//   effective  what the application should trust: each reported value, tainted kIncoherent
//              while it disagrees with desired past the coherence deadline
//   event      the reconciler's audit, one JSON object per step (WriteEvent below)
// The reconciler drives desired to reported: a request is scheduled when the guard allows
// (guarded scheduling), sent, and sent again after a typed backoff while no matching report
// comes, up to a number of attempts. A report that drifts from desired after it matched is
// corrected the same way. Control loops run steps that read a route and write the next epoch's
// value. Guide: docs/graph.md, "Writes".
//
//   auto led = graph::WriteBinding::Create(*g, {.owner = "lamp", .family = "light", .stream = "level"},
//                                          graph::Schema::Pod<int32_t>("level.v1"), {}).value();
//   // the actuator: led->desired().Observe(apply), then led->reported().Publish(level)
//   led->request().Publish(int32_t{70});
//   led->snapshot().phase;  // kInFlight, then kSynced once reported says 70
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "weft/core/mutex.h"
#include "weft/graph/flow.h"
#include "weft/graph/graph.h"

namespace weft::graph {

// How a value is sent again when no matching report comes.
struct RetryPolicy {
  uint32_t max_attempts = 5;            // sends of one desired value, the first included (0: no limit)
  int64_t ack_timeout_ns = 1'000'000'000;  // how long a send waits for a matching report
  int64_t backoff_ns = 100'000'000;     // the wait before the second send...
  double multiplier = 2.0;              // ... multiplied by this before each next one
  int64_t max_backoff_ns = 10'000'000'000;
  // The wait before send number `attempt` (2, 3, ...).
  int64_t BackoffBefore(uint32_t attempt) const;
};

struct WriteBindingOptions {
  RetryPolicy retry{};
  // A report may disagree with desired this long after desired was first sent before the
  // binding is incoherent: effective values are then tainted kIncoherent.
  int64_t coherence_deadline_ns = 2'000'000'000;
  // Requests are sent only while this route's latest value is true (bytes not all zero); a
  // guard nobody set is closed. Null: always open.
  const Route* guard = nullptr;
  int64_t min_interval_ns = 0;  // between two sends
  // Whether a report carries the desired value (default: equal bytes).
  std::function<bool(const Sample& desired, const Sample& reported)> matches{};
  Clock* clock = nullptr;  // null: Clock::System()
};

// Where a binding's reconciler is.
enum class WritePhase {
  kIdle,      // nothing requested yet
  kQueued,    // a request waits for the guard or the minimum interval
  kInFlight,  // desired was sent; waiting for a matching report
  kBackoff,   // no matching report in time; waiting to send again
  kSynced,    // the latest report matches desired
  kFailed,    // every attempt was spent; it stays so until a matching report or a new request
};
const char* WritePhaseName(WritePhase p);

// Why a send did not take.
enum class WriteFailure {
  kNone,
  kNoReport,  // nothing was reported within the ack timeout
  kMismatch,  // what was reported is not what was desired
};
const char* WriteFailureName(WriteFailure f);

// The reconciler's state and counts since creation (scheduler_snapshot).
struct SchedulerSnapshot {
  std::string binding;         // the routes' "owner/family/stream"
  WritePhase phase = WritePhase::kIdle;
  bool guard_open = true;
  bool coherent = true;        // false once reported disagrees with desired past the deadline
  uint32_t attempt = 0;        // sends of the current desired value
  int64_t next_at_ns = 0;      // the reconciler's next timer (the clock's time; 0: none)
  int64_t deadline_ns = 0;     // when the current desired value must be reported (0: none)
  WriteFailure last_failure = WriteFailure::kNone;
  uint64_t request_id = 0;     // the envelope id of the request being reconciled
  uint64_t reported_id = 0;    // ... and of the latest report
  uint64_t requests = 0;
  uint64_t coalesced = 0;      // requests replaced by a newer one before they were sent
  uint64_t sends = 0;
  uint64_t retries = 0;
  uint64_t acknowledged = 0;   // desired values a report matched
  uint64_t drifts = 0;         // reports that left a synced value
  uint64_t failures = 0;       // desired values that spent every attempt
  uint64_t incoherent = 0;     // times the deadline passed with reported != desired
  std::string ToJson() const;
};

// One step of the reconciler, as published on the event route ("json weft.graph.WriteEvent.v1"):
// {"binding":..,"kind":..,"attempt":..,"value":<the desired or reported envelope id>,
//  "failure":"none"|"no_report"|"mismatch","at_ns":<the clock's time>}. Kinds: requested,
// queued, sent, retry, acknowledged, mismatch, drift, incoherent, coherent, failed.
inline constexpr const char* kWriteEventSchema = "json weft.graph.WriteEvent.v1";

class WriteBinding {
 public:
  // Declares the five routes of `base` (its variant, plane and layer are the binding's:
  // request/write/logical, desired/write/shadow, reported/read/shadow, effective/read/logical,
  // event/debug/shadow) in `graph`, with `schema` for the first four, and starts reconciling.
  // kInvalidArgument for a bad name or policy; kSchemaMismatch if a route exists with another
  // schema.
  static Result<std::shared_ptr<WriteBinding>> Create(Graph& graph, const RouteName& base, const Schema& schema,
                                                      WriteBindingOptions options = {});
  ~WriteBinding();
  Route request() const;
  Route desired() const;
  Route reported() const;
  Route effective() const;
  Route events() const;
  SchedulerSnapshot snapshot() const;
  // Stops reconciling (timers and observers go; the routes stay).
  void Close();

  struct State;

 private:
  WriteBinding() = default;
  std::shared_ptr<State> s_;
};

// A device's or runtime's lifecycle: a write binding of stream "lifecycle" whose request route
// carries intents (start, stop, a mode...), with a health route
// (<owner>/<family>/lifecycle/health/read/logical, "bool") that, with `gate_on_health`, guards
// its sends: an intent waits until the device says it is healthy.
struct LifecycleOptions {
  WriteBindingOptions write{};
  bool gate_on_health = true;
};

class Lifecycle {
 public:
  static Result<std::shared_ptr<Lifecycle>> Create(Graph& graph, const std::string& owner, const std::string& family,
                                                   const Schema& intent, LifecycleOptions options = {});
  Route intent() const { return binding_->request(); }
  Route health() const { return health_; }
  const std::shared_ptr<WriteBinding>& binding() const { return binding_; }

 private:
  Lifecycle() = default;
  std::shared_ptr<WriteBinding> binding_;
  Route health_;
};

// One step of a control loop: reads the latest value of `read` and writes, on `output`, what
// `next` makes of it for the next epoch (caused by the value read). Everyone observing `output`
// sees the same values the loop writes: it is the step's shared write stream.
struct ReadThenWriteNextEpochStep {
  std::string name;
  Route read;
  Route output;
  // The next epoch's value from the latest read (null before the first value); returning
  // kNotFound skips this epoch's write.
  std::function<Result<std::string>(const SampleRef& read, uint64_t epoch)> next;
};

// Steps run in install order, one epoch at a time, when asked (RunOnce) or by a driver of the
// user's (a timer, a tick route).
class ControlLoop {
 public:
  explicit ControlLoop(std::string name) : name_(std::move(name)) {}
  const std::string& name() const { return name_; }
  // kInvalidArgument for a step without a name or function, or a name already installed.
  Status Install(ReadThenWriteNextEpochStep step);
  // Runs every step once; returns the epoch it ran (1, 2, ...). The first step that fails
  // stops the epoch, and its error is returned (the epoch still counts).
  Result<uint64_t> RunOnce();
  uint64_t epoch() const;
  std::vector<std::string> steps() const;

 private:
  std::string name_;
  mutable Mutex mu_;
  std::vector<ReadThenWriteNextEpochStep> steps_ WEFT_GUARDED_BY(mu_);
  uint64_t epoch_ WEFT_GUARDED_BY(mu_) = 0;
  Mutex run_mu_;  // one epoch at a time
};

}  // namespace weft::graph
