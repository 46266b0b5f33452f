#include "bench_util.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "weft/core/clock.h"

namespace weft::bench {

Row NewRow(const std::string& suite, const std::string& case_name, const std::string& transport,
           uint64_t payload_bytes, const std::string& mode) {
  Row r;
  r.suite = suite;
  r.case_name = case_name;
  r.transport = transport;
  r.payload_bytes = payload_bytes;
  r.mode = mode;
  return r;
}

void SetLatency(Row& row, std::vector<int64_t>& samples) {
  row.latency = true;
  row.n = samples.size();
  if (samples.empty()) return;
  std::sort(samples.begin(), samples.end());
  auto pct = [&](double q) {
    size_t i = static_cast<size_t>(std::ceil(q * samples.size())) - 1;
    return static_cast<double>(samples[std::min(i, samples.size() - 1)]);
  };
  row.p50_ns = pct(0.50);
  row.p99_ns = pct(0.99);
  row.p999_ns = pct(0.999);
  double sum = 0;
  for (int64_t s : samples) sum += static_cast<double>(s);
  row.mean_ns = sum / samples.size();
}

void SetThroughput(Row& row, uint64_t messages, uint64_t bytes_each, int64_t elapsed_ns) {
  row.latency = false;
  row.n = messages;
  double secs = elapsed_ns / 1e9;
  row.msgs_per_s = secs > 0 ? messages / secs : 0;
  row.bytes_per_s = secs > 0 ? static_cast<double>(messages) * bytes_each / secs : 0;
}

std::string MachineLine() {
  std::ifstream cpu("/proc/cpuinfo");
  std::string line, model = "unknown cpu";
  bool hypervisor = false;
  while (std::getline(cpu, line)) {
    if (line.rfind("model name", 0) == 0 && model == "unknown cpu") {
      model = line.substr(line.find(':') + 2);
    }
    if (line.rfind("flags", 0) == 0 && line.find(" hypervisor") != std::string::npos) hypervisor = true;
  }
  utsname u{};
  ::uname(&u);
  std::ostringstream os;
  os << std::thread::hardware_concurrency() << " cores, " << model << ", "
     << (hypervisor ? "virtualized" : "bare metal") << ", Linux " << u.release;
  return os.str();
}

namespace {
std::string Key(const Row& r) {
  std::string k = r.suite + "|" + r.case_name + "|" + r.transport + "|" +
                  std::to_string(r.payload_bytes) + "|" + r.mode;
  for (const auto& [name, value] : r.extra) k += "|" + name + "=" + value;
  return k;
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}
}  // namespace

namespace {
// Progress goes to stderr when it is a terminal: one line, rewritten as rows finish (stdout
// keeps the table or the JSON).
bool ShowProgress() {
  static const bool on = ::isatty(STDERR_FILENO) == 1;
  return on;
}
void ClearProgress() {
  if (ShowProgress()) std::fprintf(stderr, "\r\033[K");
}
}  // namespace

void Results::Add(const Row& row) {
  std::string k = Key(row);
  if (!rows_.count(k)) order_.push_back(k);
  rows_[k].push_back(row);
  if (ShowProgress()) {
    size_t done = 0;
    for (const auto& [key, rows] : rows_) done += rows.size();
    std::fprintf(stderr, "\r\033[Kweft bench %s: %zu measured; last %s %s %s %s", row.suite.c_str(), done,
                 row.case_name.c_str(), row.transport.c_str(), row.mode.c_str(), (std::to_string(row.payload_bytes) + " B").c_str());
    std::fflush(stderr);
  }
}

std::vector<Row> Results::Medians() const {
  std::vector<Row> out;
  for (const std::string& k : order_) {
    const std::vector<Row>& rs = rows_.at(k);
    Row m = rs.front();
    auto med = [&](double Row::*f) {
      std::vector<double> v;
      for (const Row& r : rs) v.push_back(r.*f);
      return Median(v);
    };
    m.p50_ns = med(&Row::p50_ns);
    m.p99_ns = med(&Row::p99_ns);
    m.p999_ns = med(&Row::p999_ns);
    m.mean_ns = med(&Row::mean_ns);
    m.msgs_per_s = med(&Row::msgs_per_s);
    m.bytes_per_s = med(&Row::bytes_per_s);
    m.n = 0;
    for (const Row& r : rs) m.n += r.n;
    if (rs.size() > 1) {
      std::string rounds = "median of " + std::to_string(rs.size()) + " rounds";
      m.note = m.note.empty() ? rounds : m.note + "; " + rounds;
    }
    out.push_back(m);
  }
  return out;
}

namespace {

std::string JsonEscape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\';
    if (static_cast<unsigned char>(c) < 0x20) continue;
    o += c;
  }
  return o;
}

