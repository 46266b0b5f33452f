// `weft bench rpc`: resource calls. Case `call`: the round trip of a small call (increment an
// i64 counter): in-process (inproc://, a direct call through the resource's scheduler), and to a
// server in another process over Weft's ipc://, beside gRPC on loopback (Debian's libgrpc++),
// a Unix socket carrying the same request and reply bytes with the same handler (no library:
// the least any socket RPC pays) and the floor (two processes handing a counter back and forth
// through one shared cache line). Python rows, and case `numpy` (tables of 1 K to 3 M rows
// fetched and aggregated), come from bench/python/.
#include <unistd.h>

#include <cstdio>

#include <atomic>
#include <cstring>
#include <string>
#include <vector>

#include "bench_util.h"
#include "grpc_client.h"
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

Row CallRow(const std::string& transport, std::vector<int64_t>& samples, const std::string& mode = "",
            const std::string& via = "ipc") {
  Row r = NewRow("rpc", "call", transport, 8, mode);
  if (transport == "weft") r.extra["via"] = via;
  r.extra["lang"] = "cpp";
  SetLatency(r, samples);
  return r;
}

rpc::Resource CounterResource(int64_t* value) {
  rpc::Resource r;
  r.contract = Counter();
  r.handlers["increment"] = [value](const rpc::CallArgs& a) -> Result<std::string> {
    int64_t by;
    std::memcpy(&by, a.args[0].data(), 8);
    *value += by;
    return std::string(reinterpret_cast<const char*>(value), 8);
  };
  return r;
}

