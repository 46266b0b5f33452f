// Where a route lives beyond its process: on this host over a Weft topic (shared memory, no
// daemon). Each process's graph that places the route the same way sees the values of all of
// them: its own are sent to the topic, the others' arrive on a thread of the placement and are
// published on the local route with their envelopes (id, trace, causality, correlation,
// producer, event time). Guide: docs/graph.md, "Placement".
//
//   auto shm = graph::ShmPlacement::Create(temp).value();   // topic "g.<route>.<hash>"
#pragma once

#include <memory>
#include <string>

#include "weft/graph/graph.h"

namespace weft::graph {

struct ShmPlacementOptions {
  std::string topic;              // empty: derived from the route's name (the same in every process)
  uint32_t queue_depth = 1024;    // values waiting per publisher for each subscriber (a power of two)
  uint64_t pool_bytes = 64 << 20; // the topic's pool, when this process creates it
  int64_t send_timeout_ms = 1000; // a subscriber that stays full this long fails the send (counted)
};

struct PlacementStats {
  uint64_t sent = 0, received = 0;
  uint64_t send_errors = 0;  // values not sent (no room in the pool, a subscriber stuck)
  uint64_t refused = 0;      // records from the topic refused (malformed, another schema)
};

class ShmPlacement {
 public:
  // Opens (or creates) the route's topic, subscribes, and starts receiving. The topic's own
  // errors (names, sizes, permissions).
  static Result<std::shared_ptr<ShmPlacement>> Create(Route route, ShmPlacementOptions options = {});
  ~ShmPlacement();
  // Stops sending and receiving (joins the receiving thread).
  void Close();
  PlacementStats stats() const;
  const std::string& topic() const;
  // The topic a route's name gives: "g." and up to 60 characters of the name, then its hash.
  static std::string TopicFor(const RouteName& name);

 private:
  ShmPlacement() = default;
  struct State;
  std::shared_ptr<State> s_;
};

}  // namespace weft::graph
