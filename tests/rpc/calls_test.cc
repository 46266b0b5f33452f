// Calls beyond bytes in, bytes out, over ipc:// and inproc:// (server and client in this
// process, so the sanitizers see both sides): hold mode, loaned arguments, cancellation,
// streams with credit-based flow control.
#include <gtest/gtest.h>

#include <thread>

#include "store_resource.h"
#include "weft/rpc/codec.h"
#include "weft/shm/pool.h"

namespace weft::rpc {
namespace {

using internal::DecodeI64;
using internal::EncodeI64;
using testing::StoreContract;
using testing::StoreState;

std::string ServerId() { return "calls-" + std::to_string(::getpid()) + "-" + std::to_string(rand() % 100000); }

uint64_t PoolInUse(const std::string& id) {
  auto s = shm::Pool::Snapshot("rpc." + id + ".pool");
  return s.ok() ? s->blocks_in_use + s->large_in_use : 999;
}

struct Fixture {
  std::string id = ServerId();
  StoreState st;
  std::unique_ptr<Server> server;
  Fixture() {
    server = Server::Create(id).value();
    EXPECT_TRUE(server->Register("store", testing::StoreResource(*server, &st)).ok());
    EXPECT_TRUE(server->Start().ok());
  }
  std::unique_ptr<Client> Connect(const std::string& scheme) {
    return Client::Connect(StoreContract(), "store", scheme + id, Deadline::AfterMs(10'000)).value();
  }
  ~Fixture() {
    server->Shutdown(Deadline::AfterMs(10'000)).IgnoreError();  // joins the server's threads first
    std::lock_guard<std::mutex> g(st.mu);
    st.shared.reset();
  }
};

// Waits (bounded) until `v` stops changing for a while, then returns it.
template <typename Get>
int64_t Settled(Get get) {
  int64_t last = get();
  for (int stable = 0, i = 0; stable < 20 && i < 5000; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    const int64_t now = get();
    stable = now == last ? stable + 1 : 0;
    last = now;
  }
  return last;
}

class Transports : public ::testing::TestWithParam<const char*> {};
INSTANTIATE_TEST_SUITE_P(Rpc, Transports, ::testing::Values("ipc://", "inproc://"));

TEST_P(Transports, HoldModeGivesTheResourcesOwnBlockInPlace) {
  Fixture fx;
  auto c = fx.Connect(GetParam());
  CallOptions hold;
  hold.deadline = Deadline::AfterMs(30'000);
  hold.hold = true;
  auto r = c->Invoke("get", {}, hold);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_TRUE(r->in_shared_memory());
  ASSERT_EQ(r->bytes().size(), testing::kSharedBytes);
  EXPECT_EQ(r->bytes()[1000], static_cast<uint8_t>(7000));
  // The same memory: what the resource writes later, the holder sees.
  {
    std::lock_guard<std::mutex> g(fx.st.mu);
    fx.st.shared->mutable_bytes()[1000] = 0xAB;
  }
  EXPECT_EQ(r->bytes()[1000], 0xAB);
  if (std::string(GetParam()) == "ipc://") {
    EXPECT_EQ(r->held->block(), fx.st.shared->block());
    EXPECT_EQ(c->hold_stats().active_holds, 1u);
    EXPECT_EQ(c->hold_stats().held_bytes, testing::kSharedBytes);
    // A second hold of the same block while the first is alive arrives as a copy of its own.
    auto again = c->Invoke("get", {}, hold);
    ASSERT_TRUE(again.ok());
    EXPECT_NE(again->held->block(), r->held->block());
    EXPECT_TRUE(std::memcmp(again->bytes().data(), r->bytes().data(), testing::kSharedBytes) == 0);
    again->held.reset();
  } else {
    EXPECT_EQ(r->bytes().data(), fx.st.shared->bytes().data());
  }
  // Without hold mode the result is the caller's own copy.
  CallOptions copy;
  copy.deadline = Deadline::AfterMs(30'000);
  auto owned = c->Invoke("get", {}, copy);
  ASSERT_TRUE(owned.ok());
  EXPECT_FALSE(owned->in_shared_memory());
  EXPECT_EQ(owned->bytes()[1000], 0xAB);
  r->held.reset();
  // In-process, the client's holds are the server's own: its shared block is one.
  EXPECT_EQ(c->hold_stats().active_holds, std::string(GetParam()) == "ipc://" ? 0u : 1u);
  // Only the resource's own block is still in use.
  if (std::string(GetParam()) == "ipc://") EXPECT_EQ(PoolInUse(fx.id), 1u);
}

TEST(CallsTest, ALoanedArgumentIsReadInPlace) {
  Fixture fx;
  auto c = fx.Connect("ipc://");
  auto loan = c->Loan(size_t{1} << 20).value();
  MutableBytes m = loan->mutable_bytes();
  int64_t expect = 0;
  for (size_t i = 0; i < m.size(); ++i) {
    m[i] = static_cast<uint8_t>(i * 13);
    expect += m[i];
  }
  auto r = c->Call("sum", {loan->bytes()}, Deadline::AfterMs(30'000));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(DecodeI64(AsBytes(*r)).value(), expect);
  EXPECT_EQ(fx.st.last_arg_block.load(), loan->block());  // the server read the loan itself
  // The same bytes from ordinary memory are copied into a block of their own.
  const std::string plain(reinterpret_cast<const char*>(m.data()), m.size());
  r = c->Call("sum", {AsBytes(plain)}, Deadline::AfterMs(30'000));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(DecodeI64(AsBytes(*r)).value(), expect);
  EXPECT_NE(fx.st.last_arg_block.load(), loan->block());
  EXPECT_NE(fx.st.last_arg_block.load(), 0u);
  loan.reset();
  EXPECT_EQ(PoolInUse(fx.id), 1u);  // the resource's block only
}

TEST_P(Transports, CancellingACallStopsItsHandlerAndTheConnectionGoesOn) {
  Fixture fx;
  auto c = fx.Connect(GetParam());
  CancelToken token;
  CallOptions o;
  o.deadline = Deadline::AfterMs(120'000);
  o.cancel = &token;
  std::thread canceller([&] {
    while (fx.st.running.load() == 0) std::this_thread::yield();
    token.Cancel();
  });
  auto r = c->Invoke("wait_cancel", {AsBytes(EncodeI64(600'000))}, o);
  canceller.join();
  EXPECT_EQ(r.status().code(), Code::kCancelled);
  if (std::string(GetParam()) == "ipc://") {
    // The handler is told (it polls Cancelled()) and ends long before its 10 minutes.
    for (int i = 0; i < 60'000 && fx.st.saw_cancel.load() == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    EXPECT_EQ(fx.st.saw_cancel.load(), 1);
  } else {
    EXPECT_EQ(fx.st.saw_cancel.load(), 1);  // same thread: the handler returned before Invoke did
  }
  // Negative control: an uncancelled call runs to its end without seeing a cancel.
  auto done = c->Call("wait_cancel", {AsBytes(EncodeI64(20))}, Deadline::AfterMs(60'000));
  ASSERT_TRUE(done.ok()) << done.status().ToString();
  EXPECT_EQ(fx.st.saw_cancel.load(), 1);
  auto e = c->Call("echo", {AsBytes("after")}, Deadline::AfterMs(60'000));
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(*e, "after");
}

TEST(CallsTest, ACallCancelledWhileQueuedBehindAWriteNeverRuns) {
  Fixture fx;
  auto busy = fx.Connect("ipc://");
  auto c = fx.Connect("ipc://");
  CancelToken stop_busy;
  std::thread t([&] {
    CallOptions o;
    o.deadline = Deadline::AfterMs(120'000);
    o.cancel = &stop_busy;
    (void)busy->Invoke("wait_cancel", {AsBytes(EncodeI64(600'000))}, o);
  });
  while (fx.st.running.load() == 0) std::this_thread::yield();
  CancelToken token;
  CallOptions o;
  o.deadline = Deadline::AfterMs(120'000);
  o.cancel = &token;
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    token.Cancel();
  });
  auto r = c->Invoke("wait_cancel", {AsBytes(EncodeI64(1))}, o);  // queued behind the write
  canceller.join();
  EXPECT_EQ(r.status().code(), Code::kCancelled);
  stop_busy.Cancel();
  t.join();
  // The queued call gave up its turn without running: only the busy call saw a cancel, and
  // the connection serves the next call.
  auto e = c->Call("echo", {AsBytes("next")}, Deadline::AfterMs(60'000));
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  for (int i = 0; i < 60'000 && fx.st.running.load() != 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_EQ(fx.st.saw_cancel.load(), 1);
}

TEST_P(Transports, AStreamDeliversEveryChunkInOrder) {
  Fixture fx;
  auto c = fx.Connect(GetParam());
  CallOptions o;
  o.deadline = Deadline::AfterMs(120'000);
  auto s = c->OpenStream("count", {AsBytes(EncodeI64(1000))}, o).value();
  for (int64_t i = 0; i < 1000; ++i) {
    auto chunk = s->Next(Deadline::AfterMs(60'000));
    ASSERT_TRUE(chunk.ok()) << chunk.status().ToString();
    ASSERT_TRUE(chunk->has_value());
    ASSERT_EQ(DecodeI64((*chunk)->bytes()).value(), i);
  }
  auto end = s->Next(Deadline::AfterMs(60'000));
  ASSERT_TRUE(end.ok());
  EXPECT_FALSE(end->has_value());
  EXPECT_EQ(fx.st.stream_code.load(), 0);
  // Large chunks travel in blocks, held in place in hold mode, all released after.
  o.hold = true;
  auto big = c->OpenStream("big_chunks", {AsBytes(EncodeI64(20))}, o).value();
  for (int64_t i = 0; i < 20; ++i) {
    auto chunk = big->Next(Deadline::AfterMs(60'000));
    ASSERT_TRUE(chunk.ok() && chunk->has_value()) << chunk.status().ToString();
    const std::string want = testing::ChunkPattern(i);
    ASSERT_EQ((*chunk)->bytes().size(), want.size());
    EXPECT_TRUE(std::memcmp((*chunk)->bytes().data(), want.data(), want.size()) == 0);
  }
  ASSERT_FALSE(big->Next(Deadline::AfterMs(60'000)).value().has_value());
  EXPECT_EQ(c->Call("echo", {AsBytes("x")}, Deadline::AfterMs(60'000)).value(), "x");
  if (std::string(GetParam()) == "ipc://") EXPECT_EQ(PoolInUse(fx.id), 1u);
}

TEST_P(Transports, AStreamRunsAheadOnlyAsFarAsItsCreditAndCanBeCancelled) {
  Fixture fx;
  auto c = fx.Connect(GetParam());
  CallOptions o;
  o.deadline = Deadline::AfterMs(120'000);
  auto s = c->OpenStream("count", {AsBytes(EncodeI64(1'000'000))}, o).value();
  ASSERT_EQ(DecodeI64(s->Next(Deadline::AfterMs(60'000)).value()->bytes()).value(), 0);
  // The producer stops at its initial credit of 16 chunks however long the consumer dawdles.
  EXPECT_EQ(Settled([&] { return fx.st.produced.load(); }), 16);
  for (int64_t i = 1; i < 8; ++i) ASSERT_EQ(DecodeI64(s->Next(Deadline::AfterMs(60'000)).value()->bytes()).value(), i);
  if (std::string(GetParam()) == "ipc://") {
    // Eight chunks consumed: a credit of eight more.
    EXPECT_EQ(Settled([&] { return fx.st.produced.load(); }), 24);
    // The connection carries nothing else while the stream is open.
    EXPECT_EQ(c->Call("echo", {AsBytes("x")}, Deadline::AfterMs(1000)).status().code(), Code::kBusy);
  } else {
    EXPECT_EQ(Settled([&] { return fx.st.produced.load(); }), 24);  // the same credit in-process
  }
  s->Cancel();
  for (int i = 0; i < 60'000 && fx.st.stream_code.load() == -1; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_EQ(fx.st.stream_code.load(), static_cast<int>(Code::kCancelled));
  EXPECT_LT(fx.st.produced.load(), 1'000'000);
  EXPECT_EQ(s->Next(Deadline::AfterMs(1000)).value(), std::nullopt);
  // The connection goes on (the cancelled stream's leftovers are skipped).
  EXPECT_EQ(c->Call("echo", {AsBytes("y")}, Deadline::AfterMs(60'000)).value(), "y");
}

TEST(CallsTest, StreamsAndCallsAreNotMixedUp) {
  Fixture fx;
  auto c = fx.Connect("ipc://");
  CallOptions o;
  o.deadline = Deadline::AfterMs(60'000);
  EXPECT_EQ(c->Invoke("count", {AsBytes(EncodeI64(1))}, o).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(c->OpenStream("echo", {AsBytes("x")}, o).status().code(), Code::kInvalidArgument);
}

TEST(CallsTest, InprocCallsReachTheHandlerDirectly) {
  Fixture fx;
  auto c = fx.Connect("inproc://");
  const std::string big(1 << 20, 'q');
  auto r = c->Call("echo", {AsBytes(big)}, Deadline::AfterMs(60'000));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, big);
  EXPECT_EQ(fx.st.last_arg_block.load(), 0u);
  EXPECT_EQ(Client::Connect(StoreContract(), "nope", "inproc://" + fx.id, Deadline::AfterMs(1000)).status().code(),
            Code::kNotFound);
  EXPECT_EQ(Client::Connect(StoreContract(), "store", "inproc://no-such", Deadline::AfterMs(1000)).status().code(),
            Code::kNotFound);
  // The same method with another result is refused (a server with more methods is not).
  auto other = ContractBuilder("test.store", "Store", "2.0.0").Method("get", Access::kRead, {}, "i64").Build().value();
  EXPECT_EQ(Client::Connect(other, "store", "inproc://" + fx.id, Deadline::AfterMs(1000)).status().code(),
            Code::kContractMismatch);
  fx.server->Shutdown(Deadline::AfterMs(10'000)).IgnoreError();
  EXPECT_EQ(c->Call("echo", {AsBytes("x")}, Deadline::AfterMs(1000)).status().code(), Code::kClosed);
}

TEST_P(Transports, TypedHandlersAndCallsUseTheBuiltinCodecs) {
  const std::string id = ServerId();
  auto contract = ContractBuilder("test.typed", "Typed", "1")
                      .Read<std::string(std::string, int64_t)>("repeat")
                      .Read<double(std::vector<uint8_t>, bool)>("mean")
                      .Write<void(int64_t)>("set")
                      .Read<int64_t()>("get")
                      .Build()
                      .value();
  int64_t stored = 0;
  Resource r;
  r.contract = contract;
  r.handlers["repeat"] = Typed<std::string(std::string, int64_t)>([](const std::string& s, int64_t n) -> Result<std::string> {
    if (n < 0) return InvalidArgument("negative count");
    std::string out;
    for (int64_t i = 0; i < n; ++i) out += s;
    return out;
  });
  r.handlers["mean"] = Typed<double(std::vector<uint8_t>, bool)>([](const std::vector<uint8_t>& b, bool half) {
    double sum = 0;
    for (uint8_t x : b) sum += x;
    return (b.empty() ? 0 : sum / b.size()) * (half ? 0.5 : 1.0);
  });
  r.handlers["set"] = Typed<void(int64_t)>([&](int64_t v) { stored = v; });
  r.handlers["get"] = Typed<int64_t()>([&] { return stored; });
  auto server = Server::Create(id).value();
  ASSERT_TRUE(server->Register("typed", std::move(r)).ok());
  ASSERT_TRUE(server->Start().ok());
  auto c = Client::Connect(contract, "typed", GetParam() + id, Deadline::AfterMs(10'000)).value();
  const Deadline d = Deadline::AfterMs(60'000);
  EXPECT_EQ(CallAs<std::string>(*c, "repeat", d, std::string("ab"), int64_t{3}).value(), "ababab");
  EXPECT_EQ(CallAs<std::string>(*c, "repeat", d, std::string("ab"), int64_t{-1}).status().code(), Code::kInvalidArgument);
  EXPECT_DOUBLE_EQ(CallAs<double>(*c, "mean", d, std::vector<uint8_t>{1, 2, 3, 6}, true).value(), 1.5);
  ASSERT_TRUE(CallAs<void>(*c, "set", d, int64_t{42}).ok());
  EXPECT_EQ(CallAs<int64_t>(*c, "get", d).value(), 42);
  // Bytes that do not decode are the caller's error, named: a str that is not UTF-8, an i64 of 3 bytes.
  const std::string bad_utf8 = "\xff\xfe";
  auto bad = c->Call("repeat", {AsBytes(bad_utf8), AsBytes(EncodeI64(1))}, d);
  EXPECT_EQ(bad.status().code(), Code::kCorrupt);
  EXPECT_NE(bad.status().message().find("UTF-8"), std::string::npos);
  EXPECT_EQ(c->Call("set", {AsBytes(std::string("abc"))}, d).status().code(), Code::kCorrupt);
  EXPECT_EQ(CallAs<int64_t>(*c, "get", d).value(), 42);  // unchanged by the bad call
  // A result read as the wrong type is refused too.
  EXPECT_EQ(CallAs<int64_t>(*c, "repeat", d, std::string("abc"), int64_t{1}).status().code(), Code::kCorrupt);
}

}  // namespace
}  // namespace weft::rpc
