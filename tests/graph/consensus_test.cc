// Consensus (weft/graph/consensus.h): three members in one graph on a ManualClock elect the
// member that times out first, stay with it while it beats (the control: no election churns),
// and elect another once it is closed, never two leaders in one term; then three members in
// three processes, talking over a route placed on shm, elect a leader, keep it, and after its
// process is SIGKILLed the two left elect another.
#include "weft/graph/consensus.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "weft/graph/inspect.h"
#include "weft/graph/placement.h"
#include "weft/shm/topic.h"

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

struct Shared {
  std::atomic<uint64_t> term[3];
  std::atomic<uint32_t> leader[3];
  std::atomic<uint32_t> role[3];
  std::atomic<uint32_t> claimed[256];  // per term: the member that led it
  std::atomic<int> two_leaders{0};
  std::atomic<int> ready{0};
};

// A member in its own process: talks over the shm topic, mirrors its state into `sh`.
pid_t Member(uint32_t id, const std::string& topic, Shared* sh) {
  const pid_t pid = ::fork();
  if (pid != 0) return pid;
  auto g = Graph::Create();
  auto c = Consensus::Install(*g, {.member = id, .members = 3, .heartbeat_ns = 20 * kMs, .election_timeout_ns = 200 * kMs});
  if (!c.ok()) _exit(2);
  auto place = ShmPlacement::Create((*c)->messages(), {.topic = topic});
  if (!place.ok()) _exit(3);
  const size_t k = id - 1;
  Subscription s = (*c)->leader().Observe([&](const SampleRef& v) {
    const RaftState st = v->as<RaftState>();
    sh->term[k].store(st.term);
    sh->leader[k].store(st.leader);
    sh->role[k].store(static_cast<uint32_t>(st.role));
    if (st.role == RaftRole::kLeader && st.term < 256) {
      uint32_t none = 0;
      if (!sh->claimed[st.term].compare_exchange_strong(none, id) && none != id) ++sh->two_leaders;
    }
  });
  ++sh->ready;
  for (;;) ::pause();
}

TEST(ConsensusTest, ThreeProcessesElectAndReplaceALeaderThatIsKilled) {
  const std::string topic = "gtest.raft." + std::to_string(::getpid());
  auto* sh = new (::mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0)) Shared{};
  pid_t pids[3];
  for (uint32_t i = 0; i < 3; ++i) pids[i] = Member(i + 1, topic, sh);
  struct Reaper {
    pid_t* pids;
    ~Reaper() {
      for (int i = 0; i < 3; ++i) {
        if (pids[i] <= 0) continue;
        ::kill(pids[i], SIGKILL);
        ::waitpid(pids[i], nullptr, 0);
      }
    }
  } reaper{pids};
  // Agreement among the members still alive: one leader, one term.
  auto agreed = [&](int skip, uint32_t* leader, uint64_t* term) {
    uint32_t l = 0;
    uint64_t t = 0;
    for (int i = 0; i < 3; ++i) {
      if (i == skip) continue;
      if (sh->leader[i].load() == 0) return false;
      if (l == 0) {
        l = sh->leader[i].load();
        t = sh->term[i].load();
      } else if (sh->leader[i].load() != l || sh->term[i].load() != t) {
        return false;
      }
    }
    if (l - 1 == static_cast<uint32_t>(skip)) return false;
    *leader = l;
    *term = t;
    return true;
  };
  auto wait_agreed = [&](int skip, uint32_t* leader, uint64_t* term) {
    for (int i = 0; i < 2000; ++i) {
      if (agreed(skip, leader, term)) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  };
  uint32_t first = 0;
  uint64_t first_term = 0;
  ASSERT_TRUE(wait_agreed(-1, &first, &first_term)) << "no leader agreed by all three";
  // The control: while the leader lives, it stays, in the same term.
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  uint32_t still = 0;
  uint64_t still_term = 0;
  ASSERT_TRUE(agreed(-1, &still, &still_term));
  EXPECT_EQ(still, first);
  EXPECT_EQ(still_term, first_term);

  const int dead = static_cast<int>(first) - 1;
  ASSERT_EQ(::kill(pids[dead], SIGKILL), 0);
  ::waitpid(pids[dead], nullptr, 0);
  pids[dead] = -1;
  uint32_t second = 0;
  uint64_t second_term = 0;
  ASSERT_TRUE(wait_agreed(dead, &second, &second_term)) << "the two left did not agree on a new leader";
  EXPECT_NE(second, first);
  EXPECT_GT(second_term, first_term);
  EXPECT_EQ(sh->two_leaders.load(), 0);
  ::munmap(sh, sizeof(Shared));
  shm::UnlinkTopic(topic).IgnoreError();
}

}  // namespace
}  // namespace weft::graph
