// Shared pieces of `weft bench`: result rows, percentiles, the machine line, output as a table
// or JSON lines, rounds with medians, and helpers to run a peer in a child process.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "support/servers.h"

namespace weft::bench {

struct Options {
  bool quick = false;
  bool json = false;
  std::string out;   // also write JSON lines here when set
  std::string only;  // run only this case (for investigation)
};

// One result row. Field names are the JSON contract (docs/benchmarks.md).
struct Row {
  std::string suite, case_name, transport, mode, note;
  uint64_t payload_bytes = 0;
  uint64_t n = 0;  // samples (latency) or messages (throughput)
  bool latency = false;
  double p50_ns = 0, p99_ns = 0, p999_ns = 0, mean_ns = 0;
  double msgs_per_s = 0, bytes_per_s = 0;
  std::map<std::string, std::string> extra;  // further fields, e.g. "subscribers"
};

// A row with its identifying fields set.
Row NewRow(const std::string& suite, const std::string& case_name, const std::string& transport,
           uint64_t payload_bytes, const std::string& mode);

// Fills the latency fields of `row` from samples (nanoseconds); sorts `samples`.
void SetLatency(Row& row, std::vector<int64_t>& samples);
// Fills the throughput fields from a message count, bytes per message and elapsed ns.
void SetThroughput(Row& row, uint64_t messages, uint64_t bytes_each, int64_t elapsed_ns);

// "2 cores, AMD EPYC ..., virtualized (KVM), Linux 6.1"
std::string MachineLine();
// How Weft compares with another transport, in words: "3.2x faster", "1.4x slower", "as fast"
// (within 5%). `weft_cost` and `other_cost` are costs (time): lower is better.
std::string Relative(double weft_cost, double other_cost);

// Collects rows from several rounds and reports, per key, the median of each field.
class Results {
 public:
  void Add(const Row& row);
  std::vector<Row> Medians() const;

 private:
  std::vector<std::string> order_;
  std::map<std::string, std::vector<Row>> rows_;
};

// Prints rows as a table (with the ratio to weft in its own column) or as JSON lines.
void Emit(const std::string& suite, const std::vector<Row>& rows, const Options& opt);

// Runs bench/python/<script> --tsv (--quick) with this build's weft on its path and returns
// each line's tab-separated fields; says so on stderr if it failed or printed nothing.
std::vector<std::vector<std::string>> PythonLines(const std::string& script, bool quick);

// Runs `body` in a forked child; returns its pid. The child exits with body's return value.
pid_t Fork(const std::function<int()>& body);
// Waits for a child; returns its exit code (or 128 + signal).
int Join(pid_t pid);

// A free TCP port on 127.0.0.1 (for servers the benches start).
using testing::FreePort;
// Starts a program (argv[0] a path) with stdout read here; waits up to a minute for it to print
// a line starting with `ready` (if given). Returns its pid, or -1. StopProcess kills and reaps it.
pid_t StartProcess(const std::vector<std::string>& argv, const std::string& ready = "");
void StopProcess(pid_t pid);

// Anonymous shared memory that survives fork (for control blocks and sample arrays).
void* SharedAlloc(size_t bytes);
void SharedFree(void* p, size_t bytes);

// The monotonic clock in nanoseconds (weft/core/clock.h's, without including it here).
int64_t NowNs();

// Sums every byte (as 64-bit words plus a tail) so that the consumer touches all data.
uint64_t TouchSum(const void* data, size_t n);

// A fresh directory under /var/tmp (on disk, not tmpfs), removed at the end. Each row starts
// with no dirty pages of earlier rows being written back beside it (sync first).
struct Dir {
  std::string path;
  Dir();
  ~Dir();
  Dir(const Dir&) = delete;
  Dir& operator=(const Dir&) = delete;
};

// Runs `body(thread, stop_at)` on `threads` threads until each returns; returns the records
// they report and the elapsed time.
template <typename Body>
std::pair<uint64_t, int64_t> RunThreads(int threads, int64_t budget_ns, Body body) {
  std::atomic<uint64_t> total{0};
  const int64_t t0 = NowNs();
  const int64_t stop = t0 + budget_ns;
  std::vector<std::thread> ts;
  for (int i = 0; i < threads; ++i) ts.emplace_back([&, i] { total += body(i, stop); });
  for (auto& t : ts) t.join();
  return {total.load(), NowNs() - t0};
}

// Spins (with pause) for about `ns` nanoseconds.
void SpinFor(int64_t ns);
// Spins (with pause) until `v` reaches `target` (a counter another process advances).
void WaitAtLeast(std::atomic<uint64_t>& v, uint64_t target);

}  // namespace weft::bench
