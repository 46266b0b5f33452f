// tcp://: calls, streams, large values, cancellation and deadlines over a socket; TLS 1.3 with
// host keys pinned by id or trusted through a CA, and every way a peer is refused before any
// call (unknown key, wrong CA, plaintext); the caller's identity seen by the resource; the
// authorize hook; hostile peers (garbage, absurd sizes, slow handshakes, floods); reconnection.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <thread>

#include "rpc/internal/wire.h"
#include "rpc/store_resource.h"
#include "support/host_keys.h"
#include "support/temp_dir.h"
#include "weft/net/keys.h"
#include "weft/rpc/rpc.h"

namespace weft::rpc {
namespace {

using testing::StoreContract;
using testing::StoreResource;
using testing::StoreState;

Contract WhoContract() {
  return ContractBuilder("test.who", "Who", "1.0.0").Method("who", Access::kRead, {}, "str").Build().value();
}

Resource WhoResource(std::atomic<int>* calls) {
  Resource r;
  r.contract = WhoContract();
  r.handlers["who"] = [calls](const CallArgs& a) -> Result<std::string> {
    calls->fetch_add(1);
    const Caller& c = a.context->caller();
    return c.transport + " " + c.identity + " " + c.address;
  };
  return r;
}

std::string ServerId() { return "tcp-" + std::to_string(::getpid()) + "-" + std::to_string(rand() % 100000); }

// Two host keys (a server's and a client's) and one nobody trusts, in files of mode 0600.
struct Keys {
  weft::testing::TempDir dir{"weft-tcp"};
  std::string server, client, stranger;  // key files
  std::string server_id, client_id, stranger_id;
  Keys() {
    weft::testing::MakeHostKey(dir, "server.key", &server, &server_id);
    weft::testing::MakeHostKey(dir, "client.key", &client, &client_id);
    weft::testing::MakeHostKey(dir, "stranger.key", &stranger, &stranger_id);
  }
};

struct Fixture {
  StoreState st;
  std::atomic<int> who_calls{0};
  std::unique_ptr<Server> server;
  std::string address;  // tcp://127.0.0.1:<port>

