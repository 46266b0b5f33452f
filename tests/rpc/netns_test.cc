// Resources across hosts made of network namespaces. A server on host b, a client on host a,
// joined by a veth pair: the link is cut in the middle of the client's calls, and the call fails
// with Timeout or Unavailable (never hangs past its deadline); once the link is back the same
// client calls again. Discovery on six hosts of one switch: a 3-node NATS cluster (a node per
// host), two servers of one name announcing through two of its nodes, a client resolving through
// the third; the server the client is on is SIGKILLed and its next calls reach the other. Needs
// root (CI runs as root).
#include <gtest/gtest.h>
#include <signal.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "rpc/store_resource.h"
#include "shm/test_util.h"
#include "support/netns.h"
#include "support/servers.h"
#include "support/temp_dir.h"
#include "weft/net/keys.h"
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

Contract WhoContract() {
  return ContractBuilder("test.netns", "Who", "1.0.0").Method("who", Access::kRead, {}, "str").Build().value();
}

struct Mesh {
  std::atomic<int> ready{0};     // servers announced
  std::atomic<int> first{0};     // the server the client reached first: 'A' or 'B'
  std::atomic<int> killed{0};    // the test killed it
  std::atomic<int> after{0};     // the server the client reached after
  std::atomic<int> failures{0};  // calls that failed in between
};

TEST(NetnsTest, ResolvedThroughANatsClusterAcrossHostsAndAKilledServersClientMovesToItsReplica) {
  ASSERT_EQ(::geteuid(), 0u) << "network namespaces need root";
  if (::access("/usr/sbin/nats-server", X_OK) != 0) GTEST_FAIL() << "nats-server is not installed";
  // Hosts 0-2: NATS nodes; 3, 4: servers A and B; 5: the client.
  weft::testing::NetnsLan lan(6);
  ASSERT_TRUE(lan.ok());
  weft::testing::TempDir dir("weft-netns");
  std::vector<pid_t> pids;
  weft::testing::ServerProcess nats_nodes[3];  // stopped at the end
  struct Reaper {
    std::vector<pid_t>& pids;
    ~Reaper() {
      for (pid_t p : pids) {
        ::kill(p, SIGKILL);
        ::waitpid(p, nullptr, 0);
      }
    }
  } reaper{pids};
  for (int i = 0; i < 3; ++i) {
    std::string routes;
    for (int j = 0; j < 3; ++j) {
      if (j != i) routes += (routes.empty() ? "" : ",") + std::string("nats://") + lan.addr(j) + ":6222";
    }
    const std::string ns = lan.ns(i);
    nats_nodes[i].Spawn({"/usr/sbin/nats-server", "-js", "-a", lan.addr(i), "-p", "4222", "-sd",
                         dir / ("js" + std::to_string(i)), "--name", "n" + std::to_string(i), "--cluster_name", "weft",
                         "--cluster", "nats://" + lan.addr(i) + ":6222", "--routes", routes},
                        dir / ("nats" + std::to_string(i) + ".log"), [ns] { return weft::testing::NetnsPair::Enter(ns); });
  }
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(weft::testing::NetnsPair::WaitAccepts(lan.ns(i), lan.addr(i), 4222)) << "nats node " << i;
  }
  auto server_key = net::KeyPair::Generate().value();
  auto client_key = net::KeyPair::Generate().value();
  ASSERT_TRUE(server_key.Save(dir / "server.key").ok());
  ASSERT_TRUE(client_key.Save(dir / "client.key").ok());
  auto* mesh = new (::mmap(nullptr, sizeof(Mesh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0)) Mesh;
  auto serve = [&](int host, int via, char tag) {
    return weft::testing::Spawn([&, host, via, tag] {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (!weft::testing::NetnsPair::Enter(lan.ns(host))) return 1;
      ServerOptions o;
      o.listen = {"tcp://0.0.0.0:7000"};  // announced as the host's address
      o.tcp.key_file = dir / "server.key";
      o.tcp.trusted_keys = {client_key.id()};
      o.registry = "nats://" + lan.addr(via) + ":4222";
      o.registry_ttl_ms = 3000;
      std::unique_ptr<Server> s;
      for (int t = 0; t < 150 && s == nullptr; ++t) {  // until the cluster has a JetStream leader
        auto made = Server::Create("netns-" + std::string(1, tag) + std::to_string(::getpid()), o);
        if (made.ok()) {
          s = std::move(made).value();
        } else {
          std::this_thread::sleep_for(std::chrono::milliseconds(200));
        }
      }
      if (s == nullptr) return 2;
      Resource r;
      r.contract = WhoContract();
      r.handlers["who"] = [tag](const CallArgs&) -> Result<std::string> { return std::string(1, tag); };
      if (!s->Register("who", std::move(r)).ok() || !s->Start().ok()) return 3;
      mesh->ready.fetch_add(1);
      for (;;) ::pause();
    });
  };
  const pid_t a = serve(3, 0, 'A');
  pids.push_back(a);
  const pid_t b = serve(4, 1, 'B');
  pids.push_back(b);
  ASSERT_TRUE(weft::testing::WaitFor([&] { return mesh->ready.load() == 2; }, a, 60));
  const pid_t client = weft::testing::Spawn([&] {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (!weft::testing::NetnsPair::Enter(lan.ns(5))) return 1;
    ConnectOptions co;
    co.tcp.key_file = dir / "client.key";
    co.tcp.trusted_keys = {server_key.id()};
    auto c = Client::Connect(WhoContract(), "who", "nats://" + lan.addr(2) + ":4222", Deadline::AfterMs(20'000), co);
    if (!c.ok()) return 2;
    auto who = (*c)->Call("who", {}, Deadline::AfterMs(10'000));
    if (!who.ok()) return 3;
    mesh->first.store((*who)[0]);
    if (!WaitStage(mesh->killed, 1)) return 4;
    for (int i = 0; i < 3; ++i) {
      auto again = (*c)->Call("who", {}, Deadline::AfterMs(5'000));
      if (again.ok()) {
        mesh->after.store((*again)[0]);
        return 0;
      }
      mesh->failures.fetch_add(1);
    }
    return 5;
  });
  pids.push_back(client);
  ASSERT_TRUE(weft::testing::WaitFor([&] { return mesh->first.load() != 0; }, client, 60));
  const int first = mesh->first.load();
  ASSERT_TRUE(first == 'A' || first == 'B');
  const pid_t doomed = first == 'A' ? a : b;
  ::kill(doomed, SIGKILL);
  ::waitpid(doomed, nullptr, 0);
  mesh->killed.store(1);
  EXPECT_EQ(weft::testing::Join(client), 0);
  pids.pop_back();
  EXPECT_EQ(mesh->after.load(), first == 'A' ? 'B' : 'A');
  EXPECT_LE(mesh->failures.load(), 1);  // at most the call that found the connection dead
  ::munmap(mesh, sizeof(Mesh));
}

}  // namespace
}  // namespace weft::rpc
