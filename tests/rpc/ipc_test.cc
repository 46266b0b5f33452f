// Resources served to other processes over ipc://: calls, contract checks at connect, errors,
// and the deaths of either side (real processes, SIGKILL, with negative controls).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <grp.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <cstring>
#include <thread>

#include "shm/test_util.h"
#include "store_resource.h"
#include "weft/shm/channel.h"
#include "weft/shm/pool.h"
#include "weft/rpc/rpc.h"
#include "rpc/internal/handshake.h"
#include "rpc/internal/wire.h"

namespace weft::rpc {
namespace {

using internal::DecodeI64;
using internal::EncodeI64;

Contract CounterContract(const char* version = "0.1.0") {
  return ContractBuilder("demo.counter", "Counter", version)
      .Write<int64_t(int64_t)>("increment")
      .Read<int64_t()>("value")
      .Write<int64_t(int64_t)>("slow")  // sleeps that many ms, then returns it
      .Read<std::vector<uint8_t>(std::vector<uint8_t>)>("echo")
      .Read<int64_t(std::vector<uint8_t>, int64_t)>("hold_then_size")  // sleeps ms, returns size
      .Build()
      .value();
}

std::atomic<int> g_holding{0};  // hold_then_size handlers running (in the server's process)

std::string ServerId() { return "test-" + std::to_string(::getpid()) + "-" + std::to_string(rand() % 100000); }

// Serves a counter in this process (threads) until Shutdown.
std::unique_ptr<Server> StartCounter(const std::string& id, std::atomic<int64_t>* value) {
  auto server = Server::Create(id).value();
  Resource r;
  r.contract = CounterContract();
  r.handlers["increment"] = [value](const CallArgs& a) -> Result<std::string> {
    auto by = DecodeI64(a.args[0]);
    if (!by.ok()) return by.status();
    return EncodeI64(value->fetch_add(*by) + *by);
  };
  r.handlers["value"] = [value](const CallArgs&) -> Result<std::string> { return EncodeI64(value->load()); };
  r.handlers["slow"] = [](const CallArgs& a) -> Result<std::string> {
    const int64_t ms = DecodeI64(a.args[0]).value();
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    return EncodeI64(ms);
  };
  r.handlers["echo"] = [](const CallArgs& a) -> Result<std::string> {
    return std::string(reinterpret_cast<const char*>(a.args[0].data()), a.args[0].size());
  };
  r.handlers["hold_then_size"] = [](const CallArgs& a) -> Result<std::string> {
    g_holding.fetch_add(1);
    std::this_thread::sleep_for(std::chrono::milliseconds(DecodeI64(a.args[1]).value()));
    g_holding.fetch_sub(1);
    return EncodeI64(static_cast<int64_t>(a.args[0].size()));
  };
  EXPECT_TRUE(server->Register("counter", std::move(r)).ok());
  EXPECT_TRUE(server->Start().ok());
  return server;
}

int64_t I64(const Result<std::string>& r) { return DecodeI64(AsBytes(r.value())).value(); }

TEST(IpcTest, CallsFromAnotherProcess) {
  const std::string id = ServerId();
  std::atomic<int64_t> value{100};
  auto server = StartCounter(id, &value);
  pid_t child = weft::testing::Spawn([&] {
    auto c = Client::Connect(CounterContract(), "counter", "ipc://" + id, Deadline::AfterMs(10'000));
    if (!c.ok()) return 1;
    const std::string five = EncodeI64(5);
    for (int i = 0; i < 1000; ++i) {
      auto r = (*c)->Call("increment", {AsBytes(five)}, Deadline::AfterMs(10'000));
      if (!r.ok() || DecodeI64(AsBytes(*r)).value() != 100 + 5 * (i + 1)) return 2;
    }
    auto v = (*c)->Call("value", {}, Deadline::AfterMs(10'000));
    return v.ok() && DecodeI64(AsBytes(*v)).value() == 5100 ? 0 : 3;
  });
  EXPECT_EQ(weft::testing::Join(child), 0);
  EXPECT_EQ(value.load(), 5100);
}

TEST(IpcTest, ContractMismatchAndUnknownNamesAreRefusedAtConnect) {
  const std::string id = ServerId();
  std::atomic<int64_t> value{0};
  auto server = StartCounter(id, &value);
  // A client may know fewer methods than the server has (and another version): the server added them.
  auto older = Client::Connect(ContractBuilder("demo.counter", "Counter", "0.0.9").Write<int64_t(int64_t)>("increment").Build().value(),
                               "counter", "ipc://" + id, Deadline::AfterMs(10'000));
  ASSERT_TRUE(older.ok()) << older.status().ToString();
  EXPECT_EQ(I64((*older)->Call("increment", {AsBytes(EncodeI64(3))}, Deadline::AfterMs(10'000))), 3);
  // Anything else that differs is refused, saying exactly what.
  auto other = Client::Connect(ContractBuilder("demo.counter", "Counter", "0.2.0")
                                   .Write<int64_t(double)>("increment")
                                   .Read<int64_t()>("extra")
                                   .Build()
                                   .value(),
                               "counter", "ipc://" + id, Deadline::AfterMs(10'000));
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.status().code(), Code::kContractMismatch);
  EXPECT_NE(other.status().message().find("method 'extra' only on the client"), std::string::npos) << other.status().ToString();
  EXPECT_NE(other.status().message().find("method 'increment' takes (i64) on the server, (f64) on the client"),
            std::string::npos) << other.status().ToString();
  EXPECT_EQ(Client::Connect(CounterContract(), "nope", "ipc://" + id, Deadline::AfterMs(10'000)).status().code(),
            Code::kNotFound);
  EXPECT_EQ(Client::Connect(CounterContract(), "counter", "ipc://no-such-server-here", Deadline::AfterMs(1000)).status().code(),
            Code::kNotFound);
  EXPECT_EQ(Server::Create(id).status().code(), Code::kAlreadyExists);
  auto c = Client::Connect(CounterContract(), "counter", "ipc://" + id, Deadline::AfterMs(10'000)).value();
  EXPECT_EQ(c->Call("nope", {}, Deadline::AfterMs(1000)).status().code(), Code::kInvalidArgument);
  // A wrong argument is the handler's error, carried back; the server keeps serving.
  EXPECT_EQ(c->Call("increment", {AsBytes("abc")}, Deadline::AfterMs(10'000)).status().code(), Code::kCorrupt);
  EXPECT_EQ(I64(c->Call("value", {}, Deadline::AfterMs(10'000))), 3);
}

TEST(IpcTest, AClientSeesItsServerDieWithinItsDeadline) {
  const std::string id = ServerId();
  auto* ready = static_cast<std::atomic<int>*>(
      ::mmap(nullptr, 64, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  pid_t server = weft::testing::Spawn([&] {
    std::atomic<int64_t> value{0};
    auto s = StartCounter(id, &value);
    ready->store(1);
    for (;;) ::pause();
    return 0;
  });
  ASSERT_TRUE(weft::testing::WaitFor([&] { return ready->load() == 1; }, server, 60));
  auto c = Client::Connect(CounterContract(), "counter", "ipc://" + id, Deadline::AfterMs(10'000)).value();
  EXPECT_EQ(I64(c->Call("slow", {AsBytes(EncodeI64(1))}, Deadline::AfterMs(30'000))), 1);  // control
  std::thread killer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    ::kill(server, SIGKILL);
  });
  auto r = c->Call("slow", {AsBytes(EncodeI64(60'000))}, Deadline::AfterMs(30'000));
  killer.join();
  EXPECT_EQ(r.status().code(), Code::kPeerDead) << r.status().ToString();
  EXPECT_EQ(weft::testing::Join(server), 128 + SIGKILL);
  ::munmap(ready, 64);
  c.reset();
  shm::Pool::Unlink("rpc." + id + ".pool").IgnoreError();  // what the killed server left
}

TEST(IpcTest, AServerOutlivesAClientKilledMidCall) {
  const std::string id = ServerId();
  std::atomic<int64_t> value{0};
  auto server = StartCounter(id, &value);
  pid_t child = weft::testing::Spawn([&] {
    auto c = Client::Connect(CounterContract(), "counter", "ipc://" + id, Deadline::AfterMs(10'000));
    if (!c.ok()) return 1;
    (void)(*c)->Call("slow", {AsBytes(EncodeI64(1000))}, Deadline::Never());
    return 2;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  ::kill(child, SIGKILL);
  EXPECT_EQ(weft::testing::Join(child), 128 + SIGKILL);
  // Others are served: the dead client's slow call (a write) finishes first, its reply goes
  // nowhere, and the server drops the connection.
  auto c = Client::Connect(CounterContract(), "counter", "ipc://" + id, Deadline::AfterMs(10'000)).value();
  EXPECT_EQ(I64(c->Call("increment", {AsBytes(EncodeI64(7))}, Deadline::AfterMs(120'000))), 7);
}

TEST(IpcTest, ADeadlineEndsACallThatTakesTooLong) {
  const std::string id = ServerId();
  std::atomic<int64_t> value{0};
  auto server = StartCounter(id, &value);
  auto c = Client::Connect(CounterContract(), "counter", "ipc://" + id, Deadline::AfterMs(10'000)).value();
  EXPECT_EQ(c->Call("slow", {AsBytes(EncodeI64(500))}, Deadline::AfterMs(50)).status().code(), Code::kTimeout);
  // The next call gets its own reply, not the late one.
  EXPECT_EQ(I64(c->Call("increment", {AsBytes(EncodeI64(3))}, Deadline::AfterMs(30'000))), 3);
}

std::string Pattern(size_t n, uint64_t seed) {
  std::string s(n, '\0');
  uint64_t x = seed | 1;
  for (size_t i = 0; i + 8 <= n; i += 8) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    std::memcpy(&s[i], &x, 8);
  }
  for (size_t i = n & ~size_t{7}; i < n; ++i) s[i] = static_cast<char>(i);
  return s;
}

uint64_t PoolInUse(const std::string& id) {
  // (The servers of these tests live in this process and unlink their pool at shutdown.)
  auto s = shm::Pool::Snapshot("rpc." + id + ".pool");
  return s.ok() ? s->blocks_in_use + s->large_in_use : 999;
}

TEST(IpcTest, LargeValuesTravelInThePoolByteExact) {
  const std::string id = ServerId();
  std::atomic<int64_t> value{0};
  auto server = StartCounter(id, &value);
  pid_t child = weft::testing::Spawn([&] {
    auto c = Client::Connect(CounterContract(), "counter", "ipc://" + id, Deadline::AfterMs(10'000));
    if (!c.ok()) return 1;
    for (size_t n : {size_t{100}, size_t{64} << 10, (size_t{64} << 10) + 1, size_t{3} << 20, size_t{64} << 20}) {
      const std::string in = Pattern(n, n);
      auto r = (*c)->Call("echo", {AsBytes(in)}, Deadline::AfterMs(60'000));
      if (!r.ok() || *r != in) return 2;
    }
    return 0;
  });
  EXPECT_EQ(weft::testing::Join(child), 0);
  EXPECT_EQ(PoolInUse(id), 0u);  // every block came back
}

TEST(IpcTest, TwoGigabytesRoundTripByteExact) {
  const std::string id = ServerId();
  std::atomic<int64_t> value{0};
  auto server = StartCounter(id, &value);
  auto c = Client::Connect(CounterContract(), "counter", "ipc://" + id, Deadline::AfterMs(10'000)).value();
  const size_t n = size_t{2} << 30;
  std::string in = Pattern(n, 2);
  auto r = c->Call("echo", {AsBytes(in)}, Deadline::AfterMs(600'000));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->size(), n);
  EXPECT_TRUE(*r == in);
  EXPECT_EQ(PoolInUse(id), 0u);
}

TEST(IpcTest, AServerReclaimsTheBlocksOfAClientKilledMidCall) {
  const std::string id = ServerId();
  std::atomic<int64_t> value{0};
  auto server = StartCounter(id, &value);
  pid_t child = weft::testing::Spawn([&] {
    auto c = Client::Connect(CounterContract(), "counter", "ipc://" + id, Deadline::AfterMs(10'000));
    if (!c.ok()) return 1;
    const std::string big = Pattern(size_t{8} << 20, 5);
    (void)(*c)->Call("hold_then_size", {AsBytes(big), AsBytes(EncodeI64(1000))}, Deadline::Never());
    return 2;
  });
  // Kill the client while the server reads its argument in place. Negative control: then the
  // argument's block is in use.
  ASSERT_TRUE(weft::testing::WaitFor([&] { return g_holding.load() == 1; }, child, 60));
  EXPECT_EQ(PoolInUse(id), 1u);
  ::kill(child, SIGKILL);
  EXPECT_EQ(weft::testing::Join(child), 128 + SIGKILL);
  // Once the server sees the client gone, everything it held comes back.
  const int64_t give_up = MonotonicNs() + 60'000'000'000;
  while (PoolInUse(id) != 0 && MonotonicNs() < give_up) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(PoolInUse(id), 0u);
  // And it serves the next client.
  auto c = Client::Connect(CounterContract(), "counter", "ipc://" + id, Deadline::AfterMs(10'000)).value();
  EXPECT_EQ(I64(c->Call("increment", {AsBytes(EncodeI64(1))}, Deadline::AfterMs(60'000))), 1);
}

// A connected handshake socket to ipc://<id>, or -1.
int RawConnect(const std::string& id) {
  const int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  const std::string name = "weft.rpc." + id;
  std::memcpy(a.sun_path + 1, name.data(), name.size());
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), offsetof(sockaddr_un, sun_path) + 1 + name.size()) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Sends one hello with `fds` and returns the server's answer (the resource id, or its refusal).
Result<uint32_t> RawHello(const std::string& id, const std::string& hello, const std::vector<int>& fds) {
  const int fd = RawConnect(id);
  if (fd < 0) return Status(Code::kNotFound, "no server");
  internal::SendMessage(fd, hello, fds).IgnoreError();
  std::vector<int> got;
  auto answer = internal::RecvMessage(fd, Deadline::AfterMs(10'000), &got, 0);
  ::close(fd);
  if (!answer.ok()) return answer.status();
  auto a = internal::ParseAnswer(*answer);
  if (!a.ok()) return a.status();
  return a->resource;
}

// A client written by hand, speaking the wire format directly: it can send what no Client would.
struct RawClient {
  std::unique_ptr<shm::Channel> req, rep;
  std::unique_ptr<shm::Pool> pool;
  uint32_t resource = 0;

  bool Connect(const std::string& id, const Contract& contract) {
    static int n = 0;
    const std::string stem = "raw-" + std::to_string(::getpid()) + "-" + std::to_string(n++);
    req = shm::Channel::CreateSealed(stem + "-req", {.capacity = 1 << 20, .role = shm::Role::kProducer, .wait = {}}).value();
    rep = shm::Channel::CreateSealed(stem + "-rep", {.capacity = 1 << 20, .role = shm::Role::kConsumer, .wait = {}}).value();
    pool = shm::Pool::Open("rpc." + id + ".pool").value();
    auto r = RawHello(id, internal::EncodeHello("counter", pool->holder_slot(), contract.Canonical()),
                      {req->fd(), rep->fd()});
    if (!r.ok()) return false;
    resource = *r;
    return true;
  }
  void Send(uint32_t method, const std::vector<internal::Value>& values, uint64_t call) {
    std::string frame(sizeof(internal::FrameHeader) + internal::ValuesSize(values), '\0');
    auto* p = reinterpret_cast<uint8_t*>(frame.data());
    internal::EncodeHeader(internal::FrameType::kCall, 0, resource, method, call, 0,
                           static_cast<uint32_t>(frame.size() - sizeof(internal::FrameHeader)), p);
    internal::EncodeValues(values, p + sizeof(internal::FrameHeader));
    ASSERT_TRUE(req->Write(AsBytes(frame), Deadline::AfterMs(10'000)).ok());
  }
  // The code of the answer to `call` (kOk for a reply).
  Code Answer(uint64_t call) {
    auto rec = rep->Read(Deadline::AfterMs(60'000));
    if (!rec.ok()) return rec.status().code();
    auto f = internal::DecodeFrame(*rec);
    Code c = Code::kCorrupt;
    if (f.ok() && f->header.call_id == call) {
      c = f->type() == internal::FrameType::kReply ? Code::kOk : internal::DecodeError(f->payload).code();
    }
    rep->Release().IgnoreError();
    return c;
  }
};

TEST(IpcTest, AHostileClientGetsClearErrorsAndOthersAreServed) {
  const std::string id = ServerId();
  std::atomic<int64_t> value{0};
  auto server = StartCounter(id, &value);
  auto good = Client::Connect(CounterContract(), "counter", "ipc://" + id, Deadline::AfterMs(10'000)).value();
  RawClient raw;
  ASSERT_TRUE(raw.Connect(id, CounterContract()));
  const std::string one = EncodeI64(1);
  const int inc = CounterContract().Find("increment");
  internal::Value arg;
  arg.bytes = AsBytes(one);
  raw.Send(inc, {arg}, 1);
  EXPECT_EQ(raw.Answer(1), Code::kOk);  // control: a well-formed call
  raw.Send(999, {arg}, 2);
  EXPECT_EQ(raw.Answer(2), Code::kInvalidArgument);  // no such method
  raw.Send(inc, {arg, arg}, 3);
  EXPECT_EQ(raw.Answer(3), Code::kInvalidArgument);  // too many arguments
  internal::Value bogus;
  bogus.in_block = true;
  bogus.block = 0xdead0000beefULL;
  bogus.length = 1 << 20;
  raw.Send(inc, {bogus}, 4);
  EXPECT_NE(raw.Answer(4), Code::kOk);  // a block that is not there
  EXPECT_EQ(I64(good->Call("increment", {AsBytes(EncodeI64(10))}, Deadline::AfterMs(60'000))), 11);
  // Bytes that are no frame at all: the server drops this connection, and only it.
  ASSERT_TRUE(raw.req->Write(AsBytes(std::string("not a frame at all, not even close")), Deadline::AfterMs(10'000)).ok());
  EXPECT_EQ(raw.rep->Read(Deadline::AfterMs(60'000)).status().code(), Code::kClosed);
  EXPECT_EQ(I64(good->Call("increment", {AsBytes(EncodeI64(10))}, Deadline::AfterMs(60'000))), 21);
}

TEST(IpcTest, AnOversizeArgumentIsRefusedAtOnce) {
  const std::string id = ServerId();
  std::atomic<int64_t> value{0};
  auto server = StartCounter(id, &value);
  auto c = Client::Connect(CounterContract(), "counter", "ipc://" + id, Deadline::AfterMs(10'000)).value();
  // 32 GB claimed (never read: the pool refuses the size before any byte is copied).
  const uint8_t byte = 0;
  auto r = c->Call("echo", {ByteView(&byte, size_t{32} << 30)}, Deadline::AfterMs(60'000));
  EXPECT_EQ(r.status().code(), Code::kTooLarge) << r.status().ToString();
  EXPECT_EQ(I64(c->Call("increment", {AsBytes(EncodeI64(2))}, Deadline::AfterMs(60'000))), 2);
  EXPECT_EQ(PoolInUse(id), 0u);
}

TEST(IpcTest, AServerReclaimsWhatAKilledClientHeldInHoldMode) {
  const std::string id = ServerId();
  testing::StoreState st;
  auto server = Server::Create(id).value();
  ASSERT_TRUE(server->Register("store", testing::StoreResource(*server, &st)).ok());
  ASSERT_TRUE(server->Start().ok());
  auto* ready = static_cast<std::atomic<int>*>(
      ::mmap(nullptr, 64, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  ASSERT_EQ(PoolInUse(id), 1u);  // the resource's own block
  pid_t child = weft::testing::Spawn([&] {
    auto c = Client::Connect(testing::StoreContract(), "store", "ipc://" + id, Deadline::AfterMs(10'000));
    if (!c.ok()) return 1;
    CallOptions hold;
    hold.deadline = Deadline::AfterMs(60'000);
    hold.hold = true;
    std::vector<Reply> kept;
    const std::string big = Pattern(size_t{16} << 20, 9);
    for (int i = 0; i < 3; ++i) {  // three large results of their own, held in place
      auto r = (*c)->Invoke("echo", {AsBytes(big)}, hold);
      if (!r.ok() || !r->in_shared_memory()) return 2;
      kept.push_back(*std::move(r));
    }
    auto shared = (*c)->Invoke("get", {}, hold);  // and a hold on the resource's own block
    if (!shared.ok() || !shared->in_shared_memory()) return 3;
    kept.push_back(*std::move(shared));
    ready->store(1);
    for (;;) ::pause();
    return 0;
  });
  ASSERT_TRUE(weft::testing::WaitFor([&] { return ready->load() == 1; }, child, 60));
  // Negative control: the client's three results are in use while it lives and holds them.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(PoolInUse(id), 4u);
  ::kill(child, SIGKILL);
  EXPECT_EQ(weft::testing::Join(child), 128 + SIGKILL);
  const int64_t give_up = MonotonicNs() + 60'000'000'000;
  while (PoolInUse(id) != 1 && MonotonicNs() < give_up) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(PoolInUse(id), 1u);  // the results are free; the resource's block stays, its own
  st.shared.reset();
  EXPECT_EQ(PoolInUse(id), 0u);  // the pool is back to full capacity
  ::munmap(ready, 64);
}

// ---- hostile peers (docs/security.md) -------------------------------------------------------

internal::Value BlockValue(uint64_t block, uint64_t length) { return internal::Value{true, false, {}, block, length}; }

TEST(IpcHostileTest, ABlockIdTheClientDoesNotHoldIsRefused) {
  const std::string id = ServerId();
  std::atomic<int64_t> value{0};
  auto server = StartCounter(id, &value);
  // Client A keeps a private loan in the server's pool.
  auto a = Client::Connect(CounterContract(), "counter", "ipc://" + id, Deadline::AfterMs(10'000)).value();
  auto secret = a->Loan(100'000).value();
  std::memset(secret->mutable_bytes().data(), 'S', secret->size());
  RawClient b;
  ASSERT_TRUE(b.Connect(id, CounterContract()));
  // B names A's block by id: refused, and none of A's bytes come back.
  const uint32_t echo = static_cast<uint32_t>(CounterContract().Find("echo"));
  b.Send(echo, {BlockValue(secret->block(), secret->size())}, 1);
  EXPECT_EQ(b.Answer(1), Code::kPermissionDenied);
  // Control: a block B allocated itself is echoed.
  auto own = b.pool->Allocate(100'000).value();
  std::memset(b.pool->Data(own)->data(), 'B', 100'000);
  b.Send(echo, {BlockValue(own, 100'000)}, 2);
  EXPECT_EQ(b.Answer(2), Code::kOk);
  // The connection survives the refusal and A's data is intact.
  EXPECT_EQ(secret->bytes()[0], 'S');
}

TEST(IpcHostileTest, AForgedPoolSlotIsRefusedAtTheHandshake) {
  const std::string id = ServerId();
  std::atomic<int64_t> value{0};
  auto server = StartCounter(id, &value);
  auto other = Client::Connect(CounterContract(), "counter", "ipc://" + id, Deadline::AfterMs(10'000)).value();
  auto req = shm::Channel::CreateSealed("forge-req", {.capacity = 1 << 20, .role = shm::Role::kProducer}).value();
  auto rep = shm::Channel::CreateSealed("forge-rep", {.capacity = 1 << 20, .role = shm::Role::kConsumer}).value();
  const std::string canonical = CounterContract().Canonical();
  auto pool = shm::Pool::Open("rpc." + id + ".pool").value();
  // From another process, every slot but its own is refused: the server's, the other client's
  // (both held by this process), unused ones.
  const pid_t child = weft::testing::Spawn([&] {
    for (int slot : {0, 1, 2, 63}) {
      auto r = RawHello(id, internal::EncodeHello("counter", slot, canonical), {req->fd(), rep->fd()});
      if (r.ok() || r.status().code() != Code::kPermissionDenied) return 10 + slot;
    }
    return 0;
  });
  EXPECT_EQ(weft::testing::Join(child), 0);
  // Not a number at all.
  auto junk = RawHello(id, "hello 3\nwire 2 2\ncounter\nx\n" + canonical, {req->fd(), rep->fd()});
  EXPECT_EQ(junk.status().code(), Code::kCorrupt);
  // An older handshake, or wire versions this server does not speak: told so.
  auto old = RawHello(id, "hello 2\ncounter\n-\n" + canonical, {req->fd(), rep->fd()});
  EXPECT_EQ(old.status().code(), Code::kVersionMismatch);
  auto future = RawHello(id, "hello 3\nwire 7 9\ncounter\n-\n" + canonical, {req->fd(), rep->fd()});
  EXPECT_EQ(future.status().code(), Code::kVersionMismatch);
  EXPECT_NE(future.status().message().find("wire versions 7 to 9"), std::string::npos) << future.status().ToString();
  // Control: our own slot is accepted.
  EXPECT_TRUE(RawHello(id, internal::EncodeHello("counter", pool->holder_slot(), canonical), {req->fd(), rep->fd()}).ok());
}

TEST(IpcHostileTest, ChannelsMustBeSealedAndOfTheExpectedSize) {
  const std::string id = ServerId();
  std::atomic<int64_t> value{0};
  auto server = StartCounter(id, &value);
  auto pool = shm::Pool::Open("rpc." + id + ".pool").value();
  const std::string hello = internal::EncodeHello("counter", pool->holder_slot(), CounterContract().Canonical());
  // Plain memfds the client could shrink under the server: refused.
  const int plain[2] = {::memfd_create("a", MFD_CLOEXEC), ::memfd_create("b", MFD_CLOEXEC)};
  for (int fd : plain) ASSERT_EQ(::ftruncate(fd, 1 << 20), 0);
  EXPECT_EQ(RawHello(id, hello, {plain[0], plain[1]}).status().code(), Code::kPermissionDenied);
  // Sealed but huge (the server would map and populate it): refused before mapping.
  auto huge = shm::Channel::CreateSealed("huge", {.capacity = size_t{1} << 30}).value();
  auto rep = shm::Channel::CreateSealed("huge-rep", {.capacity = 1 << 20, .role = shm::Role::kConsumer}).value();
  EXPECT_EQ(RawHello(id, hello, {huge->fd(), rep->fd()}).status().code(), Code::kInvalidArgument);
  // One descriptor, or none.
  EXPECT_EQ(RawHello(id, hello, {rep->fd()}).status().code(), Code::kCorrupt);
  // Sealed channels cannot be shrunk by the client that made them.
  auto c = Client::Connect(CounterContract(), "counter", "ipc://" + id, Deadline::AfterMs(10'000)).value();
  EXPECT_NE(::ftruncate(rep->fd(), 0), 0);
  EXPECT_EQ(I64(c->Call("increment", {AsBytes(EncodeI64(1))}, Deadline::AfterMs(10'000))), 1);
  for (int fd : plain) ::close(fd);
}

// Lines of /proc/self/maps: this process's mappings.
int Mappings() {
  std::ifstream maps("/proc/self/maps");
  int n = 0;
  for (std::string line; std::getline(maps, line);) ++n;
  return n;
}

// Threads of this process.
int Threads() {
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/task")) n += e.exists() ? 1 : 0;
  return n;
}

TEST(IpcHostileTest, TensOfThousandsOfAbandonedConnectionsLeaveNothingBehind) {
  const std::string id = ServerId();
  std::atomic<int64_t> value{0};
  auto server = StartCounter(id, &value);
  const int before = Threads();
  const int maps_before = Mappings();
  // Connections that never say hello: up to max_pending are held, the rest refused at once.
  std::vector<int> idle;
  for (int i = 0; i < 100; ++i) idle.push_back(RawConnect(id));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const int busy = Threads();
  EXPECT_GT(busy, before);                       // control: each pending handshake has a thread
  EXPECT_LE(busy, before + 32 + 1);              // but no more than max_pending of them
  for (int fd : idle) ::close(fd);
  // Twice ten thousand connect-and-go; finished connections are reaped: the thread count comes
  // back down, and nothing stays mapped per connection (a finished but unjoined thread keeps
  // its stack and guard page: two mappings each).
  int maps_after[2] = {0, 0};
  for (int round = 0; round < 2; ++round) {
    for (int i = 0; i < 10'000; ++i) {
      const int fd = RawConnect(id);
      ASSERT_GE(fd, 0) << i;
      ::close(fd);
    }
    const int64_t give_up = MonotonicNs() + 10'000'000'000;
    while (Threads() > before && MonotonicNs() < give_up) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    EXPECT_LE(Threads(), before);
    // The acceptor reaps every 100 ms; allow for a loaded machine.
    const int bound = round == 0 ? maps_before + 64 : maps_after[0] + 64;
    for (int i = 0; i < 50 && Mappings() > bound; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    maps_after[round] = Mappings();
  }
  // Allocator arenas and the stack cache are bounded; a leak is two mappings per connection
  // (20,000 for each round here), not a few dozen.
  EXPECT_LE(maps_after[0], maps_before + 64);
  EXPECT_LE(maps_after[1], maps_after[0] + 64);
  // And it serves again: on a loaded machine (sanitizers, tests in parallel) the last refused
  // handshakes may still hold their slots for a moment, so a refused connect is tried again.
  Result<std::unique_ptr<Client>> c = Status(Code::kUnavailable, "not tried");
  const int64_t until = MonotonicNs() + 30'000'000'000;
  while (!c.ok() && MonotonicNs() < until) {
    c = Client::Connect(CounterContract(), "counter", "ipc://" + id, Deadline::AfterMs(10'000));
    if (!c.ok()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(I64((*c)->Call("increment", {AsBytes(EncodeI64(1))}, Deadline::AfterMs(10'000))), 1);
}

TEST(IpcHostileTest, AnotherUidIsRefusedByDefaultAndAdmittedOnlyByPolicy) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to become another uid (CI runs as root)";
  auto as_nobody = [](const std::string& id, bool expect_admitted) {
    return weft::testing::Join(weft::testing::Spawn([&] {
      if (::setgroups(0, nullptr) != 0 || ::setgid(65534) != 0 || ::setuid(65534) != 0) return 90;
      auto c = Client::Connect(CounterContract(), "counter", "ipc://" + id, Deadline::AfterMs(10'000));
      if (!expect_admitted) {
        if (c.status().code() != Code::kPermissionDenied) std::fprintf(stderr, "nobody: %s\n", c.status().ToString().c_str());
        return c.status().code() == Code::kPermissionDenied ? 0 : 1;
      }
      if (!c.ok()) return 2;
      auto v = (*c)->Call("increment", {AsBytes(EncodeI64(5))}, Deadline::AfterMs(10'000));
      if (!v.ok() || DecodeI64(AsBytes(*v)).value() != 5) return 3;
      // Without the pool, a large value travels inline, and no block can be named.
      const std::string big(200'000, 'x');
      auto echo = (*c)->Call("echo", {AsBytes(big)}, Deadline::AfterMs(10'000));
      if (!echo.ok() || *echo != big) return 4;
      if ((*c)->Loan(100).status().code() != Code::kPermissionDenied) return 5;
      return 0;
    }));
  };
  {
    const std::string id = ServerId();
    std::atomic<int64_t> value{0};
    auto server = StartCounter(id, &value);
    EXPECT_EQ(as_nobody(id, false), 0);
    EXPECT_EQ(value.load(), 0);
    // Refused at accept, before any hello: the answer comes unasked (nothing of the client's is
    // read, no thread is spent on it).
    EXPECT_EQ(weft::testing::Join(weft::testing::Spawn([&] {
                if (::setgroups(0, nullptr) != 0 || ::setgid(65534) != 0 || ::setuid(65534) != 0) return 90;
                const int fd = RawConnect(id);
                std::vector<int> fds;
                auto answer = internal::RecvMessage(fd, Deadline::AfterMs(5000), &fds, 0);
                if (!answer.ok()) return 1;
                return internal::ParseAnswer(*answer).status().code() == Code::kPermissionDenied ? 0 : 2;
              })),
              0);
  }
  {
    const std::string id = ServerId();
    std::atomic<int64_t> value{0};
    auto server = Server::Create(id, {.allow_uids = {65534}}).value();
    Resource r;
    r.contract = CounterContract();
    for (const auto& m : r.contract.methods) {
      r.handlers[m.name] = [&value, name = m.name](const CallArgs& a) -> Result<std::string> {
        if (name == "increment") return EncodeI64(value.fetch_add(DecodeI64(a.args[0]).value()) + DecodeI64(a.args[0]).value());
        if (name == "echo") return std::string(reinterpret_cast<const char*>(a.args[0].data()), a.args[0].size());
        return EncodeI64(0);
      };
    }
    ASSERT_TRUE(server->Register("counter", std::move(r)).ok());
    ASSERT_TRUE(server->Start().ok());
    EXPECT_EQ(as_nobody(id, true), 0);
    EXPECT_EQ(value.load(), 5);
  }
}

TEST(IpcHostileTest, AClientPastItsQuotaOfHeldResultsIsRefused) {
  const std::string id = ServerId();
  std::atomic<int64_t> value{0};
  auto server = Server::Create(id, {.max_held_bytes_per_client = 1 << 20}).value();
  Resource r;
  r.contract = CounterContract();
  for (const auto& m : r.contract.methods) {
    r.handlers[m.name] = [](const CallArgs& a) -> Result<std::string> {
      return std::string(reinterpret_cast<const char*>(a.args[0].data()), a.args[0].size());
    };
  }
  ASSERT_TRUE(server->Register("counter", std::move(r)).ok());
  ASSERT_TRUE(server->Start().ok());
  auto c = Client::Connect(CounterContract(), "counter", "ipc://" + id, Deadline::AfterMs(10'000)).value();
  const std::string big(300'000, 'q');
  std::vector<std::shared_ptr<Held>> kept;
  CallOptions hold;
  hold.deadline = Deadline::AfterMs(10'000);
  hold.hold = true;
  for (int i = 0; i < 3; ++i) {  // 900 KB held: within the quota
    auto rep = c->Invoke("echo", {AsBytes(big)}, hold);
    ASSERT_TRUE(rep.ok()) << rep.status().ToString();
    kept.push_back(rep->held);
  }
  auto over = c->Invoke("echo", {AsBytes(big)}, hold);
  ASSERT_FALSE(over.ok());
  EXPECT_EQ(over.status().code(), Code::kResourceExhausted);
  kept.clear();  // released: room again
  EXPECT_TRUE(c->Invoke("echo", {AsBytes(big)}, hold).ok());
}

}  // namespace
}  // namespace weft::rpc

namespace weft::rpc {
namespace {

TEST(IpcTest, RegisterAndStartAfterShutdownAreRefused) {
  const std::string id = ServerId();
  std::atomic<int64_t> value{0};
  auto server = StartCounter(id, &value);  // control: registered and serving
  ASSERT_TRUE(server->Shutdown(Deadline::AfterMs(10'000)).ok());
  Resource r;
  r.contract = CounterContract();
  for (const auto& m : r.contract.methods) r.handlers[m.name] = [](const CallArgs&) -> Result<std::string> { return std::string(); };
  EXPECT_EQ(server->Register("again", std::move(r)).code(), Code::kClosed);
  EXPECT_EQ(server->Start().code(), Code::kClosed);
}

}  // namespace
}  // namespace weft::rpc
