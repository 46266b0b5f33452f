// Flow in the graph, where it can be seen and where it really acts on the producer: mailboxes
// with credit and overflow policies, capacitors (bounded storage released by demand),
// resistors (pass, gate, release pulses) and watchdogs (missing flow, on a clock that tests
// may drive by hand). Guide: docs/graph.md, "Flow".
//
//   auto box = graph::Mailbox::Create(frames, {.capacity = 4, .overflow = graph::Overflow::kDropOldest}).value();
//   auto f = box->Take(Deadline::AfterMs(100));   // the oldest waiting frame
//   auto cap = graph::Capacitor::Create(readings, display, {.capacity = 1, .demand = &ticks}).value();
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "weft/core/clock.h"
#include "weft/graph/graph.h"

namespace weft::graph {

// What a full mailbox does with one more value.
enum class Overflow {
  kBlock,       // the publisher waits for room, up to the policy's block timeout (then the
                // value is refused: its publish returns kResourceExhausted)
  kDropOldest,  // the oldest waiting value makes room
  kDropNewest,  // the new value is dropped
  kCoalesce,    // the new value replaces the newest waiting one (the freshest is kept)
};
const char* OverflowName(Overflow o);
Result<Overflow> ParseOverflow(std::string_view name);  // "block", "drop_oldest", ...

struct FlowPolicy {
  size_t capacity = 1024;          // values that may wait (at least 1)
  Overflow overflow = Overflow::kBlock;
  int64_t block_timeout_ms = -1;   // kBlock: how long a publisher may wait (-1: for ever)
};

// What a mailbox (or the storage of a capacitor or resistor) holds and has done; counts since
// creation.
struct FlowSnapshot {
  std::string name;
  size_t capacity = 0;
  size_t depth = 0;                // waiting now
  uint64_t accepted = 0;           // values taken in
  uint64_t delivered = 0;          // values handed on (taken, discharged, passed)
  uint64_t dropped_oldest = 0;
  uint64_t dropped_newest = 0;
  uint64_t coalesced = 0;
  uint64_t blocked = 0;            // publishes that waited for room
  int64_t blocked_ns = 0;          // ... how long in all
  uint64_t refused = 0;            // publishes refused after waiting their whole timeout
  uint64_t gated = 0;              // values a closed gate stopped (resistors)
  uint64_t pending_demand = 0;     // demand not yet met (capacitors)
  size_t credit() const { return capacity - depth; }
};

// A binding whose threads hold a lock of their own while they publish (Python's GIL) says how
// to let it go while a publisher waits for room in a full mailbox or capacitor, and how to take
// it back (never while a flow lock is held).
struct WaitHooks {
  void* (*release)() = nullptr;         // returns what reacquire needs (null: nothing was held)
  void (*reacquire)(void*) = nullptr;
};
void SetWaitHooks(WaitHooks hooks);

// Values of a route waiting for a consumer, under a policy.
class Mailbox {
 public:
  // Observes `source` from now on. kInvalidArgument for a capacity of 0.
  static Result<std::shared_ptr<Mailbox>> Create(Route source, FlowPolicy policy, std::string name = "");
  ~Mailbox();
  // The oldest waiting value: kTimeout if none came before the deadline, kClosed once closed
  // and empty.
  Result<SampleRef> Take(Deadline deadline);
  // The oldest waiting value, or null.
  SampleRef TryTake();
  // Stops observing; waiting takers get what is left, then kClosed; blocked publishers return.
  void Close();
  FlowSnapshot snapshot() const;

 private:
  Mailbox() = default;
  struct State;
  std::shared_ptr<State> s_;
  Subscription sub_;
};

// Bounded storage between a source and a sink route that creates demand until full: values
// from `source` are stored (up to `capacity`; a one-slot capacitor keeps the freshest), and
// each value on the `demand` route (or each Discharge) releases the oldest stored one to `sink`.
// With `immediate`, demand that finds it empty is remembered (up to `capacity`) and the next
// values pass straight through. The two routes must have one schema.
struct CapacitorOptions {
  size_t capacity = 1;
  std::optional<Overflow> overflow;  // when full: kCoalesce for one slot, else kBlock (the producer waits)
  int64_t block_timeout_ms = -1;
  const Route* demand = nullptr;     // each value on it releases one (none: Discharge only)
  bool immediate = false;
};

class Capacitor {
 public:
  static Result<std::shared_ptr<Capacitor>> Create(Route source, Route sink, CapacitorOptions options,
                                                   std::string name = "");
  ~Capacitor();
  // Releases up to n stored values to the sink now (with `immediate`, the rest is remembered
  // as demand); returns how many went.
  size_t Discharge(size_t n = 1);
  FlowSnapshot snapshot() const;
  void Close();

 private:
  Capacitor() = default;
  struct State;
  std::shared_ptr<State> s_;
  Subscription in_, demand_;
};

// True if the gate's latest value is true: its bytes are not all zero (a gate nobody set is
// closed).
bool GateOpen(const Route& gate);

// Between a source and a sink: passes every value; with a `gate` route, only while the gate's
// latest value is true (a value whose bytes are not all zero); with a `release` route, holds
// the freshest value until a value on `release` lets it go.
struct ResistorOptions {
  const Route* gate = nullptr;
  const Route* release = nullptr;
};

class Resistor {
 public:
  static Result<std::shared_ptr<Resistor>> Create(Route source, Route sink, ResistorOptions options, std::string name = "");
  ~Resistor();
  FlowSnapshot snapshot() const;
  void Close();

 private:
  Resistor() = default;
  struct State;
  std::shared_ptr<State> s_;
  Subscription in_, release_;
};

// Time for watchdogs: the system's (a timer thread), or one a test moves by hand.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual int64_t NowNs() const = 0;
  // Calls fn once at (or after) `at_ns` on this clock, on the clock's thread; an id to cancel.
  virtual uint64_t At(int64_t at_ns, std::function<void()> fn) = 0;
  // After it returns fn will not start (one running on the clock's thread may finish).
  virtual void Cancel(uint64_t id) = 0;
  // CLOCK_MONOTONIC, with one timer thread for the process.
  static Clock& System();
};

// A clock that moves only when told: Advance runs what came due, in time order, on the
// caller's thread.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(int64_t start_ns = 0);
  ~ManualClock() override;
  int64_t NowNs() const override;
  uint64_t At(int64_t at_ns, std::function<void()> fn) override;
  void Cancel(uint64_t id) override;
  void Advance(int64_t ns);

 private:
  struct State;
  std::unique_ptr<State> s_;
};

// Missing-flow detection: if `after_ns` passes with no value on `reset_by`, publishes on
// `output` the count of intervals missed in a row (1, 2, ... as an int64: the output's schema
// is "i64" or an 8-byte pod), every `after_ns` while the silence lasts. A value on `reset_by`
// starts the interval again.
class Watchdog {
 public:
  static Result<std::shared_ptr<Watchdog>> Create(Route reset_by, Route output, int64_t after_ns,
                                                  Clock& clock = Clock::System(), std::string name = "");
  ~Watchdog();
  uint64_t fired() const;
  void Close();

 private:
  Watchdog() = default;
  struct State;
  std::shared_ptr<State> s_;
  Subscription sub_;
};

}  // namespace weft::graph
