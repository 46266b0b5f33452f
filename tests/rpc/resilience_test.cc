// What a client does when calls fail (ConnectOptions: retry, hedge_after_ms, breaker), against
// real servers over tcp://: reads retried with backoff on retryable errors and only those, writes
// never; a slow read answered by its hedge on a second connection while the slow one is cancelled
// at the server (control: no hedge, the slow answer); a circuit that opens after failures in a
// row, fails calls without dialing while open, and lets one trial through after its time.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "weft/rpc/rpc.h"

namespace weft::rpc {
namespace {

Contract FlakyContract() {
  return ContractBuilder("test.flaky", "Flaky", "1.0.0")
      .Method("get", Access::kRead, {"i64"}, "str")    // fails with Unavailable while failures remain
      .Method("bad", Access::kRead, {}, "str")         // always InvalidArgument
      .Method("put", Access::kWrite, {"i64"}, "str")   // fails with Unavailable while failures remain
      .Method("slow", Access::kRead, {}, "str")        // the first call waits for its cancellation
      .Method("slow_write", Access::kWrite, {}, "str")
      .Build()
      .value();
}

struct Flaky {
  std::atomic<int> failures{0};   // calls of get/put to fail from now
  std::atomic<int> calls{0};      // calls of get/put/bad
  std::atomic<int> slow_calls{0};
  std::atomic<int> cancelled{0};  // slow calls that saw their cancellation
};

Result<std::string> Slow(Flaky* f, const CallArgs& a) {
  if (f->slow_calls.fetch_add(1) == 0) {
    for (int i = 0; i < 4000; ++i) {  // up to 4 s, unless cancelled (far past the hedge, under any load)
      if (a.context->Cancelled()) {
        f->cancelled.fetch_add(1);
        return Status(Code::kCancelled, "cancelled");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return std::string("slow");
  }
  return std::string("fast");
}

Resource FlakyResource(Flaky* f) {
  Resource r;
  r.contract = FlakyContract();
  auto flaky = [f](const CallArgs&) -> Result<std::string> {
    f->calls.fetch_add(1);
    if (f->failures.fetch_sub(1) > 0) return Status(Code::kUnavailable, "not now");
    f->failures.store(0);
    return std::string("ok");
  };
  r.handlers["get"] = flaky;
  r.handlers["put"] = flaky;
  r.handlers["bad"] = [f](const CallArgs&) -> Result<std::string> {
    f->calls.fetch_add(1);
    return InvalidArgument("bad");
  };
  r.handlers["slow"] = [f](const CallArgs& a) { return Slow(f, a); };
  r.handlers["slow_write"] = [f](const CallArgs& a) { return Slow(f, a); };
  return r;
}

struct Served {
  Flaky flaky;
  std::unique_ptr<Server> server;
  std::string address;
  Served() {
    ServerOptions o;
    o.listen = {"tcp://127.0.0.1:0"};
    o.tcp.plaintext = true;
    server = Server::Create("resil-" + std::to_string(::getpid()) + "-" + std::to_string(rand() % 100000), o).value();
    EXPECT_TRUE(server->Register("flaky", FlakyResource(&flaky)).ok());
    EXPECT_TRUE(server->Start().ok());
    address = server->addresses().at(1);
  }
};

std::unique_ptr<Client> Connect(const std::string& address, ConnectOptions o) {
  o.tcp.plaintext = true;
  auto c = Client::Connect(FlakyContract(), "flaky", address, Deadline::AfterMs(10'000), o);
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  return c.ok() ? std::move(c).value() : nullptr;
}

const std::string kOne(8, '\0');
Result<std::string> Call(Client& c, const char* m) {
  std::vector<ByteView> args;
  if (std::string_view(m) == "get" || std::string_view(m) == "put") args.push_back(AsBytes(kOne));
  return c.Call(m, args, Deadline::AfterMs(10'000));
}

TEST(ResilienceTest, ReadsAreRetriedOnRetryableErrorsOnlyAndWritesNever) {
  Served s;
  auto once = Connect(s.address, {});
  s.flaky.failures = 2;
  EXPECT_EQ(Call(*once, "get").status().code(), Code::kUnavailable);  // control: no retry
  EXPECT_EQ(s.flaky.calls.load(), 1);

  ConnectOptions o;
  o.retry.attempts = 3;
  o.retry.backoff_ms = 5;
  auto retrying = Connect(s.address, o);
  s.flaky.calls = 0;
  s.flaky.failures = 2;
  auto r = Call(*retrying, "get");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, "ok");
  EXPECT_EQ(s.flaky.calls.load(), 3);  // two failures, then the answer
  s.flaky.calls = 0;
  s.flaky.failures = 5;
  EXPECT_EQ(Call(*retrying, "get").status().code(), Code::kUnavailable);
  EXPECT_EQ(s.flaky.calls.load(), 3);  // attempts, then the last error
  s.flaky.calls = 0;
  s.flaky.failures = 1;
  EXPECT_EQ(Call(*retrying, "put").status().code(), Code::kUnavailable);
  EXPECT_EQ(s.flaky.calls.load(), 1);  // a write is never retried: it may have run
  s.flaky.calls = 0;
  EXPECT_EQ(Call(*retrying, "bad").status().code(), Code::kInvalidArgument);
  EXPECT_EQ(s.flaky.calls.load(), 1);  // the caller's own error: not retried
  EXPECT_FALSE(Retryable(Code::kTimeout));
  EXPECT_FALSE(Retryable(Code::kPermissionDenied));
  EXPECT_TRUE(Retryable(Code::kPeerDead));
  ConnectOptions bad;
  bad.retry.attempts = 0;
  EXPECT_EQ(Client::Connect(FlakyContract(), "flaky", s.address, Deadline::AfterMs(1000), bad).status().code(),
            Code::kInvalidArgument);
}

TEST(ResilienceTest, ASlowReadIsAnsweredByItsHedgeAndTheSlowCallCancelled) {
  {
    Served s;  // control: without hedging the read waits for the slow answer
    auto c = Connect(s.address, {});
    EXPECT_EQ(Call(*c, "slow").value(), "slow");
    EXPECT_EQ(s.flaky.cancelled.load(), 0);
  }
  Served s;
  ConnectOptions o;
  o.hedge_after_ms = 50;
  auto c = Connect(s.address, o);
  auto r = Call(*c, "slow");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, "fast");  // the hedge's answer, from the second connection
  for (int i = 0; i < 500 && s.flaky.cancelled.load() == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(s.flaky.cancelled.load(), 1);  // the slow call was cancelled at the server
  EXPECT_EQ(s.flaky.slow_calls.load(), 2);
  // The client goes on calling on its first connection.
  EXPECT_EQ(Call(*c, "slow").value(), "fast");
  // A write is never hedged: it may not run twice.
  s.flaky.slow_calls = 0;
  EXPECT_EQ(Call(*c, "slow_write").value(), "slow");
  EXPECT_EQ(s.flaky.slow_calls.load(), 1);
}

// A listener that accepts and closes each connection at once, counting them.
struct Refuser {
  int fd = -1;
  std::atomic<int> accepted{0};
  std::atomic<bool> stop{false};
  std::thread t;
  explicit Refuser(int port) {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    EXPECT_EQ(::listen(fd, 16), 0);
    t = std::thread([this] {
      while (!stop.load()) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 20) <= 0) continue;
        const int c = ::accept(fd, nullptr, nullptr);
        if (c >= 0) {
          accepted.fetch_add(1);
          ::close(c);
        }
      }
    });
  }
  ~Refuser() {
    stop.store(true);
    t.join();
    ::close(fd);
  }
};

TEST(ResilienceTest, TheCircuitOpensAfterFailuresFailsWithoutDialingAndTriesAgainLater) {
  auto s = std::make_unique<Served>();
  const std::string address = s->address;
  ConnectOptions o;
  o.breaker.failures = 2;
  o.breaker.open_ms = 300;
  auto c = Connect(address, o);
  EXPECT_EQ(Call(*c, "get").value(), "ok");
  s.reset();  // the server goes; something else takes its port and hangs up on every connection
  Refuser refuser(std::stoi(address.substr(address.rfind(':') + 1)));
  for (int i = 0; i < 2; ++i) {
    const Code code = Call(*c, "get").status().code();
    EXPECT_TRUE(code == Code::kUnavailable || code == Code::kClosed || code == Code::kPeerDead) << CodeName(code);
  }
  const int dialed = refuser.accepted.load();
  EXPECT_GE(dialed, 1);  // the second failure was a dial (the first may have found the old connection dead)
  auto open = Call(*c, "get");
  EXPECT_EQ(open.status().code(), Code::kUnavailable);
  EXPECT_NE(open.status().message().find("circuit open"), std::string::npos) << open.status().ToString();
  EXPECT_EQ(refuser.accepted.load(), dialed);  // failed at once: no connection attempted
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  EXPECT_NE(Call(*c, "get").status().message().find("circuit open"), 0u);  // the trial call dials...
  EXPECT_EQ(refuser.accepted.load(), dialed + 1);
  EXPECT_NE(Call(*c, "get").status().message().find("circuit open"), std::string::npos);  // ...fails, and opens it again
  EXPECT_EQ(refuser.accepted.load(), dialed + 1);
}

}  // namespace
}  // namespace weft::rpc
