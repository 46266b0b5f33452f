// Hosts for tests that cross machines: network namespaces joined by veth pairs, made with
// `ip netns` (as root, as CI runs) and removed at the end. Traffic stays inside them.
#pragma once

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

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

 private:
  static bool Ip(const std::string& args) { return std::system(("ip " + args + " > /dev/null 2>&1").c_str()) == 0; }
  std::string a_, b_, va_, vb_, addr_a_, addr_b_;
  bool ok_ = false;
};

}  // namespace weft::testing
