// Resources across hosts made of network namespaces: a server on host b, a client on host a,
// joined by a veth pair. The link is cut in the middle of the client's calls: the call fails
// with Timeout or Unavailable (never hangs past its deadline), and once the link is back the
// same client calls again. Needs root (CI runs as root).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "rpc/store_resource.h"
#include "shm/test_util.h"
#include "support/netns.h"
#include "weft/rpc/rpc.h"

namespace weft::rpc {
namespace {

struct Ctl {
  std::atomic<int> port{0};
  std::atomic<int> stage{0};
  std::atomic<int> stop{0};
};

bool WaitStage(std::atomic<int>& v, int want, int seconds = 60) {
  const int64_t until = MonotonicNs() + int64_t{seconds} * 1'000'000'000;
  while (v.load() < want) {
    if (MonotonicNs() > until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

TEST(NetnsTest, ALinkCutMidCallFailsWithinTheDeadlineAndTheClientRecovers) {
  ASSERT_EQ(::geteuid(), 0u) << "network namespaces need root";
  weft::testing::NetnsPair hosts;
  ASSERT_TRUE(hosts.ok());
  auto* ctl = new (::mmap(nullptr, sizeof(Ctl), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0)) Ctl;
  const std::string id = "netns-" + std::to_string(::getpid());
  const pid_t server = weft::testing::Spawn([&] {
    if (!weft::testing::NetnsPair::Enter(hosts.b())) return 1;
    ServerOptions o;
    o.listen = {"tcp://" + hosts.addr_b() + ":0"};
    o.tcp.plaintext = true;
    auto s = Server::Create(id, o);
    if (!s.ok()) return 2;
    testing::StoreState st;
    if (!(*s)->Register("store", testing::StoreResource(**s, &st)).ok() || !(*s)->Start().ok()) return 3;
    const std::string a = (*s)->addresses().at(1);
    ctl->port.store(std::stoi(a.substr(a.rfind(':') + 1)));
    while (ctl->stop.load() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    st.shared.reset();
    return 0;
  });
  // However the test ends, no child outlives it (a server left running would hold the test's
  // output open).
  pid_t client = -1;
  struct Reaper {
    Ctl* ctl;
    pid_t* pids[2];
    ~Reaper() {
      ctl->stop.store(1);
      for (pid_t* p : pids) {
        if (*p <= 0) continue;
        ::kill(*p, SIGKILL);
        ::waitpid(*p, nullptr, 0);
      }
      ::munmap(ctl, sizeof(Ctl));
    }
  };
  pid_t server_pid = server;
  Reaper reaper{ctl, {&server_pid, &client}};
  ASSERT_TRUE(weft::testing::WaitFor([&] { return ctl->port.load() != 0; }, server, 60));
  client = weft::testing::Spawn([&] {
    if (!weft::testing::NetnsPair::Enter(hosts.a())) return 1;
    ConnectOptions co;
    co.tcp.plaintext = true;
    const std::string address = "tcp://" + hosts.addr_b() + ":" + std::to_string(ctl->port.load());
    auto c = Client::Connect(testing::StoreContract(), "store", address, Deadline::AfterMs(10'000), co);
    if (!c.ok()) return 2;
    const std::string two(2, '\x01');
    if (!(*c)->Call("sum", {AsBytes(two)}, Deadline::AfterMs(10'000)).ok()) return 3;  // control: the link works
    ctl->stage.store(1);  // cut it
    if (!WaitStage(ctl->stage, 2)) return 4;
    auto cut = (*c)->Call("sum", {AsBytes(two)}, Deadline::AfterMs(1500));
    if (cut.ok()) return 5;
    if (cut.status().code() != Code::kTimeout && cut.status().code() != Code::kUnavailable) return 6;
    ctl->stage.store(3);  // mend it
    if (!WaitStage(ctl->stage, 4)) return 7;
    auto back = (*c)->Call("sum", {AsBytes(two)}, Deadline::AfterMs(30'000));
    if (!back.ok() || internal::DecodeI64(AsBytes(*back)).value() != 2) return 8;
    return 0;
  });
  ASSERT_TRUE(weft::testing::WaitFor([&] { return ctl->stage.load() >= 1; }, client, 60));
  ASSERT_TRUE(hosts.Cut());
  ctl->stage.store(2);
  EXPECT_TRUE(weft::testing::WaitFor([&] { return ctl->stage.load() >= 3; }, client, 60));
  EXPECT_TRUE(hosts.Mend());
  ctl->stage.store(4);
  EXPECT_EQ(weft::testing::Join(client), 0);
  client = -1;
  ctl->stop.store(1);
  EXPECT_EQ(weft::testing::Join(server), 0);
  server_pid = -1;
}

}  // namespace
}  // namespace weft::rpc
