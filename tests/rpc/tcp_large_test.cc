// A 4 GB value to a resource over tcp:// and back, byte-exact: above every 32-bit length, sent
// in data frames straight from the caller's memory and received into buffers of their own.
// Runs alone (it needs about 16 GB at its peak) and not under ThreadSanitizer (its shadow
// memory would be four times that).
#include <gtest/gtest.h>

#include <cstring>

#include "weft/rpc/rpc.h"

namespace weft::rpc {
namespace {

TEST(TcpLargeTest, FourGigabytesRoundTripByteExact) {
  Contract c = ContractBuilder("test.large", "Large", "1").Method("echo", Access::kRead, {"bytes"}, "bytes").Build().value();
  Resource r;
  r.contract = c;
  r.handlers["echo"] = [](const CallArgs& a) -> Result<std::string> {
    return std::string(reinterpret_cast<const char*>(a.args[0].data()), a.args[0].size());
  };
  ServerOptions o;
  o.listen = {"tcp://127.0.0.1:0"};
  o.tcp.plaintext = true;
  auto server = Server::Create("tcp-large-" + std::to_string(::getpid()), o).value();
  ASSERT_TRUE(server->Register("large", std::move(r)).ok());
  ASSERT_TRUE(server->Start().ok());
  ConnectOptions co;
  co.tcp.plaintext = true;
  auto client = Client::Connect(c, "large", server->addresses().at(1), Deadline::AfterMs(10'000), co).value();
  const size_t n = (size_t{4} << 30) + 12345;  // past 2^32: every length and offset is 64-bit
  std::string in(n, '\0');
  uint64_t x = 0x9E3779B97F4A7C15ull;
  for (size_t i = 0; i + 8 <= n; i += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    std::memcpy(in.data() + i, &x, 8);
  }
  CallOptions call;
  call.deadline = Deadline::AfterMs(1'200'000);
  auto out = client->Invoke("echo", {AsBytes(in)}, call);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  ASSERT_NE(out->buffer, nullptr);  // received by value into a buffer of its own, not copied again
  ASSERT_EQ(out->bytes().size(), n);
  EXPECT_EQ(std::memcmp(out->bytes().data(), in.data(), n), 0);
  EXPECT_EQ(std::memcmp(out->bytes().data() + n - 4096, in.data() + n - 4096, 4096), 0);
}

}  // namespace
}  // namespace weft::rpc
