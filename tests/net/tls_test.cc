// TLS streams (weft/net/tls.h) and their record layer (src/net/internal/tls_records.h): bytes
// both ways across record boundaries and key updates; the same bytes with OpenSSL's own record
// layer on the other end (key updates asked by it and sent to it, close_notify); and through a
// relay that tampers with records: a flipped bit, a replayed record, a record in the clear, an
// absurd length, each ending the connection with nothing delivered (the untouched relay is the
// control).
#include "weft/net/tls.h"

#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <thread>

#include "net/internal/tls_records.h"
#include "support/host_keys.h"
#include "support/temp_dir.h"

namespace weft::net {
namespace {

using weft::testing::MakeHostKey;
using weft::testing::TempDir;

std::string Pattern(size_t n, uint32_t seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) {
    seed = seed * 1103515245 + 12345;
    s[i] = static_cast<char>(seed >> 16);
  }
  return s;
}

struct Keys {
  TempDir dir{"weft-tls-test"};
  std::string server, client, server_id, client_id;
  Keys() {
    MakeHostKey(dir, "server.key", &server, &server_id);
    MakeHostKey(dir, "client.key", &client, &client_id);
  }
};

// A listener on 127.0.0.1 and its port.
struct Listener {
  int fd = -1;
  uint16_t port = 0;
  Listener() { fd = Listen(HostPort{"127.0.0.1", 0}, 16, &port).value(); }
  ~Listener() { ::close(fd); }
  int Accept() const {
    pollfd p{fd, POLLIN, 0};
    ::poll(&p, 1, 10'000);
    return ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
  }
};

struct Pair {
  std::unique_ptr<Stream> client, server;
};

// A TLS connection between two TlsContexts, through `via` (a port to dial instead of the
// server's, whose other end `relay` connects to the server) or directly.
Pair Connect(const Keys& k, const Listener& at, uint16_t via = 0) {
  auto sctx = TlsContext::Create({.key_file = k.server, .trusted_keys = {k.client_id}}, true).value();
  auto cctx = TlsContext::Create({.key_file = k.client, .trusted_keys = {k.server_id}}, false).value();
  Pair p;
  std::thread accept([&] {
    auto s = sctx->Accept(at.Accept(), Deadline::AfterMs(10'000));
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    if (s.ok()) p.server = std::move(*s);
  });
  auto fd = Dial(HostPort{"127.0.0.1", via != 0 ? via : at.port}, Deadline::AfterMs(10'000));
  EXPECT_TRUE(fd.ok());
  auto c = cctx->Connect(*fd, Deadline::AfterMs(10'000));
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  if (c.ok()) p.client = std::move(*c);
  accept.join();
  return p;
}

Status WriteAll(Stream& s, const std::string& bytes) {
  const ByteView piece = AsBytes(bytes);
  return s.Write({&piece, 1}, Deadline::AfterMs(10'000));
}

// Reads exactly n bytes, `chunk` at most per read.
Result<std::string> ReadExactly(Stream& s, size_t n, size_t chunk) {
  std::string out(n, '\0');
  size_t got = 0;
  while (got < n) {
    auto r = s.ReadSome(out.data() + got, std::min(chunk, n - got), Deadline::AfterMs(10'000));
    if (!r.ok()) return r.status();
    got += *r;
  }
  return out;
}

TEST(TlsTest, BytesBothWaysAcrossRecordSizesAndKeyUpdates) {
  Keys k;
  Listener at;
  Pair p = Connect(k, at);
  ASSERT_TRUE(p.client && p.server);
  EXPECT_EQ(p.client->peer_identity(), k.server_id);
  EXPECT_EQ(p.server->peer_identity(), k.client_id);
  // Both sides update their sending keys every 3 records: a key the two sides disagree on
  // fails the next record.
  internal::SetRekeyRecords(*p.client, 3);
  internal::SetRekeyRecords(*p.server, 3);
  uint32_t seed = 1;
  for (size_t size : {size_t{1}, size_t{100}, size_t{16383}, size_t{16384}, size_t{16385}, size_t{1} << 20}) {
    for (size_t chunk : {size_t{7}, size_t{1} << 20}) {
      const std::string there = Pattern(size, seed++), back = Pattern(size, seed++);
      std::thread writer([&] { EXPECT_TRUE(WriteAll(*p.client, there).ok()); });
      auto got = ReadExactly(*p.server, size, chunk);
      writer.join();
      ASSERT_TRUE(got.ok()) << got.status().ToString();
      EXPECT_TRUE(*got == there) << size << " bytes read " << chunk << " at a time";
      std::thread writer2([&] { EXPECT_TRUE(WriteAll(*p.server, back).ok()); });
      auto got2 = ReadExactly(*p.client, size, chunk);
      writer2.join();
      ASSERT_TRUE(got2.ok()) << got2.status().ToString();
      EXPECT_TRUE(*got2 == back);
    }
  }
  // Several pieces of one write arrive as one run of bytes.
  const std::string a = "head", b = Pattern(40'000, 9), c = "tail";
  const ByteView pieces[3] = {AsBytes(a), AsBytes(b), AsBytes(c)};
  std::thread writer([&] { EXPECT_TRUE(p.client->Write(pieces, Deadline::AfterMs(10'000)).ok()); });
  auto got = ReadExactly(*p.server, a.size() + b.size() + c.size(), 1 << 20);
  writer.join();
  ASSERT_TRUE(got.ok());
  EXPECT_TRUE(*got == a + b + c);
  // The end: the peer's close is kUnavailable, not data.
  p.client.reset();
  char byte;
  auto end = p.server->ReadSome(&byte, 1, Deadline::AfterMs(10'000));
  EXPECT_EQ(end.status().code(), Code::kUnavailable) << end.status().ToString();
}

// OpenSSL's own TLS client (its record layer, blocking) on a socket, with `k`'s client key.
struct OpenSslClient {
  SSL_CTX* ctx = nullptr;
  SSL* ssl = nullptr;
  int fd = -1;
  OpenSslClient(const Keys& k, uint16_t port) {
    ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    const std::string pem = SelfSignedCertificate(k.client).value();
    BIO* b = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
    X509* cert = PEM_read_bio_X509(b, nullptr, nullptr, nullptr);
    BIO_free(b);
    FILE* f = std::fopen(k.client.c_str(), "r");
    EVP_PKEY* key = PEM_read_PrivateKey(f, nullptr, nullptr, nullptr);
    std::fclose(f);
    EXPECT_EQ(SSL_CTX_use_certificate(ctx, cert), 1);
    EXPECT_EQ(SSL_CTX_use_PrivateKey(ctx, key), 1);
    X509_free(cert);
    EVP_PKEY_free(key);
    fd = Dial(HostPort{"127.0.0.1", port}, Deadline::AfterMs(10'000)).value();
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);  // OpenSSL's blocking calls
    ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
  }
  ~OpenSslClient() {
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    ::close(fd);
  }
  bool Write(const std::string& s) {
    size_t put = 0;
    return SSL_write_ex(ssl, s.data(), s.size(), &put) == 1 && put == s.size();
  }
  std::string Read(size_t n) {
    std::string out(n, '\0');
    size_t got = 0;
    while (got < n) {
      size_t r = 0;
      if (SSL_read_ex(ssl, out.data() + got, n - got, &r) != 1) return out.substr(0, got);
      got += r;
    }
    return out;
  }
};

TEST(TlsTest, SpeaksWithOpenSslsOwnRecordLayerThroughKeyUpdatesBothWays) {
  Keys k;
  Listener at;
  auto sctx = TlsContext::Create({.key_file = k.server, .trusted_keys = {k.client_id}}, true).value();
  OpenSslClient peer(k, at.port);
  std::unique_ptr<Stream> server;
  std::thread accept([&] {
    auto s = sctx->Accept(at.Accept(), Deadline::AfterMs(10'000));
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    if (s.ok()) server = std::move(*s);
  });
  const int connected = SSL_connect(peer.ssl);
  accept.join();
  ASSERT_EQ(connected, 1);
  ASSERT_TRUE(server);
  EXPECT_EQ(server->peer_identity(), k.client_id);

  ASSERT_TRUE(peer.Write("hello"));
  auto got = ReadExactly(*server, 5, 64);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(*got, "hello");
  ASSERT_TRUE(WriteAll(*server, "world").ok());
  EXPECT_EQ(peer.Read(5), "world");

  // OpenSSL updates its key and asks us to update ours: we read under its new key, and our
  // next records (a KeyUpdate first) are read by it under ours.
  ASSERT_EQ(SSL_key_update(peer.ssl, SSL_KEY_UPDATE_REQUESTED), 1);
  ASSERT_TRUE(peer.Write("after the update"));
  got = ReadExactly(*server, 16, 64);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(*got, "after the update");
  ASSERT_TRUE(WriteAll(*server, "answered").ok());
  EXPECT_EQ(peer.Read(8), "answered");

  // We update our key every 2 records, far past a megabyte: OpenSSL follows each update.
  internal::SetRekeyRecords(*server, 2);
  const std::string big = Pattern(size_t{3} << 20, 5);
  std::thread writer([&] { EXPECT_TRUE(WriteAll(*server, big).ok()); });
  EXPECT_TRUE(peer.Read(big.size()) == big);
  writer.join();
  const std::string up = Pattern(size_t{2} << 20, 6);
  std::thread writer2([&] { EXPECT_TRUE(peer.Write(up)); });
  got = ReadExactly(*server, up.size(), 1 << 20);
  writer2.join();
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_TRUE(*got == up);

  // close_notify: the end of the stream, said by the peer.
  SSL_shutdown(peer.ssl);
  char byte;
  auto end = server->ReadSome(&byte, 1, Deadline::AfterMs(10'000));
  EXPECT_EQ(end.status().code(), Code::kUnavailable);
  EXPECT_NE(end.status().message().find("closed"), std::string::npos) << end.status().ToString();
}

// A relay between a client and the server: it passes the handshake through (its own thread),
// then the test moves each record itself and may alter it on the way.
class Relay {
 public:
  explicit Relay(uint16_t server_port) : server_port_(server_port) {
    thread_ = std::thread([this] { Run(); });
  }
  ~Relay() {
    Stop();
    ::close(a_);
    ::close(b_);
  }
  uint16_t port() const { return in_.port; }
  // Ends the handshake's pass-through (call once both ends have their streams).
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  // The next record the client sent, whole.
  std::string TakeRecord() {
    std::string rec = Take(5);
    if (rec.size() < 5) return rec;
    const size_t len = (size_t{static_cast<uint8_t>(rec[3])} << 8) | static_cast<uint8_t>(rec[4]);
    return rec + Take(len);
  }
  void Give(const std::string& bytes) { ASSERT_EQ(::send(b_, bytes.data(), bytes.size(), MSG_NOSIGNAL), static_cast<ssize_t>(bytes.size())); }

 private:
  void Run() {
    a_ = in_.Accept();
    b_ = Dial(HostPort{"127.0.0.1", server_port_}, Deadline::AfterMs(10'000)).value();
    char buf[65536];
    while (!stop_) {
      pollfd p[2] = {{a_, POLLIN, 0}, {b_, POLLIN, 0}};
      if (::poll(p, 2, 10) <= 0) continue;
      for (int i = 0; i < 2; ++i) {
        if ((p[i].revents & POLLIN) == 0) continue;
        const ssize_t n = ::recv(p[i].fd, buf, sizeof(buf), 0);
        if (n > 0) ::send(p[1 - i].fd, buf, static_cast<size_t>(n), MSG_NOSIGNAL);
      }
    }
  }
  std::string Take(size_t n) {
    std::string out(n, '\0');
    size_t got = 0;
    while (got < n) {
      pollfd p{a_, POLLIN, 0};
      if (::poll(&p, 1, 10'000) <= 0) break;
      const ssize_t r = ::recv(a_, out.data() + got, n - got, 0);
      if (r <= 0) break;
      got += static_cast<size_t>(r);
    }
    out.resize(got);
    return out;
  }

  Listener in_;
  uint16_t server_port_;
  int a_ = -1, b_ = -1;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// What the server reads after the relay hands it `altered` (made from the client's next
// record carrying "secret"); then what it reads after that.
struct Outcome {
  Status first, second;
  std::string data;
};
template <typename Alter>
Outcome Tamper(Alter alter) {
  Keys k;
  Listener at;
  Relay relay(at.port);
  Pair p = Connect(k, at, relay.port());
  relay.Stop();
  Outcome o;
  if (!p.client || !p.server) {
    o.first = Status(Code::kInternal, "no connection");
    return o;
  }
  EXPECT_TRUE(WriteAll(*p.client, "secret").ok());
  relay.Give(alter(relay.TakeRecord()));
  char buf[64];
  auto r = p.server->ReadSome(buf, sizeof(buf), Deadline::AfterMs(5'000));
  o.first = r.status();
  if (r.ok()) {
    o.data.assign(buf, *r);
    auto again = p.server->ReadSome(buf, sizeof(buf), Deadline::AfterMs(300));
    o.second = again.status();
  }
  return o;
}

TEST(TlsHostileTest, UntouchedRecordsPassTheRelay) {  // the control for the tests below
  Outcome o = Tamper([](std::string rec) { return rec; });
  ASSERT_TRUE(o.first.ok()) << o.first.ToString();
  EXPECT_EQ(o.data, "secret");
  EXPECT_EQ(o.second.code(), Code::kTimeout);  // nothing more came
}

TEST(TlsHostileTest, AFlippedBitEndsTheConnectionWithNothingDelivered) {
  for (size_t at : {size_t{5}, size_t{11}, size_t{27}}) {  // the ciphertext, the content type, the tag
    Outcome o = Tamper([at](std::string rec) {
      if (at < rec.size()) rec[at] ^= 0x01;
      return rec;
    });
    EXPECT_EQ(o.first.code(), Code::kUnavailable) << at;
    EXPECT_NE(o.first.message().find("authentication"), std::string::npos) << o.first.ToString();
    EXPECT_TRUE(o.data.empty());
  }
}

TEST(TlsHostileTest, AReplayedRecordEndsTheConnection) {
  Outcome o = Tamper([](std::string rec) { return rec + rec; });
  ASSERT_TRUE(o.first.ok()) << o.first.ToString();  // the first copy is the real one
  EXPECT_EQ(o.data, "secret");
  EXPECT_EQ(o.second.code(), Code::kUnavailable);
  EXPECT_NE(o.second.message().find("authentication"), std::string::npos) << o.second.ToString();
}

TEST(TlsHostileTest, RecordsInTheClearOrOfAbsurdLengthEndTheConnection) {
  // An alert in the clear (type 21), a change_cipher_spec, an old version, a length past 2^14 + 256.
  for (std::string forged : {std::string("\x15\x03\x03\x00\x02\x02\x28", 7), std::string("\x14\x03\x03\x00\x01\x01", 6),
                             std::string("\x17\x03\x01\x00\x20", 5), std::string("\x17\x03\x03\xff\xff", 5),
                             std::string("\x17\x03\x03\x00\x05hello", 10)}) {
    Outcome o = Tamper([&](const std::string& rec) { return forged + rec; });
    EXPECT_EQ(o.first.code(), Code::kUnavailable) << o.first.ToString();
    EXPECT_TRUE(o.data.empty());
  }
}

TEST(TlsRecordsTest, AHandshakeMessageSplitAcrossRecordsAndAnUnexpectedOne) {
  uint8_t secret_a[32], secret_b[32];
  for (int i = 0; i < 32; ++i) secret_a[i] = static_cast<uint8_t>(i), secret_b[i] = static_cast<uint8_t>(100 + i);
  using internal::RecordLayer;
  auto reader = RecordLayer::Create(internal::kAes128GcmSha256, ByteView(secret_a, 32), ByteView(secret_b, 32)).value();
  // A NewSessionTicket (ignored) split over two records, then a KeyUpdate.
  const uint8_t ticket[8] = {4, 0, 0, 4, 1, 2, 3, 4};
  EXPECT_EQ(reader->Absorb(internal::kHandshake, ByteView(ticket, 3)).value(), RecordLayer::Event::kNone);
  EXPECT_EQ(reader->Absorb(internal::kHandshake, ByteView(ticket + 3, 5)).value(), RecordLayer::Event::kNone);
  const uint8_t update[5] = {24, 0, 0, 1, 1};
  EXPECT_FALSE(reader->update_due());
  EXPECT_EQ(reader->Absorb(internal::kHandshake, ByteView(update, 5)).value(), RecordLayer::Event::kNone);
  EXPECT_TRUE(reader->update_due());  // asked for
  const uint8_t update_then_more[6] = {24, 0, 0, 1, 0, 4};
  EXPECT_EQ(reader->Absorb(internal::kHandshake, ByteView(update_then_more, 6)).status().code(), Code::kCorrupt);
  const uint8_t certificate_request[5] = {13, 0, 0, 1, 0};
  auto fresh = RecordLayer::Create(internal::kAes128GcmSha256, ByteView(secret_a, 32), ByteView(secret_b, 32)).value();
  EXPECT_EQ(fresh->Absorb(internal::kHandshake, ByteView(certificate_request, 5)).status().code(), Code::kCorrupt);
  const uint8_t huge[4] = {4, 0xff, 0xff, 0xff};
  EXPECT_EQ(fresh->Absorb(internal::kHandshake, ByteView(huge, 4)).status().code(), Code::kCorrupt);
  const uint8_t close_notify[2] = {1, 0}, unknown_ca[2] = {2, 48};
  EXPECT_EQ(fresh->Absorb(internal::kAlert, ByteView(close_notify, 2)).value(), RecordLayer::Event::kClosed);
  EXPECT_EQ(fresh->Absorb(internal::kAlert, ByteView(unknown_ca, 2)).status().code(), Code::kUnauthenticated);
  // The wrong secret length and an unknown suite.
  EXPECT_FALSE(RecordLayer::Create(internal::kAes256GcmSha384, ByteView(secret_a, 32), ByteView(secret_b, 32)).ok());
  EXPECT_FALSE(RecordLayer::Create(0x1304, ByteView(secret_a, 32), ByteView(secret_b, 32)).ok());
}

}  // namespace
}  // namespace weft::net
