// The suites behind `weft bench <suite>` and `weft demo` (the weft-bench program).
#pragma once

#include <functional>
#include <string>

#include "bench_util.h"

namespace weft::bench {

void RunChannelSuite(const Options& opt);
// One-way floor: one cache line seen by another process (spin) or one futex wake (parked).
Row OneWayFloor(const char* suite, const char* case_name, size_t size, const std::string& mode, int warm, int n);
// One-way latency over a baseline transport ("uds", "pipe", "tcp", "zmq"), peer in a child.
Row OneWayLink(const char* suite, const char* case_name, const std::string& transport, size_t size,
               const std::string& mode, int warm, int n, bool touch);
void RunPoolSuite(const Options& opt);
void RunTopicSuite(const Options& opt);
void RunLogSuite(const Options& opt);
void RunRpcSuite(const Options& opt);
void RunBusSuite(const Options& opt);
void RunGraphSuite(const Options& opt);
// The bus suite's rows for the redis:// and nats:// backends and their floors (cases ingest,
// consume, e2e), on servers it starts (bus_remote_bench.cc).
void AddRemoteBusRows(Results& res, bool quick, const std::function<bool(const char*)>& want);
// rpc rows with via=tcp (rpc_remote_bench.cc): cases call and bulk.
void AddRemoteRpcRows(Results& res, bool quick, const std::function<bool(const char*)>& want);
// `weft demo`: tensors and messages between two processes, verified, beside a Unix socket.
int Demo(bool quick);

}  // namespace weft::bench
