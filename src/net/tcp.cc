// TCP: addresses, listening, dialing within a deadline, keepalive, and the plain stream.
#include "weft/net/tcp.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

namespace weft::net {

std::string HostPort::ToString() const {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

Result<HostPort> ParseHostPort(std::string_view s) {
  HostPort out;
  std::string_view port;
  if (!s.empty() && s[0] == '[') {
    const size_t close = s.find(']');
    if (close == std::string_view::npos || close + 1 >= s.size() || s[close + 1] != ':') {
      return InvalidArgument("address '" + std::string(s) + "': expected [v6 address]:port");
    }
    out.host = std::string(s.substr(1, close - 1));
    port = s.substr(close + 2);
  } else {
    const size_t colon = s.rfind(':');
    if (colon == std::string_view::npos || s.find(':') != colon) {
      return InvalidArgument("address '" + std::string(s) + "': expected host:port");
    }
    out.host = std::string(s.substr(0, colon));
    port = s.substr(colon + 1);
  }
  if (out.host.empty() || out.host.size() > 253) return InvalidArgument("address '" + std::string(s) + "': no host");
  for (char c : out.host) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7F || c == '/' || c == '[' || c == ']') {
      return InvalidArgument("address '" + std::string(s) + "': bad host");
    }
  }
  if (port.empty() || port.size() > 5) return InvalidArgument("address '" + std::string(s) + "': bad port");
  uint32_t p = 0;
  for (char c : port) {
    if (c < '0' || c > '9') return InvalidArgument("address '" + std::string(s) + "': bad port");
    p = p * 10 + static_cast<uint32_t>(c - '0');
  }
  if (p > 65535) return InvalidArgument("address '" + std::string(s) + "': port above 65535");
  out.port = static_cast<uint16_t>(p);
  return out;
}

namespace {

struct AddrInfo {
  addrinfo* list = nullptr;
  ~AddrInfo() {
    if (list != nullptr) ::freeaddrinfo(list);
  }
};

Status Resolve(const HostPort& hp, bool passive, AddrInfo* out) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = passive ? AI_PASSIVE : 0;
  const std::string port = std::to_string(hp.port);
  const int rc = ::getaddrinfo(hp.host.c_str(), port.c_str(), &hints, &out->list);
  if (rc != 0) {
    return Status(Code::kUnavailable, "cannot resolve '" + hp.host + "': " + ::gai_strerror(rc));
  }
  return Status::Ok();
}

}  // namespace

bool WaitFd(int fd, short events, Deadline deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    const int64_t left = deadline.RemainingNs();
    const int ms = deadline.is_never() ? -1 : static_cast<int>(std::min<int64_t>((left + 999'999) / 1'000'000, 1 << 30));
    const int rc = ::poll(&p, 1, ms);
    if (rc > 0) return true;
    if (rc < 0 && errno == EINTR) continue;
    return false;
  }
}

void Tune(int fd, const KeepAlive& k) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
  int idle = std::max(1, k.idle_ms / 1000), intvl = std::max(1, k.interval_ms / 1000), cnt = std::max(1, k.count);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
  // Data sent but not acknowledged for this long breaks the connection too.
  unsigned int user_timeout = static_cast<unsigned int>(k.idle_ms + k.interval_ms * k.count);
  ::setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout, sizeof(user_timeout));
}

std::vector<HostPort> ReachableAddresses(const HostPort& at) {
  const bool any4 = at.host == "0.0.0.0" || at.host.empty();
  const bool any6 = at.host == "::" || at.host.empty();
  if (!any4 && !any6) return {at};
  std::vector<HostPort> out, loopback;
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return {HostPort{"127.0.0.1", at.port}};
  for (ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr || (i->ifa_flags & IFF_UP) == 0) continue;
    char host[INET6_ADDRSTRLEN] = {0};
    const int family = i->ifa_addr->sa_family;
    if (family == AF_INET && (any4 || any6)) {
      ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr, host, sizeof(host));
    } else if (family == AF_INET6 && any6) {
      const auto* a = reinterpret_cast<sockaddr_in6*>(i->ifa_addr);
      if (IN6_IS_ADDR_LINKLOCAL(&a->sin6_addr)) continue;  // needs a scope: not for other hosts
      ::inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
    } else {
      continue;
    }
    ((i->ifa_flags & IFF_LOOPBACK) ? loopback : out).push_back(HostPort{host, at.port});
  }
  ::freeifaddrs(list);
  return out.empty() ? loopback : out;
}

std::string PeerAddress(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "?";
  char host[INET6_ADDRSTRLEN] = {0};
  uint16_t port = 0;
  if (ss.ss_family == AF_INET) {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    ::inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
    port = ntohs(a->sin_port);
  } else if (ss.ss_family == AF_INET6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    ::inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
    port = ntohs(a->sin6_port);
  } else {
    return "?";
  }
  return HostPort{host, port}.ToString();
}