std::string Json(const Row& r) {
  char buf[256];
  std::ostringstream os;
  os << "{\"suite\":\"" << r.suite << "\",\"case\":\"" << r.case_name << "\",\"transport\":\""
     << r.transport << "\",\"payload_bytes\":" << r.payload_bytes << ",\"n\":" << r.n;
  if (!r.mode.empty()) os << ",\"mode\":\"" << r.mode << "\"";
  for (const auto& [name, value] : r.extra) {
    // Numbers as numbers, words as strings.
    const bool number = !value.empty() && value.find_first_not_of("0123456789") == std::string::npos;
    os << ",\"" << name << "\":" << (number ? value : "\"" + value + "\"");
  }
  if (r.latency) {
    std::snprintf(buf, sizeof(buf), ",\"p50_ns\":%.0f,\"p99_ns\":%.0f,\"p999_ns\":%.0f,\"mean_ns\":%.1f",
                  r.p50_ns, r.p99_ns, r.p999_ns, r.mean_ns);
  } else {
    std::snprintf(buf, sizeof(buf), ",\"msgs_per_s\":%.0f,\"bytes_per_s\":%.0f", r.msgs_per_s,
                  r.bytes_per_s);
  }
  os << buf;
  if (!r.note.empty()) os << ",\"note\":\"" << JsonEscape(r.note) << "\"";
  os << "}";
  return os.str();
}

std::string Human(double ns) {
  char b[32];
  if (ns < 1e3) std::snprintf(b, sizeof(b), "%.0f ns", ns);
  else if (ns < 1e6) std::snprintf(b, sizeof(b), "%.2f us", ns / 1e3);
  else if (ns < 1e9) std::snprintf(b, sizeof(b), "%.2f ms", ns / 1e6);
  else std::snprintf(b, sizeof(b), "%.2f s", ns / 1e9);
  return b;
}

std::string Size(uint64_t n) {
  char b[32];
  if (n >= (1u << 20) && n % (1u << 20) == 0) std::snprintf(b, sizeof(b), "%lu MB", (unsigned long)(n >> 20));
  else if (n >= 1024 && n % 1024 == 0) std::snprintf(b, sizeof(b), "%lu KB", (unsigned long)(n >> 10));
  else std::snprintf(b, sizeof(b), "%lu B", (unsigned long)n);
  return b;
}

std::string Rate(double v, const char* unit) {
  char b[32];
  if (v >= 1e9) std::snprintf(b, sizeof(b), "%.2f G%s", v / 1e9, unit);
  else if (v >= 1e6) std::snprintf(b, sizeof(b), "%.2f M%s", v / 1e6, unit);
  else if (v >= 1e3) std::snprintf(b, sizeof(b), "%.1f K%s", v / 1e3, unit);
  else std::snprintf(b, sizeof(b), "%.0f %s", v, unit);
  return b;
}

}  // namespace

// Column labels for extra fields in the table.
std::string ShortName(const std::string& name) {
  if (name == "subscribers") return "subs";
  if (name == "appenders") return "app";
  if (name == "log_bytes") return "bytes";
  return name;
}

