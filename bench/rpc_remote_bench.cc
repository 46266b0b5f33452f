// `weft bench rpc`, rows with via=tcp: resources across hosts (here on loopback), with TLS
// (field tls true) and without. Case `call`: a small call's round trip; beside it the floor, the
// same request and reply bytes over a plain TCP socket pair (via=tcp). Case `bulk`: 1 GB moved to
// the resource (bytes/s); floors: the same bytes over a plain TCP socket pair, and for TLS the
// AEAD cipher's own speed on one core (AES-128-GCM in 16 KiB records, as TLS sends them); gRPC
// on loopback moves the same gigabyte in one message.
#include <openssl/evp.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <string>
#include <vector>

#include "bench_util.h"
#include "grpc_client.h"
#include "links.h"
#include "suites.h"
#include "support/temp_dir.h"
#include "weft/core/clock.h"
#include "weft/net/keys.h"
#include "weft/rpc/rpc.h"

namespace weft::bench {
namespace {

constexpr size_t kBulkBytes = size_t{1} << 30;
constexpr size_t kPiece = size_t{1} << 20;  // the floor's reads and writes, as Weft's data frames

struct Ctl {
  alignas(64) std::atomic<uint64_t> port;
  alignas(64) std::atomic<uint64_t> stop;
};

rpc::Contract Remote() {
  return rpc::ContractBuilder("bench.remote", "Remote", "1")
      .Write<int64_t(int64_t)>("increment")
      .Method("sink", rpc::Access::kRead, {"bytes"}, "i64")
      .Build()
      .value();
}

rpc::Resource RemoteResource(int64_t* value) {
  rpc::Resource r;
  r.contract = Remote();
  r.handlers["increment"] = [value](const rpc::CallArgs& a) -> Result<std::string> {
    int64_t by;
    std::memcpy(&by, a.args[0].data(), 8);
    *value += by;
    return std::string(reinterpret_cast<const char*>(value), 8);
  };
  r.handlers["sink"] = [](const rpc::CallArgs& a) -> Result<std::string> {
    const int64_t n = static_cast<int64_t>(a.args[0].size());
    return std::string(reinterpret_cast<const char*>(&n), 8);
  };
  return r;
}

// Host keys for both sides, pinned to each other.
struct Keys {
  weft::testing::TempDir dir{"weft-bench-keys"};
  std::string server, client, server_id, client_id;
  Keys() {
    auto s = net::KeyPair::Generate().value(), c = net::KeyPair::Generate().value();
    server = dir / "server.key";
    client = dir / "client.key";
    s.Save(server).IgnoreError();
    c.Save(client).IgnoreError();
    server_id = s.id();
    client_id = c.id();
  }
};

rpc::TcpSecurity Security(const Keys& k, bool tls, bool server) {
  rpc::TcpSecurity t;
  t.plaintext = !tls;
  if (tls) {
    t.key_file = server ? k.server : k.client;
    t.trusted_keys = {server ? k.client_id : k.server_id};
  }
  return t;
}

Row TcpRow(const std::string& case_name, const std::string& transport, uint64_t bytes, bool tls) {
  Row r = NewRow("rpc", case_name, transport, bytes, "");
  r.extra["via"] = "tcp";
  r.extra["lang"] = "cpp";
  if (transport == "weft") r.extra["tls"] = tls ? "true" : "false";
  return r;
}

// A Weft server in another process listening on tcp://127.0.0.1:<any>; `body` runs against a
// client connected to it.
template <typename Body>
bool WithServer(const Keys& k, bool tls, Body body) {
  const std::string id = "bench-tcp-" + std::to_string(::getpid());
  auto* c = static_cast<Ctl*>(SharedAlloc(sizeof(Ctl)));
  pid_t child = Fork([&] {
    rpc::ServerOptions o;
    o.listen = {"tcp://127.0.0.1:0"};
    o.tcp = Security(k, tls, true);
    auto server = rpc::Server::Create(id, o);
    if (!server.ok()) {
      std::fprintf(stderr, "weft bench: tcp server: %s\n", server.status().ToString().c_str());
      c->port.store(1);
      return 1;
    }
    int64_t value = 0;
    if (!(*server)->Register("remote", RemoteResource(&value)).ok() || !(*server)->Start().ok()) return 2;
    const std::string a = (*server)->addresses().at(1);
    c->port.store(std::stoull(a.substr(a.rfind(':') + 1)));
    while (c->stop.load() == 0) ::usleep(1000);
    return 0;
  });
  WaitAtLeast(c->port, 1);
  bool ok = false;
  if (c->port.load() > 1) {
    rpc::ConnectOptions co;
    co.tcp = Security(k, tls, false);
    auto client = rpc::Client::Connect(Remote(), "remote", "tcp://127.0.0.1:" + std::to_string(c->port.load()),
                                       Deadline::AfterMs(10'000), co);
    if (client.ok()) {
      ok = body(**client);
    } else {
      std::fprintf(stderr, "weft bench: tcp client: %s\n", client.status().ToString().c_str());
    }
  }
  c->stop.store(1);
  Join(child);
  SharedFree(c, sizeof(Ctl));
  return ok;
}

Row CallTcp(const Keys& k, bool tls, int warm, int n) {
  std::vector<int64_t> samples;
  WithServer(k, tls, [&](rpc::Client& client) {
    const int64_t one = 1;
    const ByteView arg(reinterpret_cast<const uint8_t*>(&one), 8);
    for (int i = 0; i < warm + n; ++i) {
      const int64_t t0 = MonotonicNs();
      auto r = client.Call("increment", {arg}, Deadline::AfterMs(10'000));
      const int64_t t1 = MonotonicNs();
      if (!r.ok()) return false;
      if (i >= warm) samples.push_back(t1 - t0);
    }
    return true;
  });
  Row r = TcpRow("call", "weft", 8, tls);
  SetLatency(r, samples);
  r.note = tls ? "tcp:// on 127.0.0.1, TLS 1.3 (AES-128-GCM), keys pinned both ways; server in another process"
               : "tcp:// on 127.0.0.1, plaintext; server in another process";
  return r;
}

// The same request and reply bytes as Weft's small call (a 40-byte header, its 8-byte count and
// 16-byte value descriptor, the i64: 72 bytes each way) over a TCP socket pair, polling or blocking.
Row CallTcpFloor(const std::string& mode, int warm, int n) {
  std::vector<int64_t> samples = CounterRoundTrips("tcp", mode == "spin", 72, 64, warm, n);
  Row r = TcpRow("call", "floor", 8, false);
  r.mode = mode;
  SetLatency(r, samples);
  r.note = std::string("the same bytes and handler over a TCP socket pair on 127.0.0.1, no library, ") +
           (mode == "spin" ? "both sides polling" : "blocking reads");
  return r;
}

Row BulkTcp(const Keys& k, bool tls, int reps) {
  std::vector<char> data(kBulkBytes, '\1');
  int64_t elapsed = 0;
  int done = 0;
  WithServer(k, tls, [&](rpc::Client& client) {
    const ByteView arg(reinterpret_cast<const uint8_t*>(data.data()), data.size());
    for (int i = 0; i < reps + 1; ++i) {
      const int64_t t0 = MonotonicNs();
      auto r = client.Call("sink", {arg}, Deadline::AfterMs(600'000));
      const int64_t t1 = MonotonicNs();
      if (!r.ok()) return false;
      if (i == 0) continue;  // warm-up
      elapsed += t1 - t0;
      ++done;
    }
    return true;
  });
  Row r = TcpRow("bulk", "weft", kBulkBytes, tls);
  SetThroughput(r, static_cast<uint64_t>(done), kBulkBytes, elapsed);
  r.note = std::string("1 GB argument to a resource in another process over tcp:// on 127.0.0.1") +
           (tls ? ", TLS 1.3 (AES-128-GCM)" : ", plaintext") + ": received into a buffer of its own";
  return r;
}

Row BulkTcpFloor(int reps) {
  LinkPair lp = MakeLinkPair("tcp", false);
  pid_t child = Fork([&] {
    auto link = lp.child();
    auto in = rpc::Buffer::Reserve(kBulkBytes);  // the memory Weft receives into, faulted in once
    in->Resize(kBulkBytes);
    std::memset(in->data(), 0, kBulkBytes);
    for (int i = 0; i < reps + 1; ++i) {
      for (size_t off = 0; off < kBulkBytes; off += kPiece) {
        if (!link->Recv(in->data() + off, kPiece)) return 1;
      }
      const uint64_t n = in->size();
      if (!link->Send(&n, 8)) return 1;
    }
    return 0;
  });
  auto link = lp.parent();
  std::vector<char> out(kBulkBytes, '\1');
  int64_t elapsed = 0;
  int done = 0;
  for (int i = 0; i < reps + 1; ++i) {
    uint64_t ack = 0;
    const int64_t t0 = MonotonicNs();
    bool sent = true;
    for (size_t off = 0; off < kBulkBytes && sent; off += kPiece) sent = link->Send(out.data() + off, kPiece);
    if (!sent || !link->Recv(&ack, 8)) break;
    const int64_t t1 = MonotonicNs();
    if (i == 0) continue;
    elapsed += t1 - t0;
    ++done;
  }
  link.reset();
  Join(child);
  lp.cleanup();
  Row r = TcpRow("bulk", "floor", kBulkBytes, false);
  SetThroughput(r, static_cast<uint64_t>(done), kBulkBytes, elapsed);
  r.note = "1 GB over a TCP socket pair on 127.0.0.1 in 1 MiB reads and writes, into a buffer the receiver reuses "
           "(huge pages, faulted in), no library";
  return r;
}

// AES-128-GCM over 1 GB in 16 KiB records on one core: what TLS can move at most per core.
Row AeadFloor() {
  std::vector<uint8_t> in(kBulkBytes, 1), out(16 << 10);
  uint8_t key[16] = {1}, iv[12] = {2}, tag[16];
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  const int64_t t0 = MonotonicNs();
  for (size_t off = 0; off < in.size(); off += out.size()) {
    int len = 0;
    EVP_EncryptInit_ex(ctx, EVP_aes_128_gcm(), nullptr, key, iv);
    EVP_EncryptUpdate(ctx, out.data(), &len, in.data() + off, static_cast<int>(out.size()));
    EVP_EncryptFinal_ex(ctx, out.data() + len, &len);
    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, tag);
    ++iv[11];
  }
  const int64_t t1 = MonotonicNs();
  EVP_CIPHER_CTX_free(ctx);
  Row r = TcpRow("bulk", "floor", kBulkBytes, true);
  r.extra["via"] = "aead";
  SetThroughput(r, 1, kBulkBytes, t1 - t0);
  r.note = "AES-128-GCM (OpenSSL EVP) encrypting 1 GB in 16 KiB records on one core: TLS's own ceiling per core";
  return r;
}

Row BulkGrpc(int reps) {
  const int port = FreePort();
  const std::string server = std::string(WEFT_BINARY_DIR) + "/bench/weft_grpc_server";
  std::vector<int64_t> samples;
  const pid_t pid = StartProcess({server, std::to_string(port)}, "ready");
  if (pid > 0) {
    samples = GrpcBulkSamples(port, kBulkBytes, reps + 1);
    StopProcess(pid);
  }
  int64_t elapsed = 0;
  for (size_t i = 1; i < samples.size(); ++i) elapsed += samples[i];
  Row r = TcpRow("bulk", "grpc", kBulkBytes, false);
  SetThroughput(r, samples.empty() ? 0 : samples.size() - 1, kBulkBytes, elapsed);
  r.note = samples.empty() ? "skipped: the gRPC server did not start"
                           : "Debian libgrpc++: 1 GB in one bytes message, insecure channel on 127.0.0.1";
  return r;
}

}  // namespace

void AddRemoteRpcRows(Results& res, bool quick, const std::function<bool(const char*)>& want) {
  static Keys keys;  // made once per run
  const int n = quick ? 2000 : 20'000;
  if (want("call")) {
    res.Add(CallTcp(keys, false, 500, n));
    res.Add(CallTcp(keys, true, 500, n));
    res.Add(CallTcpFloor("spin", 500, n));
    res.Add(CallTcpFloor("parked", 500, n));
  }
  if (want("bulk")) {
    const int reps = quick ? 1 : 3;
    res.Add(BulkTcp(keys, false, reps));
    res.Add(BulkTcp(keys, true, reps));
    res.Add(BulkTcpFloor(reps));
    res.Add(AeadFloor());
    res.Add(BulkGrpc(reps));
  }
}

}  // namespace weft::bench