Result<int> Listen(const HostPort& at, int backlog, uint16_t* bound) {
  AddrInfo ai;
  WEFT_RETURN_IF_ERROR(Resolve(at, true, &ai));
  Status last = Status(Code::kUnavailable, "no address for " + at.ToString());
  for (addrinfo* a = ai.list; a != nullptr; a = a->ai_next) {
    const int fd = ::socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
      last = ErrnoStatus(errno, "socket");
      continue;
    }
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (::bind(fd, a->ai_addr, a->ai_addrlen) != 0 || ::listen(fd, backlog) != 0) {
      const int err = errno;
      ::close(fd);
      if (err == EADDRINUSE) return Status(Code::kAlreadyExists, "tcp://" + at.ToString() + " is in use");
      last = ErrnoStatus(err, "listen(" + at.ToString() + ")");
      continue;
    }
    sockaddr_storage ss{};
    socklen_t len = sizeof(ss);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
    if (bound != nullptr) {
      *bound = ss.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port)
                                        : ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
    }
    return fd;
  }
  return last;
}

Result<int> Dial(const HostPort& to, Deadline deadline, const KeepAlive& keepalive) {
  AddrInfo ai;
  WEFT_RETURN_IF_ERROR(Resolve(to, false, &ai));
  Status last = Status(Code::kUnavailable, "no address for " + to.ToString());
  for (addrinfo* a = ai.list; a != nullptr; a = a->ai_next) {
    const int fd = ::socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
      last = ErrnoStatus(errno, "socket");
      continue;
    }
    Tune(fd, keepalive);
    int rc = ::connect(fd, a->ai_addr, a->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      if (!WaitFd(fd, POLLOUT, deadline)) {
        ::close(fd);
        return Status(Code::kTimeout, "connecting to " + to.ToString() + ": no answer before the deadline");
      }
      int err = 0;
      socklen_t len = sizeof(err);
      ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      rc = err == 0 ? 0 : -1;
      errno = err;
    }
    if (rc == 0) return fd;
    const int err = errno;
    ::close(fd);
    last = Status(Code::kUnavailable, "connecting to " + to.ToString() + ": " + std::strerror(err));
  }
  return last;
}

namespace {

class Plain final : public Stream {
 public:
  explicit Plain(int fd) : fd_(fd), peer_(PeerAddress(fd)) {
    const int flags = ::fcntl(fd_, F_GETFL);
    ::fcntl(fd_, F_SETFL, flags | O_NONBLOCK);
  }
  ~Plain() override { ::close(fd_); }

  Result<size_t> ReadSome(void* p, size_t n, Deadline deadline) override {
    ssize_t got = -1;
    int err = 0;
    auto attempt = [&] {
      got = ::recv(fd_, p, n, 0);
      err = got < 0 ? errno : 0;
      return got >= 0 || (err != EAGAIN && err != EINTR);
    };
    for (;;) {
      if (attempt() || (!deadline.is_now() && spin_.Spin(deadline, attempt))) {
        if (got > 0) return static_cast<size_t>(got);
        if (got == 0) return Status(Code::kUnavailable, "the peer at " + peer_ + " closed the connection");
        return Status(Code::kUnavailable, "connection to " + peer_ + ": " + std::strerror(err));
      }
      if (deadline.is_now() || !WaitFd(fd_, POLLIN, deadline)) {
        return Status(Code::kTimeout, "nothing from " + peer_ + " before the deadline");
      }
      spin_.Woke();
    }
  }

  Status Write(std::span<const ByteView> pieces, Deadline deadline) override {
    iovec iov[16];
    size_t first = 0, offset = 0;  // the piece being written, and how far into it
    while (first < pieces.size()) {
      int n = 0;
      for (size_t i = first; i < pieces.size() && n < 16; ++i, ++n) {
        const size_t skip = i == first ? offset : 0;
        iov[n].iov_base = const_cast<uint8_t*>(pieces[i].data() + skip);
        iov[n].iov_len = pieces[i].size() - skip;
      }
      msghdr msg{};
      msg.msg_iov = iov;
      msg.msg_iovlen = static_cast<size_t>(n);
      const ssize_t put = ::sendmsg(fd_, &msg, MSG_NOSIGNAL);
      if (put < 0) {
        if (errno == EINTR) continue;
        if (errno != EAGAIN) return Status(Code::kUnavailable, "connection to " + peer_ + ": " + std::strerror(errno));
        if (!WaitFd(fd_, POLLOUT, deadline)) return Status(Code::kTimeout, "sending to " + peer_ + ": the deadline passed");
        continue;
      }
      size_t left = static_cast<size_t>(put);
      while (first < pieces.size() && left >= pieces[first].size() - offset) {
        left -= pieces[first].size() - offset;
        ++first;
        offset = 0;
      }
      offset += left;
    }
    return Status::Ok();
  }

  void Shutdown() override { ::shutdown(fd_, SHUT_RDWR); }
  const std::string& peer_identity() const override { return identity_; }
  bool encrypted() const override { return false; }
  int fd() const override { return fd_; }
  const std::string& peer_address() const override { return peer_; }

 private:
  int fd_;
  std::string peer_;
  std::string identity_;
  ReadSpin spin_;
};

}  // namespace

std::unique_ptr<Stream> PlainStream(int fd) { return std::make_unique<Plain>(fd); }

}  // namespace weft::net
