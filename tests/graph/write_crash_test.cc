// A write shadow across two processes (weft/graph/write.h): the reconciler here, the actuator in
// a child process, desired and reported placed on shm. The actuator is SIGKILLed: a new request
// is retried without end and the binding turns incoherent (the control: with no actuator it
// never syncs). A new actuator process starts, reports its boot state, and the reconciler's
// retry brings it to the desired value.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "weft/graph/placement.h"
#include "weft/graph/write.h"
#include "weft/shm/topic.h"

namespace weft::graph {
namespace {

constexpr int64_t kMs = 1'000'000;
const RouteName kBase{.owner = "valve", .family = "plant", .stream = "opening"};

struct Shared {
  std::atomic<int32_t> applied{-1};  // what the actuator last set
  std::atomic<int> ready{0};
};

RouteName Named(const char* variant, const char* plane, const char* layer) {
  RouteName n = kBase;
  n.variant = variant;
  n.plane = plane;
  n.layer = layer;
  return n;
}

// The actuator: applies each desired value and reports it; at boot reports 0 (its rest state).
pid_t Actuator(const std::string& prefix, Shared* sh) {
  const pid_t pid = ::fork();
  if (pid != 0) return pid;
  auto g = Graph::Create();
  const Schema s = Schema::Pod<int32_t>("opening.v1");
  auto desired = g->Declare(Named("desired", "write", "shadow"), s);
  auto reported = g->Declare(Named("reported", "read", "shadow"), s);
  if (!desired.ok() || !reported.ok()) _exit(2);
  auto pd = ShmPlacement::Create(*desired, {.topic = prefix + ".desired"});
  auto pr = ShmPlacement::Create(*reported, {.topic = prefix + ".reported"});
  if (!pd.ok() || !pr.ok()) _exit(3);
  Subscription sub = desired->Observe([&](const SampleRef& v) {
    sh->applied.store(v->as<int32_t>());
    reported->Publish(v->as<int32_t>()).IgnoreError();
  });
  sh->applied.store(0);
  ++sh->ready;
  reported->Publish(int32_t{0}).IgnoreError();  // its boot report
  for (;;) ::pause();
}

bool WaitFor(const std::function<bool()>& cond) {
  for (int i = 0; i < 1500; ++i) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return cond();
}

TEST(WriteCrashTest, AnActuatorKilledAndRestartedIsReconciled) {
  const std::string prefix = "gtest.shadow." + std::to_string(::getpid());
  auto* sh = new (::mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0)) Shared{};
  auto g = Graph::Create();
  auto w = WriteBinding::Create(*g, kBase, Schema::Pod<int32_t>("opening.v1"),
                                {.retry = {.max_attempts = 0, .ack_timeout_ns = 100 * kMs, .backoff_ns = 20 * kMs,
                                           .max_backoff_ns = 200 * kMs},
                                 .coherence_deadline_ns = 400 * kMs})
               .value();
  auto pd = ShmPlacement::Create(w->desired(), {.topic = prefix + ".desired"}).value();
  auto pr = ShmPlacement::Create(w->reported(), {.topic = prefix + ".reported"}).value();
  pid_t pid = Actuator(prefix, sh);
  struct Reaper {
    pid_t* pid;
    ~Reaper() {
      if (*pid > 0) {
        ::kill(*pid, SIGKILL);
        ::waitpid(*pid, nullptr, 0);
      }
    }
  } reaper{&pid};
  ASSERT_TRUE(WaitFor([&] { return sh->ready.load() == 1; }));

  ASSERT_TRUE(w->request().Publish(int32_t{25}).ok());
  ASSERT_TRUE(WaitFor([&] { return w->snapshot().phase == WritePhase::kSynced; })) << w->snapshot().ToJson();
  EXPECT_EQ(sh->applied.load(), 25);
  EXPECT_EQ(w->effective().Latest()->as<int32_t>(), 25);

  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  ::waitpid(pid, nullptr, 0);
  pid = -1;
  ASSERT_TRUE(w->request().Publish(int32_t{60}).ok());
  // The control: no actuator, no sync; the reconciler keeps trying and turns incoherent.
  ASSERT_TRUE(WaitFor([&] {
    const auto s = w->snapshot();
    return !s.coherent && s.retries >= 3;
  })) << w->snapshot().ToJson();
  EXPECT_NE(w->snapshot().phase, WritePhase::kSynced);
  EXPECT_EQ(sh->applied.load(), 25);

  sh->ready.store(0);
  pid = Actuator(prefix, sh);
  ASSERT_TRUE(WaitFor([&] { return sh->ready.load() == 1; }));
  ASSERT_TRUE(WaitFor([&] {
    const auto s = w->snapshot();
    return s.phase == WritePhase::kSynced && s.coherent;
  })) << w->snapshot().ToJson();
  EXPECT_EQ(sh->applied.load(), 60);
  auto eff = w->effective().Latest();
  EXPECT_EQ(eff->as<int32_t>(), 60);
  EXPECT_EQ(eff->envelope().taints, 0);
  EXPECT_GE(w->snapshot().incoherent, 1u);
  w->Close();
  ::munmap(sh, sizeof(Shared));
  shm::UnlinkTopic(prefix + ".desired").IgnoreError();
  shm::UnlinkTopic(prefix + ".reported").IgnoreError();
}

}  // namespace
}  // namespace weft::graph
