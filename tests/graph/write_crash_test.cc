// A write shadow across two processes (weft/graph/write.h): the reconciler here, the actuator in
// a child process, desired and reported placed on shm. The actuator is SIGKILLed: a new request
// is retried without end and the binding turns incoherent (the control: with no actuator it
// never syncs). A new actuator process starts, reports its boot state, and the reconciler's
// retry brings it to the desired value.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "weft/graph/placement.h"
#include "weft/graph/write.h"
#include "weft/shm/topic.h"

namespace weft::graph {
namespace {

constexpr int64_t kMs = 1'000'000;
const RouteName kBase{.owner = "valve", .family = "plant", .stream = "opening"};

RouteName Named(const char* variant, const char* plane, const char* layer) {
  RouteName n = kBase;
  n.variant = variant;
  n.plane = plane;
  n.layer = layer;
  return n;
}

// What the actuator last set, as its process wrote it (-1: no file yet).
int ReadApplied(const std::string& file) {
  std::ifstream in(file);
  int v = -1;
  if (!(in >> v)) return -1;
  return v;
}

// The actuator, run in a process of its own by Actuator() (this binary exec'd with this test
// selected): applies each desired value, writes it to its file and reports it; at boot it
// reports 0 (its rest state) and writes 0.
TEST(WriteCrashTest, DISABLED_ActuatorProcess) {
  const char* prefix = std::getenv("WEFT_SHADOW_PREFIX");
  const char* file = std::getenv("WEFT_SHADOW_FILE");
  if (prefix == nullptr || file == nullptr) GTEST_SKIP() << "run by WriteCrashTest.AnActuatorKilledAndRestartedIsReconciled";
  auto g = Graph::Create();
  const Schema s = Schema::Pod<int32_t>("opening.v1");
  auto desired = g->Declare(Named("desired", "write", "shadow"), s).value();
  auto reported = g->Declare(Named("reported", "read", "shadow"), s).value();
  auto pd = ShmPlacement::Create(desired, {.topic = std::string(prefix) + ".desired"}).value();
  auto pr = ShmPlacement::Create(reported, {.topic = std::string(prefix) + ".reported"}).value();
  auto write = [&](int32_t v) {
    const std::string tmp = std::string(file) + ".tmp";
    { std::ofstream(tmp) << v; }
    ::rename(tmp.c_str(), file);  // whole, never half written
  };
  Subscription sub = desired.Observe([&](const SampleRef& v) {
    write(v->as<int32_t>());
    reported.Publish(v->as<int32_t>()).IgnoreError();
  });
  write(0);
  reported.Publish(int32_t{0}).IgnoreError();  // its boot report
  for (;;) ::pause();
}

// Starts the actuator: this binary, exec'd (a fork of this many-threaded process runs nothing
// but execve), with its environment made before the fork.
pid_t Actuator(const std::string& prefix, const std::string& file) {
  std::vector<std::string> env_text;
  for (char** e = environ; *e != nullptr; ++e) env_text.emplace_back(*e);
  env_text.push_back("WEFT_SHADOW_PREFIX=" + prefix);
  env_text.push_back("WEFT_SHADOW_FILE=" + file);
  std::vector<char*> envp;
  for (std::string& e : env_text) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::string self = "/proc/self/exe", also = "--gtest_also_run_disabled_tests",
              filter = "--gtest_filter=WriteCrashTest.DISABLED_ActuatorProcess";
  char* argv[] = {self.data(), also.data(), filter.data(), nullptr};
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::execve(argv[0], argv, envp.data());
    _exit(127);
  }
  return pid;
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
  const std::string file = "/tmp/" + prefix + ".valve";
  ::unlink(file.c_str());
  auto g = Graph::Create();
  auto w = WriteBinding::Create(*g, kBase, Schema::Pod<int32_t>("opening.v1"),
                                {.retry = {.max_attempts = 0, .ack_timeout_ns = 100 * kMs, .backoff_ns = 20 * kMs,
                                           .max_backoff_ns = 200 * kMs},
                                 .coherence_deadline_ns = 400 * kMs})
               .value();
  auto pd = ShmPlacement::Create(w->desired(), {.topic = prefix + ".desired"}).value();
  auto pr = ShmPlacement::Create(w->reported(), {.topic = prefix + ".reported"}).value();
  pid_t pid = Actuator(prefix, file);
  struct Reaper {
    pid_t* pid;
    ~Reaper() {
      if (*pid > 0) {
        ::kill(*pid, SIGKILL);
        ::waitpid(*pid, nullptr, 0);
      }
    }
  } reaper{&pid};
  ASSERT_TRUE(WaitFor([&] { return ReadApplied(file) == 0; })) << "the actuator did not start";

  ASSERT_TRUE(w->request().Publish(int32_t{25}).ok());
  ASSERT_TRUE(WaitFor([&] { return w->snapshot().phase == WritePhase::kSynced; })) << w->snapshot().ToJson();
  EXPECT_EQ(ReadApplied(file), 25);
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
  EXPECT_EQ(ReadApplied(file), 25);

  ::unlink(file.c_str());
  pid = Actuator(prefix, file);
  ASSERT_TRUE(WaitFor([&] {
    const auto s = w->snapshot();
    return s.phase == WritePhase::kSynced && s.coherent;
  })) << w->snapshot().ToJson();
  EXPECT_EQ(ReadApplied(file), 60);
  auto eff = w->effective().Latest();
  EXPECT_EQ(eff->as<int32_t>(), 60);
  EXPECT_EQ(eff->envelope().taints, 0);
  EXPECT_GE(w->snapshot().incoherent, 1u);
  w->Close();
  ::unlink(file.c_str());
  shm::UnlinkTopic(prefix + ".desired").IgnoreError();
  shm::UnlinkTopic(prefix + ".reported").IgnoreError();
}

}  // namespace
}  // namespace weft::graph
