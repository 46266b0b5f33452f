// Tunnels over NATS (weft/net/nats_tunnel.h) through a real nats-server: bytes both ways, whole
// and in order, far past the flow-control window; end of file both ways; nobody listening;
// forged and out-of-order data from a third party on NATS breaks the tunnel instead of
// reaching the socket (with a negative control: the right offset is taken); a silent peer.
#include "weft/net/nats_tunnel.h"

#include <gtest/gtest.h>
#include <nats/nats.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <thread>

#include "support/servers.h"

namespace weft::net {
namespace {

using weft::testing::NatsServer;

std::shared_ptr<NatsConnection> Connect(const NatsServer& s) {
  NatsOptions o;
  o.servers = {"nats://127.0.0.1:" + std::to_string(s.port())};
  return std::shared_ptr<NatsConnection>(NatsConnection::Connect(o).value());
}

bool WriteAll(int fd, const char* p, size_t n) {
  while (n > 0) {
    const ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

// Reads until end of file or `ms` of silence.
std::string ReadAll(int fd, int ms = 10'000) {
  std::string out;
  char buf[65536];
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, ms) <= 0) break;
    const ssize_t r = ::recv(fd, buf, sizeof(buf), 0);
    if (r <= 0) break;
    out.append(buf, static_cast<size_t>(r));
  }
  return out;
}

std::string Pattern(size_t n) {
  std::string s(n, '\0');
  uint32_t x = 12345;
  for (size_t i = 0; i < n; ++i) {
    x = x * 1103515245 + 12345;
    s[i] = static_cast<char>(x >> 24);
  }
  return s;
}

struct Pair {
  NatsServer nats;
  std::mutex mu;  // (before the tunnels: their callbacks use it until they are gone)
  std::vector<int> accepted;
  std::unique_ptr<NatsTunnels> server, client;
  std::string subject = "weft.test.tunnel";
  Pair() {
    EXPECT_TRUE(nats.up());
    server = NatsTunnels::Create(Connect(nats)).value();
    client = NatsTunnels::Create(Connect(nats)).value();
    EXPECT_TRUE(server->Listen(subject, [this](int fd) {
                        std::lock_guard<std::mutex> g(mu);
                        accepted.push_back(fd);
                      }).ok());
  }
  int Accepted() {
    for (int i = 0; i < 500; ++i) {
      {
        std::lock_guard<std::mutex> g(mu);
        if (!accepted.empty()) {
          const int fd = accepted.front();
          accepted.erase(accepted.begin());
          return fd;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return -1;
  }
};

TEST(NatsTunnelTest, BytesBothWaysPastTheWindowThenEndOfFile) {
  Pair p;
  const int c = p.client->Dial(p.subject, Deadline::AfterMs(5000)).value();
  const int s = p.Accepted();
  ASSERT_GE(s, 0);
  // 3 windows and a bit each way at once: flow control, not buffering, carries them.
  const std::string up = Pattern(3 * NatsTunnels::kWindow + 12345);
  const std::string down = up.substr(777) + "tail";
  std::string got_up, got_down;
  std::thread reader([&] { got_up = ReadAll(s); });
  std::thread writer([&] {
    EXPECT_TRUE(WriteAll(s, down.data(), down.size()));
    ::shutdown(s, SHUT_WR);
  });
  EXPECT_TRUE(WriteAll(c, up.data(), up.size()));
  ::shutdown(c, SHUT_WR);  // the tunnel closes: the other side reads end of file after the last byte
  got_down = ReadAll(c);
  reader.join();
  writer.join();
  EXPECT_TRUE(got_up == up) << got_up.size() << " of " << up.size();
  EXPECT_TRUE(got_down == down) << got_down.size() << " of " << down.size();
  ::close(c);
  ::close(s);
  for (int i = 0; i < 300 && (p.client->open() + p.server->open()) > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(p.client->open(), 0u);
  EXPECT_EQ(p.server->open(), 0u);
}

TEST(NatsTunnelTest, NobodyListeningIsUnavailableAndBadSubjectsAreRefused) {
  Pair p;
  auto r = p.client->Dial("weft.test.nobody", Deadline::AfterMs(3000));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnavailable) << r.status().ToString();
  EXPECT_EQ(p.client->Dial("weft.*", Deadline::AfterMs(100)).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(p.client->Dial("a..b", Deadline::AfterMs(100)).status().code(), Code::kInvalidArgument);
  EXPECT_FALSE(ValidTunnelSubject(">"));
  EXPECT_FALSE(ValidTunnelSubject(std::string(300, 'a')));
  EXPECT_TRUE(ValidTunnelSubject("_INBOX.abc-1"));
  // A request that is not a tunnel's is answered with a refusal, and no tunnel opens.
  auto nc = Connect(p.nats);
  natsMsg* reply = nullptr;
  ASSERT_EQ(natsConnection_RequestString(&reply, nc->raw(), p.subject.c_str(), "weft-tunnel 1 a.>", 3000), NATS_OK);
  EXPECT_EQ(std::string(natsMsg_GetData(reply), 8), "refused:");
  natsMsg_Destroy(reply);
  EXPECT_EQ(p.server->open(), 0u);
}

// A third party on NATS that learns a tunnel's subject and publishes into it: data at the wrong
// offset breaks the tunnel (the socket reads end of file, never the forged bytes).
TEST(NatsTunnelTest, ForgedDataBreaksTheTunnelInsteadOfReachingTheSocket) {
  for (const bool forge_offset : {false, true}) {
    Pair p;
    // Watch the server's tunnel subjects go by: the attacker sees where the client sends.
    auto spy = Connect(p.nats);
    natsSubscription* sub = nullptr;
    ASSERT_EQ(natsConnection_SubscribeSync(&sub, spy->raw(), "_INBOX.>"), NATS_OK);
    ASSERT_EQ(natsConnection_Flush(spy->raw()), NATS_OK);
    const int c = p.client->Dial(p.subject, Deadline::AfterMs(5000)).value();
    const int s = p.Accepted();
    ASSERT_GE(s, 0);
    ASSERT_TRUE(WriteAll(c, "hello", 5));
    char buf[5];
    ASSERT_EQ(::recv(s, buf, 5, MSG_WAITALL), 5);
    // The client's data went to the server's subject: the first data message seen there.
    std::string server_subject;
    for (int i = 0; i < 20 && server_subject.empty(); ++i) {
      natsMsg* m = nullptr;
      if (natsSubscription_NextMsg(&m, sub, 1000) != NATS_OK) break;
      if (natsMsg_GetDataLength(m) == 14 && natsMsg_GetData(m)[0] == 'D') server_subject = natsMsg_GetSubject(m);
      natsMsg_Destroy(m);
    }
    ASSERT_FALSE(server_subject.empty());
    char forged[9 + 6];
    forged[0] = 'D';
    const uint64_t at = forge_offset ? 1000 : 5;  // 5: the next offset, as the real peer would send
    std::memcpy(forged + 1, &at, 8);
    std::memcpy(forged + 9, "FORGED", 6);
    ASSERT_EQ(natsConnection_Publish(spy->raw(), server_subject.c_str(), forged, sizeof(forged)), NATS_OK);
    natsConnection_Flush(spy->raw());
    const std::string got = ReadAll(s, 2000);
    if (forge_offset) {
      EXPECT_EQ(got, "");  // end of file: broken, nothing delivered
      EXPECT_LT(::send(c, "x", 1, MSG_NOSIGNAL) + ReadAll(c, 2000).size(), 2u);
    } else {
      EXPECT_EQ(got, "FORGED");  // control: a message at the right offset is taken (TLS above catches it)
    }
    natsSubscription_Destroy(sub);
    ::close(c);
    ::close(s);
  }
}

TEST(NatsTunnelTest, ClosingTheOtherEndsTunnelsEndsThisOne) {
  Pair p;
  const int c = p.client->Dial(p.subject, Deadline::AfterMs(5000)).value();
  const int s = p.Accepted();
  ASSERT_GE(s, 0);
  p.client.reset();  // its tunnels close, and say so
  EXPECT_EQ(ReadAll(s, 5000), "");
  ::close(c);
  ::close(s);
}

// A peer that opens a tunnel by hand and then says nothing (no data, no pings; a half-open
// connection, or a crashed host): the tunnel ends within the silence limit.
TEST(NatsTunnelTest, APeerThatGoesSilentIsDroppedAfterItsSilence) {
  Pair p;
  auto nc = Connect(p.nats);
  natsMsg* reply = nullptr;
  ASSERT_EQ(natsConnection_RequestString(&reply, nc->raw(), p.subject.c_str(), "weft-tunnel 1 weft.test.silent", 3000),
            NATS_OK);
  EXPECT_EQ(std::string(natsMsg_GetData(reply), 3), "ok ");
  natsMsg_Destroy(reply);
  const int s = p.Accepted();
  ASSERT_GE(s, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(p.server->open(), 1u);  // not dropped for a mere pause
  EXPECT_EQ(ReadAll(s, static_cast<int>(NatsTunnels::kSilentMs) + 5000), "");
  ::close(s);
  for (int i = 0; i < 300 && p.server->open() > 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(p.server->open(), 0u);
}

// A flood of opening requests from a third party on NATS: past the cap each is refused at once
// (no socket, no thread), and once the flood's tunnels end, tunnels open again.
TEST(NatsTunnelTest, AFloodOfOpeningRequestsIsRefusedPastTheCap) {
  NatsServer nats;
  ASSERT_TRUE(nats.up());
  constexpr size_t kCap = 16;
  std::mutex mu;  // (before the tunnels: their callback uses them until it is gone)
  std::vector<int> fds;
  auto server = NatsTunnels::Create(Connect(nats), kCap).value();
  ASSERT_TRUE(server->Listen("weft.test.flood", [&](int fd) {
                        std::lock_guard<std::mutex> g(mu);
                        fds.push_back(fd);
                      }).ok());
  auto flood = Connect(nats);
  int ok = 0, refused = 0;
  for (int i = 0; i < 200; ++i) {
    natsMsg* reply = nullptr;
    const std::string ask = "weft-tunnel 1 weft.test.flooder." + std::to_string(i);
    ASSERT_EQ(natsConnection_RequestString(&reply, flood->raw(), "weft.test.flood", ask.c_str(), 3000), NATS_OK);
    const std::string a(natsMsg_GetData(reply), static_cast<size_t>(natsMsg_GetDataLength(reply)));
    natsMsg_Destroy(reply);
    if (a.rfind("ok ", 0) == 0) ++ok;
    if (a.rfind("refused: ", 0) == 0) ++refused;
  }
  EXPECT_EQ(ok, static_cast<int>(kCap));
  EXPECT_EQ(refused, 200 - static_cast<int>(kCap));
  EXPECT_EQ(server->open(), kCap);
  {
    std::lock_guard<std::mutex> g(mu);
    for (int fd : fds) ::close(fd);  // the server's side gives them up
  }
  for (int i = 0; i < 500 && server->open() > 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(server->open(), 0u);
  auto client = NatsTunnels::Create(Connect(nats)).value();
  auto fd = client->Dial("weft.test.flood", Deadline::AfterMs(3000));
  ASSERT_TRUE(fd.ok()) << fd.status().ToString();  // served again
  ::close(*fd);
}

}  // namespace
}  // namespace weft::net
