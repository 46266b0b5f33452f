#include "links.h"

#include "bench_util.h"
#include "weft/core/clock.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zmq.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>

namespace weft::bench {
namespace {

class FdLink : public Link {
 public:
  FdLink(int rfd, int wfd, bool spin) : rfd_(rfd), wfd_(wfd), spin_(spin) {
    if (spin_) ::fcntl(rfd_, F_SETFL, ::fcntl(rfd_, F_GETFL) | O_NONBLOCK);
  }
  ~FdLink() override {
    ::close(rfd_);
    if (wfd_ != rfd_) ::close(wfd_);
  }
  bool Send(const void* data, size_t n) override {
    const auto* p = static_cast<const char*>(data);
    while (n > 0) {
      ssize_t w = ::write(wfd_, p, n);
      if (w < 0) {
        if (errno == EINTR || errno == EAGAIN) continue;
        return false;
      }
      p += w;
      n -= static_cast<size_t>(w);
    }
    return true;
  }
  bool Recv(void* data, size_t n) override {
    auto* p = static_cast<char*>(data);
    while (n > 0) {
      ssize_t r = ::read(rfd_, p, n);
      if (r < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN) {
#if defined(__x86_64__)
          __builtin_ia32_pause();
#endif
          continue;
        }
        return false;
      }
      if (r == 0) return false;
      p += r;
      n -= static_cast<size_t>(r);
    }
    return true;
  }

 private:
  int rfd_, wfd_;
  bool spin_;
};

class ZmqLink : public Link {
 public:
  ZmqLink(const std::string& endpoint, bool bind, bool spin, int type = ZMQ_PAIR) : spin_(spin), type_(type) {
    ctx_ = zmq_ctx_new();
    sock_ = zmq_socket(ctx_, type);
    int hwm = 0;
    zmq_setsockopt(sock_, ZMQ_SNDHWM, &hwm, sizeof(hwm));
    zmq_setsockopt(sock_, ZMQ_RCVHWM, &hwm, sizeof(hwm));
    int rc = bind ? zmq_bind(sock_, endpoint.c_str()) : zmq_connect(sock_, endpoint.c_str());
    if (rc != 0) std::fprintf(stderr, "zmq %s: %s\n", endpoint.c_str(), zmq_strerror(zmq_errno()));
  }
  ~ZmqLink() override {
    // A pusher delivers what it queued before it goes (its peer counts every message); the
    // others drop what is left.
    int linger = type_ == ZMQ_PUSH ? -1 : 0;
    zmq_setsockopt(sock_, ZMQ_LINGER, &linger, sizeof(linger));
    zmq_close(sock_);
    zmq_ctx_term(ctx_);
  }
  bool Send(const void* data, size_t n) override {
    while (zmq_send(sock_, data, n, 0) < 0) {
      if (zmq_errno() != EINTR) return false;
    }
    return true;
  }
  bool Recv(void* data, size_t n) override {
    for (;;) {
      int r = zmq_recv(sock_, data, n, spin_ ? ZMQ_DONTWAIT : 0);
      if (r >= 0) return static_cast<size_t>(r) == n;
      if (zmq_errno() != EAGAIN && zmq_errno() != EINTR) return false;
    }
  }

 private:
  void* ctx_;
  void* sock_;
  bool spin_;
  int type_;
};

std::atomic<int> g_counter{0};

}  // namespace

std::vector<std::string> BaselineTransports() { return {"uds", "pipe", "tcp", "zmq"}; }