void Emit(const std::string& suite, const std::vector<Row>& rows, const Options& opt) {
  ClearProgress();
  if (!opt.out.empty()) {
    std::ofstream f(opt.out, std::ios::app);
    for (const Row& r : rows) f << Json(r) << "\n";
  }
  if (opt.json) {
    for (const Row& r : rows) std::printf("%s\n", Json(r).c_str());
    std::fflush(stdout);
    return;
  }
  // The weft row of each (case, size, mode, extras) is the reference for the ratio column
  // (`via`, which only Weft's rows carry, does not split groups).
  auto group = [](const Row& r) {
    std::string k = r.case_name + "|" + std::to_string(r.payload_bytes) + "|" + r.mode;
    for (const auto& [name, value] : r.extra) {
      if (name != "via") k += "|" + name + "=" + value;
    }
    return k;
  };
  std::map<std::string, const Row*> weft;
  for (const Row& r : rows) if (r.transport == "weft") weft[group(r)] = &r;
  auto extras = [](const Row& r) {
    std::string extra;
    for (const auto& [name, value] : r.extra) extra += ShortName(name) + "=" + value + " ";
    return extra;
  };
  int ew = 10;
  for (const Row& r : rows) ew = std::max(ew, static_cast<int>(extras(r).size()));
  std::printf("weft bench %s -- %s\n", suite.c_str(), MachineLine().c_str());
  std::printf("%-9s %-9s %-7s %-8s %-*s %11s %11s %11s %13s %13s %9s\n", "case", "transport",
              "mode", "size", ew, "extra", "p50", "p99", "p99.9", "msgs/s", "bytes/s", "vs weft");
  std::string last_case;
  for (const Row& r : rows) {
    if (!last_case.empty() && r.case_name != last_case) std::printf("\n");
    last_case = r.case_name;
    const std::string extra = extras(r);
    std::string ratio = "-";
    auto it = weft.find(group(r));
    if (it != weft.end() && r.transport != "weft") {
      char b[32];
      double x = r.latency ? (it->second->p50_ns > 0 ? r.p50_ns / it->second->p50_ns : 0)
                           : (r.msgs_per_s > 0 ? it->second->msgs_per_s / r.msgs_per_s : 0);
      std::snprintf(b, sizeof(b), "%.2fx", x);
      ratio = b;
    }
    if (r.latency) {
      std::printf("%-9s %-9s %-7s %-8s %-*s %11s %11s %11s %13s %13s %9s\n", r.case_name.c_str(),
                  r.transport.c_str(), r.mode.c_str(), Size(r.payload_bytes).c_str(), ew, extra.c_str(),
                  Human(r.p50_ns).c_str(), Human(r.p99_ns).c_str(), Human(r.p999_ns).c_str(), "",
                  "", ratio.c_str());
    } else {
      std::printf("%-9s %-9s %-7s %-8s %-*s %11s %11s %11s %13s %13s %9s\n", r.case_name.c_str(),
                  r.transport.c_str(), r.mode.c_str(), Size(r.payload_bytes).c_str(), ew, extra.c_str(),
                  "", "", "", Rate(r.msgs_per_s, "").c_str(), Rate(r.bytes_per_s, "B").c_str(),
                  ratio.c_str());
    }
  }
  std::printf("(latency ratio: transport p50 / weft p50; throughput ratio: weft msgs/s / transport msgs/s)\n");
  std::fflush(stdout);
}

std::vector<std::vector<std::string>> PythonLines(const std::string& script, bool quick) {
  std::vector<std::vector<std::string>> out;
  const std::string src = WEFT_SOURCE_DIR, bin = WEFT_BINARY_DIR;
  const std::string cmd = "PYTHONPATH='" + src + "/python:" + bin + "/python' WEFT_BINARY_DIR='" + bin +
                          "' /usr/bin/python3 '" + src + "/bench/python/" + script + "' --tsv" + (quick ? " --quick" : "");
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return out;
  char line[4096];
  while (std::fgets(line, sizeof(line), p) != nullptr) {
    std::string l(line);
    if (!l.empty() && l.back() == '\n') l.pop_back();
    std::vector<std::string> f;
    size_t pos = 0;
    for (size_t tab; (tab = l.find('\t', pos)) != std::string::npos; pos = tab + 1) f.push_back(l.substr(pos, tab - pos));
    f.push_back(l.substr(pos));
    out.push_back(std::move(f));
  }
  if (::pclose(p) != 0 || out.empty()) {
    std::fprintf(stderr, "weft bench: %s did not run (is the weft module built?)\n", script.c_str());
  }
  return out;
}

