// `weft bench rpc`: resource calls. Case `call`: the round trip of a small call (increment an
// i64 counter) from a client to a server in another process, over Weft's ipc:// transport and
// over a Unix socket carrying the same request and reply bytes with the same handler (no
// library: the least any socket RPC pays).
#include <unistd.h>

#include <cstdio>

#include <atomic>
#include <cstring>
#include <string>
#include <vector>

#include "bench_util.h"
#include "links.h"
#include "suites.h"
#include "weft/core/clock.h"
#include "weft/rpc/rpc.h"

namespace weft::bench {
namespace {

struct Ctl {
  alignas(64) std::atomic<uint64_t> ready;
  alignas(64) std::atomic<uint64_t> stop;
};

rpc::Contract Counter() {
  return rpc::ContractBuilder("bench.counter", "Counter", "1").Write<int64_t(int64_t)>("increment").Build().value();
}

Row CallRow(const std::string& transport, std::vector<int64_t>& samples, const std::string& mode = "") {
  Row r = NewRow("rpc", "call", transport, 8, mode);
  if (transport == "weft") r.extra["via"] = "ipc";
  r.extra["lang"] = "cpp";
  SetLatency(r, samples);
  return r;
}

Row CallWeft(int warm, int n) {
  const std::string id = "bench-" + std::to_string(::getpid());
  auto* c = static_cast<Ctl*>(SharedAlloc(sizeof(Ctl)));
  pid_t child = Fork([&] {
    auto server = rpc::Server::Create(id);
    if (!server.ok()) return 1;
    int64_t value = 0;
    rpc::Resource r;
    r.contract = Counter();
    r.handlers["increment"] = [&value](const rpc::CallArgs& a) -> Result<std::string> {
      int64_t by;
      std::memcpy(&by, a.args[0].data(), 8);
      value += by;
      return std::string(reinterpret_cast<const char*>(&value), 8);
    };
    if (!(*server)->Register("counter", std::move(r)).ok() || !(*server)->Start().ok()) return 2;
    c->ready.store(1);
    while (c->stop.load() == 0) ::usleep(1000);
    return 0;
  });
  WaitAtLeast(c->ready, 1);
  std::vector<int64_t> samples;
  auto client = rpc::Client::Connect(Counter(), "counter", "ipc://" + id, Deadline::AfterMs(10'000));
  if (client.ok()) {
    const int64_t one = 1;
    const ByteView arg(reinterpret_cast<const uint8_t*>(&one), 8);
    for (int i = 0; i < warm + n; ++i) {
      const int64_t t0 = MonotonicNs();
      auto r = (*client)->Call("increment", {arg}, Deadline::AfterMs(10'000));
      const int64_t t1 = MonotonicNs();
      if (!r.ok()) break;
      if (i >= warm) samples.push_back(t1 - t0);
    }
    client->reset();
  }
  c->stop.store(1);
  Join(child);
  SharedFree(c, sizeof(Ctl));
  Row r = CallRow("weft", samples);
  r.note = "channel pair, server in another process; default waits (adaptive spin, then sleep)";
  return r;
}

// The same request and reply bytes (a 40-byte header and the 8-byte argument) over a Unix
// stream socket, handled the same way.
Row CallUds(const std::string& mode, int warm, int n) {
  constexpr size_t kReq = 56, kRep = 56;
  LinkPair lp = MakeLinkPair("uds", mode == "spin");
  pid_t child = Fork([&] {
    auto link = lp.child();
    uint8_t buf[kReq];
    int64_t value = 0;
    for (int i = 0; i < warm + n; ++i) {
      if (!link->Recv(buf, kReq)) return 1;
      int64_t by;
      std::memcpy(&by, buf + 48, 8);
      value += by;
      std::memcpy(buf + 48, &value, 8);
      if (!link->Send(buf, kRep)) return 1;
    }
    return 0;
  });
  auto link = lp.parent();
  uint8_t req[kReq] = {}, rep[kRep];
  const int64_t one = 1;
  std::memcpy(req + 48, &one, 8);
  std::vector<int64_t> samples;
  for (int i = 0; i < warm + n; ++i) {
    const int64_t t0 = MonotonicNs();
    if (!link->Send(req, kReq) || !link->Recv(rep, kRep)) break;
    const int64_t t1 = MonotonicNs();
    if (i >= warm) samples.push_back(t1 - t0);
  }
  link.reset();
  Join(child);
  lp.cleanup();
  Row r = CallRow("uds", samples, mode);
  r.note = mode == "spin" ? "the same bytes and handler over a Unix socket, no RPC library, both sides polling"
                          : "the same bytes and handler over a Unix socket, no RPC library, blocking reads";
  return r;
}

// Python clients and servers (bench/python/rpc_call.py): in-process, over ipc://, and a
// Unix-socket pickle RPC.
std::vector<Row> PythonCalls(bool quick) {
  std::vector<Row> rows;
  const std::string src = WEFT_SOURCE_DIR, bin = WEFT_BINARY_DIR;
  const std::string cmd = "PYTHONPATH='" + src + "/python:" + bin + "/python' /usr/bin/python3 '" + src +
                          "/bench/python/rpc_call.py' --tsv" + (quick ? " --quick" : "");
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return rows;
  char line[1024];
  while (std::fgets(line, sizeof(line), p) != nullptr) {
    char transport[32], via[32], note[512];
    unsigned long long n = 0;
    double p50 = 0, p99 = 0, p999 = 0;
    // An empty `via` leaves two tabs together.
    std::string l(line);
    if (l.find("\t\t") != std::string::npos) l.replace(l.find("\t\t"), 2, "\t-\t");
    if (std::sscanf(l.c_str(), "%31[^\t]\t%31[^\t]\t%llu\t%lf\t%lf\t%lf\t%511[^\n]", transport, via, &n, &p50, &p99,
                    &p999, note) != 7) {
      continue;
    }
    Row r = NewRow("rpc", "call", transport, 8, "");
    if (std::string(via) != "-") r.extra["via"] = via;
    r.extra["lang"] = "python";
    r.latency = true;
    r.n = n;
    r.p50_ns = p50;
    r.p99_ns = p99;
    r.p999_ns = p999;
    r.note = note;
    rows.push_back(r);
  }
  if (::pclose(p) != 0 || rows.empty()) {
    std::fprintf(stderr, "weft bench: the Python case did not run (is the weft module built?)\n");
  }
  return rows;
}

}  // namespace

void RunRpcSuite(const Options& opt) {
  auto want = [&](const char* c) { return opt.only.empty() || opt.only == c; };
  Results res;
  const int n = opt.quick ? 2000 : 20'000;
  for (int round = 0; round < (opt.quick ? 1 : 3); ++round) {
    if (!want("call")) break;
    res.Add(CallWeft(500, n));
    res.Add(CallUds("spin", 500, n));
    res.Add(CallUds("parked", 500, n));
    for (const Row& r : PythonCalls(opt.quick)) res.Add(r);
  }
  Emit("rpc", res.Medians(), opt);
}

}  // namespace weft::bench