  explicit Fixture(ServerOptions o) {
    o.listen.push_back("tcp://127.0.0.1:0");
    server = Server::Create(ServerId(), o).value();
    EXPECT_TRUE(server->Register("store", StoreResource(*server, &st)).ok());
    EXPECT_TRUE(server->Register("who", WhoResource(&who_calls)).ok());
    EXPECT_TRUE(server->Start().ok());
    address = server->addresses().at(1);
  }
  ~Fixture() {
    st.shared.reset();
    server->Shutdown(Deadline::AfterMs(10'000)).IgnoreError();
  }
};

ServerOptions Plain() {
  ServerOptions o;
  o.tcp.plaintext = true;
  return o;
}

ConnectOptions PlainClient() {
  ConnectOptions o;
  o.tcp.plaintext = true;
  return o;
}

ServerOptions TlsServer(const Keys& k) {
  ServerOptions o;
  o.tcp.key_file = k.server;
  o.tcp.trusted_keys = {k.client_id};
  return o;
}

ConnectOptions TlsClient(const std::string& key, const std::string& trust) {
  ConnectOptions o;
  o.tcp.key_file = key;
  o.tcp.trusted_keys = {trust};
  return o;
}

std::string Pattern(size_t n, int seed) {
  std::string s(n, '\0');
  uint64_t x = 0x9E3779B97F4A7C15ull * static_cast<uint64_t>(seed + 1);
  for (size_t i = 0; i < n; i += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    std::memcpy(s.data() + i, &x, std::min<size_t>(8, n - i));
  }
  return s;
}

int64_t I64(const Result<std::string>& r) { return internal::DecodeI64(AsBytes(r.value())).value(); }

TEST(TcpTest, CallsStreamsLargeValuesCancelAndDeadlines) {
  Fixture fx(Plain());
  auto c = Client::Connect(StoreContract(), "store", fx.address, Deadline::AfterMs(10'000), PlainClient());
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  Client& cl = **c;
  EXPECT_FALSE(cl.shares_pool());
  // Small and large values both ways, byte-exact (3 MB follows its frame in data frames).
  for (size_t n : {size_t{0}, size_t{1}, size_t{65536}, size_t{65537}, size_t{3} << 20}) {
    const std::string v = Pattern(n, static_cast<int>(n));
    auto r = cl.Call("echo", {AsBytes(v)}, Deadline::AfterMs(60'000));
    ASSERT_TRUE(r.ok()) << n << ": " << r.status().ToString();
    EXPECT_TRUE(*r == v) << n;
  }
  const std::string ones(1 << 20, '\x01');
  EXPECT_EQ(I64(cl.Call("sum", {AsBytes(ones)}, Deadline::AfterMs(60'000))), 1 << 20);
  // A held result arrives by value (there is no shared memory across hosts).
  CallOptions hold;
  hold.deadline = Deadline::AfterMs(60'000);
  hold.hold = true;
  auto got = cl.Invoke("get", {}, hold);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_FALSE(got->in_shared_memory());
  EXPECT_TRUE(std::equal(got->bytes().begin(), got->bytes().end(), fx.st.shared->bytes().begin()));
  // Streams under credit: small chunks and chunks that follow their frames.
  CallOptions o;
  o.deadline = Deadline::AfterMs(60'000);
  auto s = cl.OpenStream("count", {AsBytes(internal::EncodeI64(100))}, o).value();
  for (int64_t i = 0; i < 100; ++i) {
    auto chunk = s->Next(Deadline::AfterMs(60'000));
    ASSERT_TRUE(chunk.ok() && chunk->has_value());
    EXPECT_EQ(internal::DecodeI64((*chunk)->bytes()).value(), i);
  }
  EXPECT_FALSE(s->Next(Deadline::AfterMs(60'000)).value().has_value());
  s.reset();
  auto big = cl.OpenStream("big_chunks", {AsBytes(internal::EncodeI64(30))}, o).value();
  for (int64_t i = 0; i < 30; ++i) {
    auto chunk = big->Next(Deadline::AfterMs(60'000));
    ASSERT_TRUE(chunk.ok() && chunk->has_value());
    EXPECT_TRUE(std::string(reinterpret_cast<const char*>((*chunk)->bytes().data()), (*chunk)->bytes().size()) ==
                testing::ChunkPattern(i));
  }
  EXPECT_FALSE(big->Next(Deadline::AfterMs(60'000)).value().has_value());
  big.reset();
  // A deadline ends a call that takes too long; the connection serves the next one.
  auto slow = cl.Call("wait_cancel", {AsBytes(internal::EncodeI64(2000))}, Deadline::AfterMs(100));
  EXPECT_EQ(slow.status().code(), Code::kTimeout);
  // Cancellation reaches the handler on the other side.
  CancelToken token;
  CallOptions co;
  co.deadline = Deadline::AfterMs(60'000);
  co.cancel = &token;
  std::thread canceller([&] {
    while (fx.st.running.load() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    token.Cancel();
  });
  auto cancelled = cl.Invoke("wait_cancel", {AsBytes(internal::EncodeI64(60'000))}, co);
  canceller.join();
  EXPECT_EQ(cancelled.status().code(), Code::kCancelled);
  EXPECT_EQ(I64(cl.Call("sum", {AsBytes(std::string(3, '\x02'))}, Deadline::AfterMs(60'000))), 6);
  const int64_t until = MonotonicNs() + 10'000'000'000;
  while (fx.st.saw_cancel.load() == 0 && MonotonicNs() < until) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_GE(fx.st.saw_cancel.load(), 1);
  // Plaintext: nobody is proven.
  auto who = Client::Connect(WhoContract(), "who", fx.address, Deadline::AfterMs(10'000), PlainClient()).value();
  auto me = who->Call("who", {}, Deadline::AfterMs(10'000)).value();
  EXPECT_EQ(me.rfind("tcp  127.0.0.1:", 0), 0u) << me;
}

TEST(TcpTest, TlsPinnedKeysMutualAndTheCallerIdentityIsSeen) {
  Keys k;
  Fixture fx(TlsServer(k));
  auto c = Client::Connect(WhoContract(), "who", fx.address, Deadline::AfterMs(10'000), TlsClient(k.client, k.server_id));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  auto me = (*c)->Call("who", {}, Deadline::AfterMs(10'000));
  ASSERT_TRUE(me.ok()) << me.status().ToString();
  EXPECT_EQ(me->rfind("tcp " + k.client_id + " 127.0.0.1:", 0), 0u) << *me;
  // Large values through TLS, byte-exact.
  auto store = Client::Connect(StoreContract(), "store", fx.address, Deadline::AfterMs(10'000),
                               TlsClient(k.client, k.server_id)).value();
  const std::string v = Pattern(size_t{5} << 20, 3);
  auto r = store->Call("echo", {AsBytes(v)}, Deadline::AfterMs(60'000));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(*r == v);
}

TEST(TcpTest, PeersWithoutATrustedIdentityAreRefusedBeforeAnyCall) {
  Keys k;
  Fixture fx(TlsServer(k));
  // A key the server does not trust.
  auto unknown = Client::Connect(WhoContract(), "who", fx.address, Deadline::AfterMs(10'000),
                                 TlsClient(k.stranger, k.server_id));
  EXPECT_EQ(unknown.status().code(), Code::kUnauthenticated) << unknown.status().ToString();
  // A server whose key is not the one pinned (as a man in the middle would be).
  auto wrong = Client::Connect(WhoContract(), "who", fx.address, Deadline::AfterMs(10'000),
                               TlsClient(k.client, k.stranger_id));
  EXPECT_EQ(wrong.status().code(), Code::kUnauthenticated) << wrong.status().ToString();
  // Plaintext to a TLS server.
  auto plain = Client::Connect(WhoContract(), "who", fx.address, Deadline::AfterMs(10'000), PlainClient());
  EXPECT_FALSE(plain.ok());
  // TLS without a key of one's own, or trusting nobody: refused here, before dialing.
  ConnectOptions nokey;
  nokey.tcp.trusted_keys = {k.server_id};
  EXPECT_EQ(Client::Connect(WhoContract(), "who", fx.address, Deadline::AfterMs(10'000), nokey).status().code(),
            Code::kInvalidArgument);
  ConnectOptions notrust;
  notrust.tcp.key_file = k.client;
  EXPECT_EQ(Client::Connect(WhoContract(), "who", fx.address, Deadline::AfterMs(10'000), notrust).status().code(),
            Code::kInvalidArgument);
  EXPECT_EQ(fx.who_calls.load(), 0);  // none of them reached the resource
  // Control: the trusted client gets in.
  auto good = Client::Connect(WhoContract(), "who", fx.address, Deadline::AfterMs(10'000), TlsClient(k.client, k.server_id));
  ASSERT_TRUE(good.ok()) << good.status().ToString();
  EXPECT_TRUE((*good)->Call("who", {}, Deadline::AfterMs(10'000)).ok());
  EXPECT_EQ(fx.who_calls.load(), 1);
  // And a TLS client cannot talk to a plaintext server either.
  Fixture plain_fx(Plain());
  EXPECT_FALSE(Client::Connect(WhoContract(), "who", plain_fx.address, Deadline::AfterMs(10'000),
                               TlsClient(k.client, k.server_id)).ok());
  EXPECT_EQ(plain_fx.who_calls.load(), 0);
}

// Runs a shell command; true if it exited 0.
bool Sh(const std::string& cmd) { return std::system((cmd + " > /dev/null 2>&1").c_str()) == 0; }

// A CA made with the openssl tool, and certificates it signs for host keys.
struct Ca {
  std::string dir, key, cert;
  Ca(const std::string& d, const std::string& name) : dir(d), key(d + "/" + name + ".key"), cert(d + "/" + name + ".pem") {
    EXPECT_TRUE(Sh("openssl genpkey -algorithm ed25519 -out " + key));
    EXPECT_TRUE(Sh("openssl req -x509 -new -key " + key + " -subj /CN=" + name + " -days 2 -out " + cert));
  }
  // A certificate for the key in `key_file`, signed by this CA.
  std::string Sign(const std::string& key_file, const std::string& cn) {
    const std::string csr = dir + "/" + cn + ".csr", out = dir + "/" + cn + ".crt";
    EXPECT_TRUE(Sh("openssl req -new -key " + key_file + " -subj /CN=" + cn + " -out " + csr));
    EXPECT_TRUE(Sh("openssl x509 -req -in " + csr + " -CA " + cert + " -CAkey " + key + " -CAcreateserial -days 2 -out " + out));
    return out;
  }
};

TEST(TcpTest, PeersTrustedThroughACaAndAnotherCaRefused) {
  Keys k;
  Ca ca(k.dir.path, "weft-test-ca"), other(k.dir.path, "other-ca");
  ServerOptions so;
  so.tcp.key_file = k.server;
  so.tcp.cert_file = ca.Sign(k.server, "server");
  so.tcp.ca_file = ca.cert;
  Fixture fx(so);
  ConnectOptions co;
  co.tcp.key_file = k.client;
  co.tcp.cert_file = ca.Sign(k.client, "client");
  co.tcp.ca_file = ca.cert;
  auto c = Client::Connect(WhoContract(), "who", fx.address, Deadline::AfterMs(10'000), co);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  auto me = (*c)->Call("who", {}, Deadline::AfterMs(10'000));
  ASSERT_TRUE(me.ok());
  EXPECT_EQ(me->rfind("tcp " + k.client_id, 0), 0u) << *me;
  // A client whose certificate another CA signed.
  ConnectOptions stranger;
  stranger.tcp.key_file = k.stranger;
  stranger.tcp.cert_file = other.Sign(k.stranger, "stranger");
  stranger.tcp.ca_file = ca.cert;
  EXPECT_EQ(Client::Connect(WhoContract(), "who", fx.address, Deadline::AfterMs(10'000), stranger).status().code(),
            Code::kUnauthenticated);
  // A client that trusts only the other CA does not accept the server.
  ConnectOptions wrong_ca = co;
  wrong_ca.tcp.ca_file = other.cert;
  EXPECT_EQ(Client::Connect(WhoContract(), "who", fx.address, Deadline::AfterMs(10'000), wrong_ca).status().code(),
            Code::kUnauthenticated);
  EXPECT_EQ(fx.who_calls.load(), 1);
}

TEST(TcpTest, TheAuthorizeHookMayRefuseACall) {
  Keys k;
  ServerOptions so = TlsServer(k);
  so.authorize = [&](const Caller& c, const std::string& resource, const std::string& method) -> Status {
    if (resource == "store" && method == "echo" && c.identity == k.client_id) {
      return Status(Code::kPermissionDenied, "echo is not for " + c.identity);
    }
    return Status::Ok();
  };
  Fixture fx(so);
  auto c = Client::Connect(StoreContract(), "store", fx.address, Deadline::AfterMs(10'000),
                           TlsClient(k.client, k.server_id)).value();
  auto r = c->Call("echo", {AsBytes(std::string("x"))}, Deadline::AfterMs(10'000));
  EXPECT_EQ(r.status().code(), Code::kPermissionDenied);
  EXPECT_NE(r.status().message().find("echo is not for ed25519:"), std::string::npos);
  EXPECT_EQ(I64(c->Call("sum", {AsBytes(std::string(2, '\x03'))}, Deadline::AfterMs(10'000))), 6);  // control
}

// ---- hostile peers ---------------------------------------------------------------------------

// A raw socket to the server's port from `source` (another loopback address stands for another host).
int RawConnect(const std::string& address, const char* source = "127.0.0.1") {
  const int port = std::atoi(address.substr(address.rfind(':') + 1).c_str());
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in from{};
  from.sin_family = AF_INET;
  ::inet_pton(AF_INET, source, &from.sin_addr);
  ::bind(fd, reinterpret_cast<sockaddr*>(&from), sizeof(from));
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<uint16_t>(port));
  ::inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof(to)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// True if the server closes `fd` within `ms` (what it sent before that is skipped).
bool ClosedWithin(int fd, int ms) {
  const int64_t until = MonotonicNs() + int64_t{ms} * 1'000'000;
  char buf[4096];
  while (MonotonicNs() < until) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) return true;
  }
  return false;
}

std::string HelloBytes(const std::string& resource, const Contract& c) {
  // What a client sends first: "WRPC", u32 length, the hello.
  const std::string text = "hello 3\nwire 2 2\n" + resource + "\n-\n" + c.Canonical();
  std::string out("WRPC", 4);
  const uint32_t len = static_cast<uint32_t>(text.size());
  out.append(reinterpret_cast<const char*>(&len), 4);
  return out + text;
}

std::string Header(internal::FrameType type, uint64_t call, uint32_t payload, uint32_t method = 0) {
  std::string h(sizeof(internal::FrameHeader), '\0');
  internal::EncodeHeader(type, 0, 1, method, call, 0, payload, reinterpret_cast<uint8_t*>(h.data()));
  return h;
}

void SendAll(int fd, const std::string& s) { ASSERT_EQ(::send(fd, s.data(), s.size(), MSG_NOSIGNAL), static_cast<ssize_t>(s.size())); }

TEST(TcpHostileTest, GarbageAbsurdSizesAndSlowHandshakesLoseOnlyTheirConnection) {
  ServerOptions so = Plain();
  so.handshake_timeout_ms = 300;
  so.max_value_bytes = 64 << 20;
  Fixture fx(so);
  auto good = Client::Connect(StoreContract(), "store", fx.address, Deadline::AfterMs(10'000), PlainClient()).value();
  auto works = [&] { return I64(good->Call("sum", {AsBytes(std::string(4, '\x01'))}, Deadline::AfterMs(10'000))) == 4; };
  // Not a weft peer at all.
  int fd = RawConnect(fx.address);
  SendAll(fd, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_TRUE(ClosedWithin(fd, 5000));
  ::close(fd);
  // A handshake that claims 4 GB of hello.
  fd = RawConnect(fx.address);
  SendAll(fd, std::string("WRPC\xff\xff\xff\xff", 8));
  EXPECT_TRUE(ClosedWithin(fd, 5000));
  ::close(fd);
  // Slow loris: a connection that never says hello is closed after the handshake timeout.
  fd = RawConnect(fx.address);
  EXPECT_TRUE(ClosedWithin(fd, 5000));
  ::close(fd);
  // After a good handshake: a frame header of 4 GB payload, a following value above the
  // server's limit, a data frame that belongs to no value, garbage.
  const std::string store = HelloBytes("store", StoreContract());
  const uint32_t echo = static_cast<uint32_t>(StoreContract().Find("echo"));
  auto with_hello = [&](const std::string& then) {
    const int s = RawConnect(fx.address);
    SendAll(s, store);
    SendAll(s, then);
    const bool closed = ClosedWithin(s, 5000);
    ::close(s);
    return closed;
  };
  EXPECT_TRUE(with_hello(Header(internal::FrameType::kCall, 1, 0xFFFFFFF0u, echo)));
  {
    internal::Value v;
    v.follows = true;
    v.bytes = ByteView(reinterpret_cast<const uint8_t*>(""), size_t{1} << 40);  // 1 TB claimed
    std::string frame = Header(internal::FrameType::kCall, 1, static_cast<uint32_t>(internal::ValuesSize({v})), echo);
    std::string values(internal::ValuesSize({v}), '\0');
    internal::EncodeValues({v}, reinterpret_cast<uint8_t*>(values.data()));
    EXPECT_TRUE(with_hello(frame + values));
  }
  EXPECT_TRUE(with_hello(Header(internal::FrameType::kData, 1, 16)));
  {
    // A following value of 0 bytes (no data frame follows): an empty argument, answered.
    internal::Value v;
    v.follows = true;
    std::string frame = Header(internal::FrameType::kCall, 1, static_cast<uint32_t>(internal::ValuesSize({v})), echo);
    std::string values(internal::ValuesSize({v}), '\0');
    internal::EncodeValues({v}, reinterpret_cast<uint8_t*>(values.data()));
    const int s = RawConnect(fx.address);
    SendAll(s, store);
    SendAll(s, frame + values);
    EXPECT_FALSE(ClosedWithin(s, 300));
    ::close(s);
  }
  EXPECT_TRUE(with_hello(std::string(100, 'z')));
  // Negative control: a well-formed call on a raw connection is answered, not closed.
  {
    const int s = RawConnect(fx.address);
    SendAll(s, store);
    EXPECT_FALSE(ClosedWithin(s, 300));
    ::close(s);
  }
  EXPECT_TRUE(works());
}

TEST(TcpHostileTest, AFloodOfHalfOpenConnectionsFromOneHostLeavesOthersServed) {
  ServerOptions so = Plain();
  so.handshake_timeout_ms = 2000;
  Fixture fx(so);
  // 2000 connections from "another host" (127.0.0.2) that never send a byte.
  std::vector<int> flood;
  for (int i = 0; i < 2000; ++i) {
    const int fd = RawConnect(fx.address, "127.0.0.2");
    if (fd >= 0) flood.push_back(fd);
  }
  EXPECT_GT(flood.size(), 1000u);
  // A client from elsewhere connects and calls meanwhile.
  auto c = Client::Connect(StoreContract(), "store", fx.address, Deadline::AfterMs(10'000), PlainClient());
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(I64((*c)->Call("sum", {AsBytes(std::string(5, '\x01'))}, Deadline::AfterMs(10'000))), 5);
  // Past its few handshake slots, the flood's connections were closed at once (no thread, no
  // buffer each); the rest are closed at the handshake timeout.
  size_t closed = 0;
  for (int fd : flood) closed += ClosedWithin(fd, 10) ? 1 : 0;
  EXPECT_GT(closed, flood.size() - 16);
  for (int fd : flood) ::close(fd);
}

TEST(TcpTest, AClientReconnectsAfterItsServerRestarts) {
  const std::string id = ServerId();
  StoreState st;
  ServerOptions so = Plain();
  so.listen.push_back("tcp://127.0.0.1:0");
  auto first = Server::Create(id, so).value();
  ASSERT_TRUE(first->Register("store", StoreResource(*first, &st)).ok());
  ASSERT_TRUE(first->Start().ok());
  const std::string address = first->addresses().at(1);
  auto c = Client::Connect(StoreContract(), "store", address, Deadline::AfterMs(10'000), PlainClient()).value();
  EXPECT_EQ(I64(c->Call("sum", {AsBytes(std::string(1, '\x07'))}, Deadline::AfterMs(10'000))), 7);
  st.shared.reset();
  first->Shutdown(Deadline::AfterMs(10'000)).IgnoreError();
  first.reset();
  // The server is gone: the call says so (not a hang, not a crash).
  auto gone = c->Call("sum", {AsBytes(std::string(1, '\x07'))}, Deadline::AfterMs(10'000));
  EXPECT_FALSE(gone.ok());
  EXPECT_TRUE(gone.status().code() == Code::kUnavailable || gone.status().code() == Code::kClosed)
      << gone.status().ToString();
  // A new server at the same address: the same client calls it.
  ServerOptions again = Plain();
  again.listen.push_back(address);
  StoreState st2;
  auto second = Server::Create(id, again).value();
  ASSERT_TRUE(second->Register("store", StoreResource(*second, &st2)).ok());
  ASSERT_TRUE(second->Start().ok());
  auto back = c->Call("sum", {AsBytes(std::string(1, '\x09'))}, Deadline::AfterMs(10'000));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(I64(back), 9);
  st2.shared.reset();
}

}  // namespace
}  // namespace weft::rpc