// The same call in this process: the proxy calls the handler through the resource's
// scheduler. Timed in batches of 1000 (reading the clock costs as much as the call).
Row CallInproc(int warm, int n) {
  const std::string id = "bench-inproc-" + std::to_string(::getpid());
  std::vector<int64_t> samples;
  int64_t value = 0;
  auto server = rpc::Server::Create(id);
  if (server.ok() && (*server)->Register("counter", CounterResource(&value)).ok()) {
    auto client = rpc::Client::Connect(Counter(), "counter", "inproc://" + id, Deadline::AfterMs(10'000));
    if (client.ok()) {
      const int64_t one = 1;
      const std::vector<ByteView> args{ByteView(reinterpret_cast<const uint8_t*>(&one), 8)};
      const Deadline deadline = Deadline::AfterMs(600'000);
      constexpr int kBatch = 1000;
      for (int b = 0; b < (warm + n) / 10; ++b) {
        const int64_t t0 = MonotonicNs();
        for (int i = 0; i < kBatch; ++i) {
          auto r = (*client)->Call("increment", args, deadline);
          if (!r.ok()) return CallRow("weft", samples, "", "inproc");
        }
        const int64_t t1 = MonotonicNs();
        if (b >= warm / 10) samples.push_back((t1 - t0) / kBatch);
      }
    }
  }
  Row r = CallRow("weft", samples, "", "inproc");
  r.note = "C++ client and resource in one process: a direct call through the scheduler (batches of 1000)";
  return r;
}

// Two processes hand a counter back and forth through one shared cache line, both spinning:
// the least a cross-process round trip costs on this machine.
Row CallFloor(int warm, int n) {
  auto* c = static_cast<Ctl*>(SharedAlloc(sizeof(Ctl)));
  const int total = warm + n;
  pid_t child = Fork([&] {
    for (uint64_t i = 1; i <= static_cast<uint64_t>(total); ++i) {
      WaitAtLeast(c->ready, i);
      c->stop.store(i, std::memory_order_release);
    }
    return 0;
  });
  std::vector<int64_t> samples;
  for (int i = 1; i <= total; ++i) {
    const int64_t t0 = MonotonicNs();
    c->ready.store(i, std::memory_order_release);
    WaitAtLeast(c->stop, i);
    const int64_t t1 = MonotonicNs();
    if (i > warm) samples.push_back(t1 - t0);
  }
  Join(child);
  SharedFree(c, sizeof(Ctl));
  Row r = CallRow("floor", samples);
  r.note = "a counter handed to another process and back through shared memory, both spinning";
  return r;
}

// gRPC on loopback: a server process of its own (weft_grpc_server) and a synchronous stub.
Row CallGrpc(int warm, int n) {
  const int port = FreePort();
  const std::string server = std::string(WEFT_BINARY_DIR) + "/bench/weft_grpc_server";
  std::vector<int64_t> samples;
  const pid_t pid = StartProcess({server, std::to_string(port)}, "ready");
  if (pid > 0) {
    samples = GrpcCallSamples(port, warm, n);
    StopProcess(pid);
  }
  Row r = CallRow("grpc", samples);
  r.note = samples.empty() ? "skipped: the gRPC server did not start"
                           : "Debian libgrpc++, protobuf messages, synchronous stub, TCP on 127.0.0.1";
  return r;
}

Row CallWeft(int warm, int n) {
  const std::string id = "bench-" + std::to_string(::getpid());
  auto* c = static_cast<Ctl*>(SharedAlloc(sizeof(Ctl)));
  pid_t child = Fork([&] {
    auto server = rpc::Server::Create(id);
    if (!server.ok()) return 1;
    int64_t value = 0;
    if (!(*server)->Register("counter", CounterResource(&value)).ok() || !(*server)->Start().ok()) return 2;
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
  std::vector<int64_t> samples = CounterRoundTrips("uds", mode == "spin", 56, 48, warm, n);
  Row r = CallRow("uds", samples, mode);
  r.note = mode == "spin" ? "the same bytes and handler over a Unix socket, no RPC library, both sides polling"
                          : "the same bytes and handler over a Unix socket, no RPC library, blocking reads";
  return r;
}

// Rows measured by a Python script of bench/python/: one per line, tab-separated: case,
// transport, via, mode, rows, n, p50, p99, p99.9 (ns), note; "-" for an empty field.
std::vector<Row> PythonRows(const std::string& script, bool quick) {
  std::vector<Row> rows;
  for (const std::vector<std::string>& f : PythonLines(script, quick)) {
    if (f.size() != 10) continue;
    const uint64_t table_rows = f[4] == "-" ? 0 : std::stoull(f[4]);
    Row r = NewRow("rpc", f[0], f[1], f[0] == "call" ? 8 : table_rows * 28, f[3] == "-" ? "" : f[3]);
    if (f[2] == "tcp+tls") {
      r.extra["via"] = "tcp";
      r.extra["tls"] = "true";
    } else if (f[2] != "-") {
      r.extra["via"] = f[2];
      if (f[2] == "tcp" && f[1] == "weft") r.extra["tls"] = "false";
    }
    if (table_rows != 0) r.extra["rows"] = f[4];
    r.extra["lang"] = "python";
    r.latency = true;
    r.n = std::stoull(f[5]);
    r.p50_ns = std::stod(f[6]);
    r.p99_ns = std::stod(f[7]);
    r.p999_ns = std::stod(f[8]);
    r.note = f[9];
    rows.push_back(r);
  }
  return rows;
}

}  // namespace

void RunRpcSuite(const Options& opt) {
  auto want = [&](const char* c) { return opt.only.empty() || opt.only == c; };
  Results res;
  const int n = opt.quick ? 2000 : 20'000;
  for (int round = 0; round < (opt.quick ? 1 : 3); ++round) {
    if (want("call")) {
      res.Add(CallInproc(500, n));
      res.Add(CallWeft(500, n));
      res.Add(CallGrpc(500, n / 4));
      res.Add(CallUds("spin", 500, n));
      res.Add(CallUds("parked", 500, n));
      res.Add(CallFloor(500, n));
      for (const Row& r : PythonRows("rpc_call.py", opt.quick)) res.Add(r);
    }
    if (want("numpy")) {
      for (const Row& r : PythonRows("rpc_numpy.py", opt.quick)) res.Add(r);
    }
    AddRemoteRpcRows(res, opt.quick, want);
  }
  Emit("rpc", res.Medians(), opt);
}

}  // namespace weft::bench
