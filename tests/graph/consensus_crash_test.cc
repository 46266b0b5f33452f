// Consensus (weft/graph/consensus.h) across processes: three members in three processes,
// talking over a route placed on shm, elect a leader and keep it while it lives (the control);
// after its process is SIGKILLed the two left elect another, in a higher term, and no term ever
// has two leaders.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "weft/graph/consensus.h"
#include "weft/graph/placement.h"
#include "weft/shm/topic.h"

namespace weft::graph {
namespace {

constexpr int64_t kMs = 1'000'000;

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
