// A route across hosts made of network namespaces, through a real nats-server: the server and
// an observing process on host a, two publishing processes on host b. The first publishes for
// ever and is SIGKILLed mid-stream (the control: its values stop arriving); the observer keeps
// receiving every value of the second, in order, with its envelope. Needs root (CI runs as
// root). Every process is forked before any of them uses NATS (a fork of a process whose
// nats.c has started its threads would not be sound).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "shm/test_util.h"
#include "support/netns.h"
#include "support/servers.h"
#include "support/temp_dir.h"
#include "weft/core/clock.h"
#include "weft/graph/placement.h"

namespace weft::graph {
namespace {

constexpr int64_t kSecond = 1'000'000;  // the second publisher's values start here
constexpr int64_t kHalf = 500;

struct Ctl {
  std::atomic<int> ready{0};       // the observer is subscribed
  std::atomic<int> second_go{0};   // 1: its first half; 2: its second half
  std::atomic<int64_t> from_first{0}, from_second{0};
  std::atomic<int> out_of_order{0}, bad_envelope{0};
  std::atomic<int> stop{0};
};

RouteName Name() { return RouteName{.owner = "press", .family = "line", .stream = "strokes"}; }

bool WaitUntil(const std::function<bool()>& done, int seconds = 60) {
  const int64_t until = MonotonicNs() + int64_t{seconds} * 1'000'000'000;
  while (!done()) {
    if (MonotonicNs() > until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

TEST(NatsHostsTest, ARouteCrossesHostsAndAKilledPublisherLeavesTheOtherFlowing) {
  ASSERT_EQ(::geteuid(), 0u) << "network namespaces need root";
  if (::access("/usr/sbin/nats-server", X_OK) != 0) GTEST_FAIL() << "nats-server is not installed";
  weft::testing::NetnsPair hosts;
  ASSERT_TRUE(hosts.ok());
  weft::testing::TempDir dir("weft-graph-hosts");
  weft::testing::ServerProcess server;  // stopped at the end
  const std::string a = hosts.a();
  server.Spawn({"/usr/sbin/nats-server", "-a", hosts.addr_a(), "-p", "4222"}, dir / "nats.log",
               [a] { return weft::testing::NetnsPair::Enter(a); });
  ASSERT_TRUE(weft::testing::NetnsPair::WaitAccepts(hosts.a(), hosts.addr_a(), 4222));
  const std::string url = "nats://" + hosts.addr_a() + ":4222/plant";

  auto* ctl = new (::mmap(nullptr, sizeof(Ctl), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0)) Ctl;
  pid_t observer = -1, first = -1, second = -1;
  struct Reaper {
    Ctl* ctl;
    pid_t* pids[3];
    ~Reaper() {
      ctl->stop.store(1);
      for (pid_t* p : pids) {
        if (*p <= 0) continue;
        ::kill(*p, SIGKILL);
        ::waitpid(*p, nullptr, 0);
      }
      ::munmap(ctl, sizeof(Ctl));
    }
  } reaper{ctl, {&observer, &first, &second}};

  observer = weft::testing::Spawn([&] {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (!weft::testing::NetnsPair::Enter(hosts.a())) return 1;
    auto g = Graph::Create();
    Route r = g->Declare(Name(), Schema::Pod<int64_t>("strokes.v1")).value();
    auto place = NatsPlacement::Create(r, url);
    if (!place.ok()) return 2;
    Subscription s = r.Observe([&](const SampleRef& v) {
      const int64_t x = v->as<int64_t>();
      if (x < kSecond) {
        ++ctl->from_first;
        return;
      }
      const int64_t n = ctl->from_second.load();
      if (x != kSecond + n) ++ctl->out_of_order;
      const Envelope& e = v->envelope();
      if (e.producer != 2 || e.correlation != static_cast<uint64_t>(x) || e.event_ns != x) ++ctl->bad_envelope;
      ctl->from_second.store(n + 1);
    });
    ctl->ready.store(1);
    while (ctl->stop.load() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    (*place)->Close();
    return 0;
  });
  ASSERT_TRUE(weft::testing::WaitFor([&] { return ctl->ready.load() == 1; }, observer, 60));

  first = weft::testing::Spawn([&] {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (!weft::testing::NetnsPair::Enter(hosts.b())) return 1;
    auto g = Graph::Create();
    Route r = g->Declare(Name(), Schema::Pod<int64_t>("strokes.v1")).value();
    auto place = NatsPlacement::Create(r, url);
    if (!place.ok()) return 2;
    for (int64_t i = 0;; ++i) {
      r.Publish(i % kSecond, Meta{.producer = 1}).IgnoreError();
      ::usleep(200);
    }
  });
  ASSERT_TRUE(weft::testing::WaitFor([&] { return ctl->from_first.load() >= 100; }, first, 60))
      << "values from host b never reached host a";

  second = weft::testing::Spawn([&] {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (!weft::testing::NetnsPair::Enter(hosts.b())) return 1;
    auto g = Graph::Create();
    Route r = g->Declare(Name(), Schema::Pod<int64_t>("strokes.v1")).value();
    auto place = NatsPlacement::Create(r, url);
    if (!place.ok()) return 2;
    auto half = [&](int64_t from) {
      for (int64_t x = from; x < from + kHalf; ++x) {
        if (!r.Publish(x, Meta{.producer = 2, .event_ns = x, .correlation = static_cast<uint64_t>(x)}).ok()) return false;
      }
      return true;
    };
    while (ctl->second_go.load() < 1) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    if (!half(kSecond)) return 3;
    while (ctl->second_go.load() < 2) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    if (!half(kSecond + kHalf)) return 4;
    (*place)->Close();  // flushes what was published
    return (*place)->stats().send_errors == 0 ? 0 : 5;
  });
  ctl->second_go.store(1);
  ASSERT_TRUE(weft::testing::WaitFor([&] { return ctl->from_second.load() >= kHalf; }, second, 60));

  ASSERT_EQ(::kill(first, SIGKILL), 0);
  int st = 0;
  ASSERT_EQ(::waitpid(first, &st, 0), first);
  first = -1;
  ASSERT_TRUE(WIFSIGNALED(st));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // what it had sent has arrived
  const int64_t first_at_kill = ctl->from_first.load();

  ctl->second_go.store(2);
  EXPECT_TRUE(WaitUntil([&] { return ctl->from_second.load() >= 2 * kHalf; })) << ctl->from_second.load();
  EXPECT_EQ(weft::testing::Join(second), 0);
  second = -1;
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(ctl->from_second.load(), 2 * kHalf);  // every value once
  EXPECT_EQ(ctl->out_of_order.load(), 0);
  EXPECT_EQ(ctl->bad_envelope.load(), 0);
  EXPECT_EQ(ctl->from_first.load(), first_at_kill);  // the control: the killed one is silent
  ctl->stop.store(1);
  EXPECT_EQ(weft::testing::Join(observer), 0);
  observer = -1;
}

}  // namespace
}  // namespace weft::graph