pid_t Fork(const std::function<int()>& body) {
  std::fflush(stdout);
  std::fflush(stderr);
  pid_t pid = ::fork();
  if (pid == 0) ::_exit(body());
  return pid;
}

int Join(pid_t pid) {
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid) return -1;
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}


pid_t StartProcess(const std::vector<std::string>& argv, const std::string& ready) {
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) return -1;
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out[1], 1);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  ::close(out[1]);
  if (pid < 0) {
    ::close(out[0]);
    return -1;
  }
  bool up = ready.empty();
  std::string line;
  pollfd p{out[0], POLLIN, 0};
  const int64_t until = MonotonicNs() + 60'000'000'000;
  while (!up && MonotonicNs() < until && ::poll(&p, 1, 1000) >= 0) {
    char c;
    const ssize_t n = (p.revents & (POLLIN | POLLHUP)) ? ::read(out[0], &c, 1) : 0;
    if (n < 0 || ((p.revents & POLLHUP) && n == 0)) break;
    if (n == 0) continue;
    if (c != '\n') {
      line += c;
      continue;
    }
    up = line.rfind(ready, 0) == 0;
    line.clear();
  }
  ::close(out[0]);  // (the server's later output goes nowhere: a closed pipe)
  if (!up) {
    StopProcess(pid);
    return -1;
  }
  return pid;
}

void StopProcess(pid_t pid) {
  if (pid <= 0) return;
  ::kill(pid, SIGKILL);
  int st;
  ::waitpid(pid, &st, 0);
}

void* SharedAlloc(size_t bytes) {
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    std::perror("mmap");
    std::abort();
  }
  return p;
}

void SharedFree(void* p, size_t bytes) { ::munmap(p, bytes); }

uint64_t TouchSum(const void* data, size_t n) {
  const auto* p = static_cast<const uint8_t*>(data);
  uint64_t a = 0, b = 0, c = 0, d = 0;
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    uint64_t w[4];
    std::memcpy(w, p + i, 32);
    a += w[0];
    b += w[1];
    c += w[2];
    d += w[3];
  }
  for (; i < n; ++i) a += p[i];
  return a + b + c + d;
}

void SpinFor(int64_t ns) {
  const int64_t end = MonotonicNs() + ns;
  while (MonotonicNs() < end) {
#if defined(__x86_64__)
    __builtin_ia32_pause();
#endif
  }
}

void WaitAtLeast(std::atomic<uint64_t>& v, uint64_t target) {
  // A peer that died leaves the counter still: give up after a minute rather than hang.
  const int64_t give_up = MonotonicNs() + 60'000'000'000;
  for (uint32_t i = 0; v.load(std::memory_order_acquire) < target; ++i) {
#if defined(__x86_64__)
    __builtin_ia32_pause();
#endif
    if ((i & 0xFFFF) == 0 && MonotonicNs() > give_up) {
      std::fprintf(stderr, "weft bench: a peer process stopped responding; giving up\n");
      std::exit(1);
    }
  }
}

std::string Relative(double weft_cost, double other_cost) {
  if (weft_cost <= 0 || other_cost <= 0) return "not measured";
  const double r = other_cost / weft_cost;
  char buf[48];
  if (r >= 1.05) {
    std::snprintf(buf, sizeof(buf), "%.1fx faster", r);
  } else if (r <= 1 / 1.05) {
    std::snprintf(buf, sizeof(buf), "%.1fx slower", 1 / r);
  } else {
    std::snprintf(buf, sizeof(buf), "as fast");
  }
  return buf;
}

Dir::Dir() {
  ::sync();
  char tmpl[] = "/var/tmp/weft-bench-XXXXXX";
  const char* made = ::mkdtemp(tmpl);
  path = made != nullptr ? made : "/var/tmp";
}

Dir::~Dir() {
  std::error_code ec;
  if (path != "/var/tmp") std::filesystem::remove_all(path, ec);
}

int64_t NowNs() { return MonotonicNs(); }

}  // namespace weft::bench
