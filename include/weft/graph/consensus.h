// Raft-style leader election made of the graph's own parts, each visible in its topology:
// per member, a watchdog on the `heard` route is the election timeout (a leader's heartbeat, or
// a vote given, resets it); a second watchdog on a route nobody publishes is the heartbeat
// ticker, whose ticks pass a resistor gated by the member's `is_leader` route, so only a
// leader beats; granted votes are stored in a capacitor whose depth is the tally, discharged
// when it reaches a quorum or a new election starts. Members talk on one `messages` route:
// place it (shm, NATS) to spread a cluster over processes and hosts. Guide: docs/graph.md,
// "Consensus".
//
//   auto c = graph::Consensus::Install(*g, {.member = 2, .members = 3}).value();
//   graph::ShmPlacement::Create(c->messages());
//   c->state();   // {term, leader, role}
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "weft/graph/flow.h"
#include "weft/graph/graph.h"

namespace weft::graph {

// One message between members, on the `messages` route ("pod raft.message.v1").
struct RaftMessage {
  uint64_t term = 0;
  uint32_t from = 0;
  uint32_t to = 0;       // 0: every member
  uint32_t kind = 0;     // 1 request vote, 2 vote, 3 heartbeat
  uint32_t granted = 0;  // a vote's answer
};

enum class RaftRole : uint32_t { kFollower = 0, kCandidate = 1, kLeader = 2 };

// What a member knows, published on its `leader` route at every change ("pod raft.state.v1").
struct RaftState {
  uint64_t term = 0;
  uint32_t leader = 0;  // 0: none known in this term
  RaftRole role = RaftRole::kFollower;
};

struct ConsensusOptions {
  std::string cluster = "raft";  // the routes' owner token
  uint32_t member = 1;           // this member, 1 to members
  uint32_t members = 3;
  int64_t heartbeat_ns = 50'000'000;
  // A member starts an election after this much silence, plus a share of it set by its id (so
  // members rarely time out together): timeout * (1 + (member - 1) / members).
  int64_t election_timeout_ns = 300'000'000;
  Clock* clock = nullptr;  // null: Clock::System()
};

class Consensus {
 public:
  // Declares the member's routes in `graph` (shared: <cluster>/consensus/messages; its own:
  // <cluster>/consensus/<leader|heard|timeout|tick|quiet|is_leader|beat|votes|counted>/m<id>)
  // and wires them. kInvalidArgument for a member outside 1..members.
  static Result<std::shared_ptr<Consensus>> Install(Graph& graph, ConsensusOptions options);
  ~Consensus();
  Route messages() const;
  Route leader() const;
  RaftState state() const;
  // Stops taking part (its watchdogs, resistor, capacitor and observers go).
  void Close();

  struct State;

 private:
  Consensus() = default;
  std::shared_ptr<State> s_;
};

}  // namespace weft::graph
