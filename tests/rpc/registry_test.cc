// Discovery through NATS (docs/remote.md): routes announced in a JetStream key-value bucket
// of a real nats-server, resolved by name and contract hash (a name alone refused); a direct
// address preferred, a tunnel through NATS when none answers (a server behind NAT), TLS inside
// it; routes withdrawn at shutdown and expiring after a crash; replicas, and a stale route
// skipped; a 3-node cluster (announced through one node, resolved through another); forged
// routes not believed. The route text's parser.
#include <gtest/gtest.h>
#include <nats/nats.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <thread>

#include "rpc/internal/registry.h"
#include "rpc/internal/wire.h"
#include "support/servers.h"
#include "support/host_keys.h"
#include "support/temp_dir.h"
#include "weft/net/keys.h"
#include "weft/rpc/rpc.h"

namespace weft::rpc {
namespace {

using internal::Route;
using weft::testing::NatsServer;

Contract EchoContract(const std::string& version = "1.0.0") {
  return ContractBuilder("test.reg", "Echo", version)
      .Method("echo", Access::kRead, {"bytes"}, "bytes")
      .Method("who", Access::kRead, {}, "str")
      .Build()
      .value();
}

Resource EchoResource(const std::string& tag) {
  Resource r;
  r.contract = EchoContract();
  r.handlers["echo"] = [](const CallArgs& a) -> Result<std::string> { return std::string(reinterpret_cast<const char*>(a.args[0].data()), a.args[0].size()); };
  r.handlers["who"] = [tag](const CallArgs& a) -> Result<std::string> {
    const Caller& c = a.context->caller();
    return tag + " " + c.transport + " " + c.identity;
  };
  return r;
}

std::string ServerId(const std::string& tag) { return "reg-" + tag + "-" + std::to_string(::getpid()); }

struct Keys {
  weft::testing::TempDir dir{"weft-reg"};
  std::string server, client, server_id, client_id;
  Keys() {
    weft::testing::MakeHostKey(dir, "server.key", &server, &server_id);
    weft::testing::MakeHostKey(dir, "client.key", &client, &client_id);
  }
  ServerOptions Server(const std::string& registry) const {
    ServerOptions o;
    o.tcp.key_file = server;
    o.tcp.trusted_keys = {client_id};
    o.registry = registry;
    return o;
  }
  ConnectOptions Client() const {
    ConnectOptions o;
    o.tcp.key_file = client;
    o.tcp.trusted_keys = {server_id};
    return o;
  }
};

std::string Registry(const NatsServer& n) { return "nats://127.0.0.1:" + std::to_string(n.port()); }

std::unique_ptr<Server> Serve(const std::string& tag, ServerOptions o) {
  auto s = Server::Create(ServerId(tag), o);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  if (!s.ok()) return nullptr;
  EXPECT_TRUE((*s)->Register("echo", EchoResource(tag)).ok());
  Status started = (*s)->Start();
  EXPECT_TRUE(started.ok()) << started.ToString();
  return std::move(s).value();
}

// Run as the doomed server of the replica test when the test program is started with
// WEFT_REGISTRY_TEST_SERVER="<registry>\n<key file>\n<trusted key id>\n<ready fd>": serves
// "echo" tagged "doomed", writes 'y' to the ready descriptor, and waits to be killed.
[[maybe_unused]] const bool kServerChild = [] {
  const char* spec = std::getenv("WEFT_REGISTRY_TEST_SERVER");
  if (spec == nullptr) return false;
  std::vector<std::string> f;
  std::string cur;
  for (const char* p = spec; *p != '\0'; ++p) {
    if (*p == '\n') {
      f.push_back(cur);
      cur.clear();
    } else {
      cur.push_back(*p);
    }
  }
  f.push_back(cur);
  if (f.size() != 4) ::_exit(2);
  ServerOptions o;
  o.tcp.key_file = f[1];
  o.tcp.trusted_keys = {f[2]};
  o.registry = f[0];
  o.listen = {"tcp://127.0.0.1:0"};
  o.registry_ttl_ms = 2000;
  auto s = Server::Create("reg-doomed-" + std::to_string(::getpid()), o);
  const bool ok = s.ok() && (*s)->Register("echo", EchoResource("doomed")).ok() && (*s)->Start().ok();
  const char b = ok ? 'y' : 'n';
  (void)!::write(std::stoi(f[3]), &b, 1);
  for (;;) ::pause();
}();

// Each test: a nats-server of its own, host keys, and server options announcing there.
class RegistryTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(nats.up()); }
  std::string registry() const { return Registry(nats); }
  ServerOptions Options(const std::string& listen = "tcp://127.0.0.1:0") const {
    ServerOptions o = k.Server(registry());
    if (!listen.empty()) o.listen = {listen};
    return o;
  }
  Result<std::unique_ptr<Client>> Connect(const std::string& name, const ConnectOptions& o,
                                          const Contract& contract = EchoContract()) const {
    return Client::Connect(contract, name, registry(), Deadline::AfterMs(10'000), o);
  }
  NatsServer nats;
  Keys k;
};

std::string Who(Client& c) {
  auto r = c.Call("who", {}, Deadline::AfterMs(10'000));
  return r.ok() ? *r : "error: " + r.status().ToString();
}

TEST(RouteTest, EncodeParseAndEveryMalformedRouteRefused) {
  Route r{"my store/1", std::string(32, 'a'), std::string(16, 'b'), "ed25519:" + std::string(64, 'c'),
          {"tcp://10.0.0.1:7000", "tcp://[fe80::1]:7000"}, "weft.relay.bbbbbbbbbbbbbbbb"};
  const std::string text = internal::EncodeRoute(r);
  auto back = internal::ParseRoute(text);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->name, r.name);
  EXPECT_EQ(back->addresses, r.addresses);
  EXPECT_EQ(back->relay, r.relay);
  EXPECT_EQ(back->identity, r.identity);
  EXPECT_EQ(internal::RouteKey(r), "my=20store=2f1." + std::string(32, 'a') + "." + std::string(16, 'b'));
  auto replace = [&](const std::string& from, const std::string& to) {
    std::string t = text;
    t.replace(t.find(from), from.size(), to);
    return internal::ParseRoute(t).status().code();
  };
  EXPECT_EQ(replace("weft-route 1", "weft-route 2"), Code::kCorrupt);
  EXPECT_EQ(replace("name my=20", "name my "), Code::kCorrupt);
  EXPECT_EQ(replace("name my=20", "name my=2"), Code::kCorrupt);
  EXPECT_EQ(replace("name my=20store", "name =6dy"), Code::kCorrupt);  // 'm' spelled as =6d: one spelling per name
  EXPECT_EQ(replace("contract aaaa", "contract Aaaa"), Code::kCorrupt);
  EXPECT_EQ(replace("instance bbbb", "instance bbb"), Code::kCorrupt);
  EXPECT_EQ(replace("tcp://10.0.0.1:7000", "http://10.0.0.1:7000"), Code::kCorrupt);
  EXPECT_EQ(replace("tcp://10.0.0.1:7000", "tcp://10.0.0.1:99999"), Code::kCorrupt);
  EXPECT_EQ(replace("relay weft", "relay >.weft"), Code::kCorrupt);
  EXPECT_EQ(replace("identity ed25519", "identity \x01"), Code::kCorrupt);
  EXPECT_EQ(internal::ParseRoute(text + "extra 1\n").status().code(), Code::kCorrupt);
  EXPECT_EQ(internal::ParseRoute(text.substr(0, text.size() - 1)).status().code(), Code::kCorrupt);
  std::string many = text.substr(0, text.find("relay "));
  for (int i = 0; i < 40; ++i) many += "address tcp://10.0.0.1:7000\n";
  EXPECT_EQ(internal::ParseRoute(many + "relay -\n").status().code(), Code::kCorrupt);
  Route plain{"x", std::string(32, '0'), std::string(16, '1'), "", {}, ""};
  auto p = internal::ParseRoute(internal::EncodeRoute(plain));
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p->identity.empty() && p->relay.empty() && p->addresses.empty());
}

TEST_F(RegistryTest, ResolvedByNameAndContractDirectFirstAndWithdrawnAtShutdown) {
  ServerOptions so = Options("tcp://0.0.0.0:0");  // announced as this host's interface addresses
  auto srv = Serve("a", so);
  ASSERT_NE(srv, nullptr);
  auto c = Connect("echo", k.Client());
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(Who(**c), "a tcp " + k.client_id);  // direct, over TLS, the caller's identity seen
  const std::string v(3 << 20, 'v');
  auto e = (*c)->Call("echo", {AsBytes(v)}, Deadline::AfterMs(30'000));
  ASSERT_TRUE(e.ok());
  EXPECT_TRUE(*e == v);

  // A name alone is not enough: another contract's client is refused, told the hashes.
  auto other = Connect("echo", k.Client(), EchoContract("2.0.0"));
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.status().code(), Code::kContractMismatch);
  EXPECT_NE(other.status().message().find(EchoContract().Hash()), std::string::npos) << other.status().ToString();
  auto none = Connect("nobody", k.Client());
  EXPECT_EQ(none.status().code(), Code::kNotFound);

  // Shutdown withdraws the route: a new client finds nothing at once (no waiting for expiry).
  c->reset();
  srv.reset();
  auto after = Connect("echo", k.Client());
  EXPECT_EQ(after.status().code(), Code::kNotFound) << after.status().ToString();
}

// A server nobody can dial (it announces an address where nothing listens, as behind NAT):
// the client falls back to a tunnel through NATS, TLS and all; large values cross it whole.
TEST_F(RegistryTest, NoDirectPathFallsBackToATunnelThroughNats) {
  ServerOptions so = Options("");
  so.advertise = {"tcp://127.0.0.1:" + std::to_string(weft::testing::FreePort())};
  auto srv = Serve("nat", so);
  ASSERT_NE(srv, nullptr);
  auto c = Connect("echo", k.Client());
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(Who(**c), "nat nats " + k.client_id);
  std::string v(9 << 20, '\0');
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<char>(i * 131 + (i >> 12));
  auto e = (*c)->Call("echo", {AsBytes(v)}, Deadline::AfterMs(60'000));
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  EXPECT_TRUE(*e == v);
  // A client that trusts another server key is refused inside the tunnel (TLS), before any call.
  ConnectOptions wrong = k.Client();
  wrong.tcp.trusted_keys = {k.client_id};
  auto refused = Connect("echo", wrong);
  EXPECT_EQ(refused.status().code(), Code::kUnauthenticated) << refused.status().ToString();
  // Without the relay, the same server cannot be reached at all: the control.
  c->reset();
  srv.reset();
  so.relay = false;
  srv = Serve("nat", so);
  ASSERT_NE(srv, nullptr);
  auto unreachable = Client::Connect(EchoContract(), "echo", registry(), Deadline::AfterMs(5'000), k.Client());
  EXPECT_EQ(unreachable.status().code(), Code::kUnavailable) << unreachable.status().ToString();
}

// Replicas: two servers of one name. One is SIGKILLed (a process of its own): its route stays
// until it expires, and a client that was on it resolves again at its next call, to the other.
// After the ttl the dead one's route is gone.
TEST_F(RegistryTest, AClientOfAKilledServerReresolvesToAReplicaAndTheDeadRouteExpires) {
  ServerOptions so = Options();
  so.registry_ttl_ms = 2000;
  // The doomed server: this test program again, a fresh process (see kServerChild).
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const std::string spec = registry() + "\n" + k.server + "\n" + k.client_id + "\n" + std::to_string(ready[1]);
  const pid_t child = ::fork();
  if (child == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlives the test
    ::setenv("WEFT_REGISTRY_TEST_SERVER", spec.c_str(), 1);
    ::execl("/proc/self/exe", "rpc_registry_test", nullptr);
    ::_exit(127);
  }
  ::close(ready[1]);
  char b = 0;
  ASSERT_EQ(::read(ready[0], &b, 1), 1);
  ASSERT_EQ(b, 'y');
  // Only the doomed server is up: the client lands on it.
  auto c = Connect("echo", k.Client());
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(Who(**c).substr(0, 6), "doomed");
  auto survivor = Serve("survivor", so);
  ASSERT_NE(survivor, nullptr);
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  // The call in flight (or the next) fails on the dead connection; the one after resolves
  // again, tries the failed server last, and lands on the survivor.
  std::string who = Who(**c);
  if (who.rfind("survivor", 0) != 0) who = Who(**c);
  EXPECT_EQ(who.substr(0, 8), "survivor") << who;
  // The dead route expires (no one refreshes it): only the survivor's is left.
  auto reg = internal::Registry::Open(registry(), false, 0).value();
  size_t routes = 2;
  for (int i = 0; i < 100 && routes > 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    routes = reg->Resolve("echo", EchoContract(), Deadline::AfterMs(5000)).value().size();
  }
  EXPECT_EQ(routes, 1u);
  // ...and stays alive while its server lives (refreshed every third of the ttl).
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  EXPECT_EQ(reg->Resolve("echo", EchoContract(), Deadline::AfterMs(5000)).value().size(), 1u);
}

// An entry written by someone else on NATS under the name's key prefix, pointing elsewhere:
// believed only if it is a well-formed route under its own key, and even then TLS decides.
TEST_F(RegistryTest, ForgedAndMalformedEntriesAreNotBelieved) {
  ServerOptions so = Options();
  auto srv = Serve("real", so);
  ASSERT_NE(srv, nullptr);
  auto reg = internal::Registry::Open(registry(), false, 0).value();
  const std::string hash = EchoContract().Hash();
  // Garbage under a fitting key, a route for another name under this name's key, and a
  // well-formed route to an impostor's address (a server with a key the client does not trust).
  auto put = [&](const std::string& key, const std::string& value) {
    kvStore* kv = nullptr;
    jsCtx* js = nullptr;
    ASSERT_EQ(natsConnection_JetStream(&js, reg->nats()->raw(), nullptr), NATS_OK);
    ASSERT_EQ(js_KeyValue(&kv, js, "weft_rpc"), NATS_OK);
    uint64_t rev;
    ASSERT_EQ(kvStore_PutString(&rev, kv, key.c_str(), value.c_str()), NATS_OK);
    kvStore_Destroy(kv);
    jsCtx_Destroy(js);
  };
  put("echo." + hash + ".0000000000000001", "garbage\n");
  Route elsewhere{"other", hash, "0000000000000002", "", {"tcp://127.0.0.1:1"}, ""};
  put("echo." + hash + ".0000000000000002", internal::EncodeRoute(elsewhere));
  ServerOptions io;
  net::KeyPair impostor_key = net::KeyPair::Generate().value();
  io.tcp.key_file = k.dir / "impostor.key";
  ASSERT_TRUE(impostor_key.Save(io.tcp.key_file).ok());
  io.tcp.trusted_keys = {k.client_id};
  io.listen = {"tcp://127.0.0.1:0"};
  auto impostor = Serve("impostor", io);
  ASSERT_NE(impostor, nullptr);
  Route fake{"echo", hash, "0000000000000003", k.server_id, {impostor->addresses().at(1)}, ""};
  put(internal::RouteKey(fake), internal::EncodeRoute(fake));
  auto routes = reg->Resolve("echo", EchoContract(), Deadline::AfterMs(5000));
  ASSERT_TRUE(routes.ok());
  EXPECT_EQ(routes->size(), 2u);  // the real one and the well-formed fake; not the garbage, not "other"
  // Every client lands on the real server: the impostor fails TLS (it cannot prove the key).
  for (int i = 0; i < 6; ++i) {
    auto c = Connect("echo", k.Client());
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    EXPECT_EQ(Who(**c).substr(0, 4), "real");
  }
}

// Hedged reads across replicas: the client is on a server that stalls; its read goes to another
// server of the name after hedge_after_ms, whose answer wins, and the stalled call is cancelled.
TEST_F(RegistryTest, AHedgedReadIsAnsweredByAnotherServerOfTheName) {
  ServerOptions so = Options();
  std::atomic<int> cancelled{0};
  Resource stalled = EchoResource("stalled");
  stalled.handlers["who"] = [&cancelled](const CallArgs& a) -> Result<std::string> {
    for (int i = 0; i < 4000; ++i) {
      if (a.context->Cancelled()) {
        cancelled.fetch_add(1);
        return Status(Code::kCancelled, "cancelled");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return std::string("stalled");
  };
  auto slow = Server::Create(ServerId("stalled"), so).value();
  ASSERT_TRUE(slow->Register("echo", std::move(stalled)).ok());
  ASSERT_TRUE(slow->Start().ok());
  ConnectOptions co = k.Client();
  co.hedge_after_ms = 50;
  auto c = Connect("echo", co);
  ASSERT_TRUE(c.ok()) << c.status().ToString();  // the only server: the client is on it
  auto quick = Serve("quick", so);
  ASSERT_NE(quick, nullptr);
  EXPECT_EQ(Who(**c).substr(0, 5), "quick");
  for (int i = 0; i < 300 && cancelled.load() == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(cancelled.load(), 1);
}

// A 3-node NATS cluster: the server announces through node 1, the client resolves through node
// 3, and its calls reach the server directly; a relay-only server is reached through the
// cluster's routes too.
TEST(RegistryClusterTest, AThreeNodeClusterAnnouncedThroughOneNodeResolvedThroughAnother) {
  NatsServer n1({}, false), n2({}, false), n3({}, false);
  const std::vector<int> routes = {n1.cluster_port(), n2.cluster_port(), n3.cluster_port()};
  n1.JoinCluster("n1", routes);
  n2.JoinCluster("n2", routes);
  n3.JoinCluster("n3", routes);
  ASSERT_TRUE(n1.Start() && n2.Start() && n3.Start());
  Keys k;
  ServerOptions so = k.Server(Registry(n1));
  so.listen = {"tcp://127.0.0.1:0"};
  // JetStream needs its cluster formed (a meta leader) before the bucket can be made.
  std::unique_ptr<Server> srv;
  for (int i = 0; i < 100 && srv == nullptr; ++i) {
    auto s = Server::Create(ServerId("c1"), so);
    if (s.ok()) {
      srv = std::move(s).value();
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }
  ASSERT_NE(srv, nullptr);
  ASSERT_TRUE(srv->Register("echo", EchoResource("clustered")).ok());
  ASSERT_TRUE(srv->Start().ok());
  ServerOptions relay_only = k.Server(Registry(n2));
  auto behind = Server::Create(ServerId("c2"), relay_only);
  ASSERT_TRUE(behind.ok()) << behind.status().ToString();
  Resource r = EchoResource("behind");
  ASSERT_TRUE((*behind)->Register("hidden", std::move(r)).ok());
  ASSERT_TRUE((*behind)->Start().ok());
  auto c = Client::Connect(EchoContract(), "echo", Registry(n3), Deadline::AfterMs(10'000), k.Client());
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(Who(**c), "clustered tcp " + k.client_id);
  auto h = Client::Connect(EchoContract(), "hidden", Registry(n3), Deadline::AfterMs(10'000), k.Client());
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  EXPECT_EQ(Who(**h), "behind nats " + k.client_id);
}

}  // namespace
}  // namespace weft::rpc
