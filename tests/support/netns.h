// Hosts for tests that cross machines: network namespaces joined by veth pairs, made with
// `ip netns` (as root, as CI runs) and removed at the end. Traffic stays inside them.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

namespace weft::testing {

// Two namespaces ("hosts") a and b, joined by a veth pair: a is 10.<n>.<m>.1, b 10.<n>.<m>.2.
class NetnsPair {
 public:
  NetnsPair() {
    const int id = static_cast<int>(::getpid() % 50000);
    a_ = "weft-" + std::to_string(id) + "-a";
    b_ = "weft-" + std::to_string(id) + "-b";
    va_ = "wv" + std::to_string(id) + "a";
    vb_ = "wv" + std::to_string(id) + "b";
    const std::string net = "10." + std::to_string(100 + id / 256 % 100) + "." + std::to_string(id % 256) + ".";
    addr_a_ = net + "1";
    addr_b_ = net + "2";
    ok_ = Ip("netns add " + a_) && Ip("netns add " + b_) && Ip("link add " + va_ + " type veth peer name " + vb_) &&
          Ip("link set " + va_ + " netns " + a_) && Ip("link set " + vb_ + " netns " + b_) &&
          Ip("-n " + a_ + " addr add " + addr_a_ + "/24 dev " + va_) &&
          Ip("-n " + b_ + " addr add " + addr_b_ + "/24 dev " + vb_) && Ip("-n " + a_ + " link set " + va_ + " up") &&
          Ip("-n " + b_ + " link set " + vb_ + " up") && Ip("-n " + a_ + " link set lo up") &&
          Ip("-n " + b_ + " link set lo up");
  }
  ~NetnsPair() {
    Ip("netns del " + a_);
    Ip("netns del " + b_);  // the veth pair goes with its namespaces
  }
  NetnsPair(const NetnsPair&) = delete;
  NetnsPair& operator=(const NetnsPair&) = delete;

  bool ok() const { return ok_; }
  const std::string& a() const { return a_; }
  const std::string& b() const { return b_; }
  const std::string& addr_a() const { return addr_a_; }
  const std::string& addr_b() const { return addr_b_; }
  // Cuts the link (b's end down: nothing passes either way) and mends it.
  bool Cut() { return Ip("-n " + b_ + " link set " + vb_ + " down"); }
  bool Mend() { return Ip("-n " + b_ + " link set " + vb_ + " up"); }

  // Moves the calling thread (in a forked child: the process) into namespace `name`.
  static bool Enter(const std::string& name) {
    const int fd = ::open(("/var/run/netns/" + name).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    const bool ok = ::setns(fd, CLONE_NEWNET) == 0;
    ::close(fd);
    return ok;
  }

  // True if something in namespace `ns` accepts TCP connections at IPv4 `host`:`port` (tried
  // from a child process that enters it).
  static bool AcceptsIn(const std::string& ns, const std::string& host, int port) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      if (!Enter(ns)) ::_exit(2);
      const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(static_cast<uint16_t>(port));
      if (::inet_pton(AF_INET, host.c_str(), &a.sin_addr) != 1) ::_exit(3);
      ::_exit(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 ? 0 : 1);
    }
    int st = 0;
    return pid > 0 && ::waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
  }
  // Waits up to `seconds` for AcceptsIn.
  static bool WaitAccepts(const std::string& ns, const std::string& host, int port, int seconds = 30) {
    for (int t = 0; t < seconds * 20; ++t) {
      if (AcceptsIn(ns, host, port)) return true;
      ::usleep(50'000);
    }
    return false;
  }

 private:
  static bool Ip(const std::string& args) { return std::system(("ip " + args + " > /dev/null 2>&1").c_str()) == 0; }
  std::string a_, b_, va_, vb_, addr_a_, addr_b_;
  bool ok_ = false;
};

// N namespaces ("hosts") on one switch: a bridge in a namespace of its own, each host joined to
// it by a veth pair; host i is 10.<n>.<m>.<i+1>. Cut(i) takes host i off the switch.
class NetnsLan {
 public:
  explicit NetnsLan(int hosts) {
    const int id = static_cast<int>(::getpid() % 50000);
    prefix_ = "weftl-" + std::to_string(id);
    sw_ = prefix_ + "-sw";
    const std::string net = "10." + std::to_string(200 + id / 256 % 50) + "." + std::to_string(id % 256) + ".";
    ok_ = Ip("netns add " + sw_) && Ip("-n " + sw_ + " link add br0 type bridge") && Ip("-n " + sw_ + " link set br0 up");
    for (int i = 0; ok_ && i < hosts; ++i) {
      const std::string ns = prefix_ + "-" + std::to_string(i);
      const std::string h = "wl" + std::to_string(id) + "h" + std::to_string(i);  // host's end
      const std::string p = "wl" + std::to_string(id) + "p" + std::to_string(i);  // switch port
      names_.push_back(ns);
      ports_.push_back(p);
      addrs_.push_back(net + std::to_string(i + 1));
      ok_ = Ip("netns add " + ns) && Ip("link add " + h + " type veth peer name " + p) &&
            Ip("link set " + h + " netns " + ns) && Ip("link set " + p + " netns " + sw_) &&
            Ip("-n " + sw_ + " link set " + p + " master br0") && Ip("-n " + sw_ + " link set " + p + " up") &&
            Ip("-n " + ns + " addr add " + addrs_.back() + "/24 dev " + h) && Ip("-n " + ns + " link set " + h + " up") &&
            Ip("-n " + ns + " link set lo up");
    }
  }
  ~NetnsLan() {
    for (const std::string& ns : names_) Ip("netns del " + ns);
    Ip("netns del " + sw_);
  }
  NetnsLan(const NetnsLan&) = delete;
  NetnsLan& operator=(const NetnsLan&) = delete;

  bool ok() const { return ok_; }
  const std::string& ns(int i) const { return names_.at(static_cast<size_t>(i)); }
  const std::string& addr(int i) const { return addrs_.at(static_cast<size_t>(i)); }
  bool Cut(int i) { return Ip("-n " + sw_ + " link set " + ports_.at(static_cast<size_t>(i)) + " down"); }
  bool Mend(int i) { return Ip("-n " + sw_ + " link set " + ports_.at(static_cast<size_t>(i)) + " up"); }

 private:
  static bool Ip(const std::string& args) { return std::system(("ip " + args + " > /dev/null 2>&1").c_str()) == 0; }
  std::string prefix_, sw_;
  std::vector<std::string> names_, ports_, addrs_;
  bool ok_ = false;
};

}  // namespace weft::testing
