// Consensus (weft/graph/consensus.h): three members in one graph on a ManualClock elect the
// member that times out first, stay with it while it beats (the control: no election churns),
// and elect another once it is closed, never two leaders in one term. Across processes:
// consensus_crash_test.cc.
#include "weft/graph/consensus.h"

#include <gtest/gtest.h>

#include <map>
#include <mutex>
#include <set>

#include "weft/graph/inspect.h"

namespace weft::graph {
namespace {

constexpr int64_t kMs = 1'000'000;

TEST(ConsensusTest, ThreeMembersOnAManualClockElectKeepAndReplaceALeader) {
  ManualClock clock;
  auto g = Graph::Create();
  std::shared_ptr<Consensus> m[3];
  std::mutex mu;
  std::map<uint64_t, std::set<uint32_t>> leaders_by_term;
  std::vector<Subscription> subs;
  for (uint32_t i = 0; i < 3; ++i) {
    m[i] = Consensus::Install(*g, {.member = i + 1, .members = 3, .heartbeat_ns = 20 * kMs,
                                   .election_timeout_ns = 300 * kMs, .clock = &clock}).value();
    subs.push_back(m[i]->leader().Observe([&](const SampleRef& v) {
      const RaftState s = v->as<RaftState>();
      std::lock_guard<std::mutex> l(mu);
      if (s.role == RaftRole::kLeader) leaders_by_term[s.term].insert(s.leader);
    }));
  }
  auto advance = [&](int64_t ms) {
    for (int64_t t = 0; t < ms; t += 5) clock.Advance(5 * kMs);
  };
  advance(290);
  EXPECT_EQ(m[0]->state().term, 0u);  // nobody has timed out yet
  advance(20);
  for (auto& x : m) {
    EXPECT_EQ(x->state().term, 1u);
    EXPECT_EQ(x->state().leader, 1u);
  }
  EXPECT_EQ(m[0]->state().role, RaftRole::kLeader);
  EXPECT_EQ(m[1]->state().role, RaftRole::kFollower);
  advance(3000);  // heartbeats hold the others back
  for (auto& x : m) EXPECT_EQ(x->state().term, 1u);
  // The parts are in the topology: the tally, the gate and both watchdogs of each member.
  const std::string dot = g->Describe().ToDot();
  for (const char* part : {"vote tally m2", "leader gate m2", "election timeout m3", "heartbeat ticker m1"}) {
    EXPECT_NE(dot.find(part), std::string::npos) << part;
  }
  m[0]->Close();
  advance(500);  // member 2 times out first now (400 ms), member 3 at 500 ms
  EXPECT_EQ(m[1]->state().role, RaftRole::kLeader);
  EXPECT_EQ(m[1]->state().term, 2u);
  EXPECT_EQ(m[2]->state().leader, 2u);
  EXPECT_EQ(m[2]->state().term, 2u);
  advance(3000);
  EXPECT_EQ(m[2]->state().term, 2u);
  std::lock_guard<std::mutex> l(mu);
  for (const auto& [term, who] : leaders_by_term) EXPECT_EQ(who.size(), 1u) << "term " << term;
  EXPECT_EQ(leaders_by_term.size(), 2u);
}

TEST(ConsensusTest, BadMembersAreRefused) {
  auto g = Graph::Create();
  EXPECT_EQ(Consensus::Install(*g, {.member = 0}).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(Consensus::Install(*g, {.member = 4, .members = 3}).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(Consensus::Install(*g, {.member = 1, .heartbeat_ns = 10, .election_timeout_ns = 5}).status().code(),
            Code::kInvalidArgument);
  // A single member leads itself.
  ManualClock clock;
  auto one = Consensus::Install(*g, {.cluster = "solo", .member = 1, .members = 1, .heartbeat_ns = 10 * kMs,
                                     .election_timeout_ns = 100 * kMs, .clock = &clock}).value();
  clock.Advance(150 * kMs);
  EXPECT_EQ(one->state().role, RaftRole::kLeader);
}

}  // namespace
}  // namespace weft::graph
