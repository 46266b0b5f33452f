// Where a route lives beyond its process: on this host over a Weft topic (shared memory, no
// daemon), or across hosts over NATS subjects. Each process's graph that places the route the
// same way sees the values of all of them: its own are sent out, the others' arrive on a
// thread of the placement and are published on the local route with their envelopes (id,
// trace, causality, correlation, producer, event time). Records of another schema, or not
// records at all, are refused and counted. Guide: docs/graph.md, "Placement".
//
//   auto shm = graph::ShmPlacement::Create(temp).value();   // topic "g.<route>.<hash>"
//   auto net = graph::NatsPlacement::Create(temp, "nats://10.0.0.1:4222").value();
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "weft/graph/graph.h"

namespace weft::graph {

struct ShmPlacementOptions {
  std::string topic;              // empty: derived from the route's name (the same in every process)
  uint32_t queue_depth = 1024;    // values waiting per publisher for each subscriber (a power of two)
  uint64_t pool_bytes = 64 << 20; // the topic's pool, when this process creates it
  int64_t send_timeout_ms = 1000; // a subscriber that stays full this long fails the send (counted)
  // Values this large or larger (bytes) are read in place in the topic's block, without a copy:
  // their samples hold the block until the last of them goes (the latest, retention and
  // observers keeping one keep it from the pool). 0: every value.
  size_t in_place_from = 64 << 10;
};

struct PlacementStats {
  uint64_t sent = 0, received = 0;
  uint64_t send_errors = 0;  // values not sent (no room in the pool, a subscriber stuck, too large)
  uint64_t refused = 0;      // records that arrived refused (malformed, another schema)
  uint64_t lost = 0;         // records lost on the way (NATS: dropped by a slow subscription)
  uint64_t in_place = 0;     // of those received, values read in place (shm, large values)
};

// What every placement does.
class Placement {
 public:
  virtual ~Placement() = default;
  // Stops sending and receiving (joins the receiving thread).
  virtual void Close() = 0;
  virtual PlacementStats stats() const = 0;
  // Where the values travel: the topic's name, or the NATS subject.
  virtual const std::string& where() const = 0;
};

class ShmPlacement final : public Placement {
 public:
  // Opens (or creates) the route's topic, subscribes, and starts receiving. The topic's own
  // errors (names, sizes, permissions).
  static Result<std::shared_ptr<ShmPlacement>> Create(Route route, ShmPlacementOptions options = {});
  ~ShmPlacement() override;
  void Close() override;
  PlacementStats stats() const override;
  const std::string& where() const override { return topic(); }
  const std::string& topic() const;
  // The topic a route's name gives: "g." and up to 60 characters of the name, then its hash.
  static std::string TopicFor(const RouteName& name);

 private:
  ShmPlacement() = default;
  struct State;
  std::shared_ptr<State> s_;
};

struct NatsPlacementOptions {
  // Empty: "weft.graph.[<namespace>.]<owner>.<family>.<stream>.<variant>.<plane>.<layer>",
  // the namespace being the url's path (so NATS permissions can grant a route, an owner's
  // routes or a namespace by subject).
  std::string subject;
  // Each value is written to the socket as it is published (nats.c's send-asap); false lets
  // nats.c gather writes (more values per second, later arrival).
  bool low_latency = true;
};

// A route across hosts: values travel as graph records (docs/formats/graph-record.md) on a
// NATS subject, through the servers of `url` ("nats://[credentials@]host:port[,...][/namespace]
// [?creds=&nkey=&seed=&tls=&ca=&cert=&key=]", weft/net/nats.h), one connection per placement.
// Delivery is NATS core's: at most once, to the placements connected at the time, in the order
// each publisher sent (a route's durability is its own retention, in each process). While the
// connection is down values are buffered (up to nats.c's reconnect buffer) and it reconnects.
class NatsPlacement final : public Placement {
 public:
  // Connects and subscribes: the connection's errors (kUnavailable when no server answers,
  // kUnauthenticated when credentials are refused), kInvalidArgument for a bad url or subject.
  static Result<std::shared_ptr<NatsPlacement>> Create(Route route, std::string_view url, NatsPlacementOptions options = {});
  ~NatsPlacement() override;
  void Close() override;
  PlacementStats stats() const override;
  const std::string& where() const override;
  // The subject a route's name gives in a namespace (may be empty).
  static std::string SubjectFor(const RouteName& name, std::string_view name_space = "");

 private:
  NatsPlacement() = default;
  struct State;
  std::shared_ptr<State> s_;
};

}  // namespace weft::graph