LinkPair MakeLinkPair(const std::string& transport, bool spin) {
  LinkPair lp;
  if (transport == "uds") {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) std::perror("socketpair");
    lp.parent = [=] { ::close(sv[1]); return std::unique_ptr<Link>(new FdLink(sv[0], sv[0], spin)); };
    lp.child = [=] { ::close(sv[0]); return std::unique_ptr<Link>(new FdLink(sv[1], sv[1], spin)); };
    lp.cleanup = [] {};
  } else if (transport == "pipe") {
    int a[2], b[2];  // a: parent -> child, b: child -> parent
    if (::pipe2(a, O_CLOEXEC) != 0 || ::pipe2(b, O_CLOEXEC) != 0) std::perror("pipe");
    lp.parent = [=] {
      ::close(a[0]);
      ::close(b[1]);
      return std::unique_ptr<Link>(new FdLink(b[0], a[1], spin));
    };
    lp.child = [=] {
      ::close(a[1]);
      ::close(b[0]);
      return std::unique_ptr<Link>(new FdLink(a[0], b[1], spin));
    };
    lp.cleanup = [] {};
  } else if (transport == "tcp") {
    int ls = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof(addr);
    if (::bind(ls, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || ::listen(ls, 1) != 0 ||
        ::getsockname(ls, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      std::perror("tcp listen");
    }
    auto nodelay = [](int fd) {
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    };
    lp.parent = [=] {
      int fd = ::accept4(ls, nullptr, nullptr, SOCK_CLOEXEC);
      nodelay(fd);
      return std::unique_ptr<Link>(new FdLink(fd, fd, spin));
    };
    lp.child = [=] {
      ::close(ls);
      int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) std::perror("connect");
      nodelay(fd);
      return std::unique_ptr<Link>(new FdLink(fd, fd, spin));
    };
    lp.cleanup = [ls] { ::close(ls); };
  } else if (transport == "zmq") {
    std::string path = "/tmp/weft-bench-" + std::to_string(::getpid()) + "-" +
                       std::to_string(g_counter++) + ".ipc";
    std::string endpoint = "ipc://" + path;
    lp.parent = [=] { return std::unique_ptr<Link>(new ZmqLink(endpoint, true, spin)); };
    lp.child = [=] { return std::unique_ptr<Link>(new ZmqLink(endpoint, false, spin)); };
    lp.cleanup = [path] { ::unlink(path.c_str()); };
  } else if (transport == "zmq-push") {
    // One way: the child pushes, the parent pulls.
    std::string path = "/tmp/weft-bench-" + std::to_string(::getpid()) + "-" +
                       std::to_string(g_counter++) + ".ipc";
    std::string endpoint = "ipc://" + path;
    lp.parent = [=] { return std::unique_ptr<Link>(new ZmqLink(endpoint, true, spin, ZMQ_PULL)); };
    lp.child = [=] { return std::unique_ptr<Link>(new ZmqLink(endpoint, false, spin, ZMQ_PUSH)); };
    lp.cleanup = [path] { ::unlink(path.c_str()); };
  }
  return lp;
}

std::vector<int64_t> CounterRoundTrips(const std::string& transport, bool spin, size_t msg, size_t value_at, int warm,
                                       int n) {
  LinkPair lp = MakeLinkPair(transport, spin);
  pid_t child = Fork([&] {
    auto link = lp.child();
    std::vector<uint8_t> buf(msg);
    int64_t value = 0;
    for (int i = 0; i < warm + n; ++i) {
      if (!link->Recv(buf.data(), msg)) return 1;
      int64_t by;
      std::memcpy(&by, buf.data() + value_at, 8);
      value += by;
      std::memcpy(buf.data() + value_at, &value, 8);
      if (!link->Send(buf.data(), msg)) return 1;
    }
    return 0;
  });
  auto link = lp.parent();
  std::vector<uint8_t> req(msg, 0), rep(msg);
  const int64_t one = 1;
  std::memcpy(req.data() + value_at, &one, 8);
  std::vector<int64_t> samples;
  for (int i = 0; i < warm + n; ++i) {
    const int64_t t0 = MonotonicNs();
    if (!link->Send(req.data(), msg) || !link->Recv(rep.data(), msg)) break;
    const int64_t t1 = MonotonicNs();
    if (i >= warm) samples.push_back(t1 - t0);
  }
  link.reset();
  Join(child);
  lp.cleanup();
  return samples;
}

}  // namespace weft::bench
