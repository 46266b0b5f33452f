// The handshake of ipc:// and tcp://: encoding, strict parsing, datagrams with descriptors.
#include "internal/handshake.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "internal/wire.h"

namespace weft::rpc::internal {
namespace {

constexpr std::string_view kHello = "hello 3";

// Splits off the first line; false if there is none.
bool Line(std::string_view* msg, std::string_view* line) {
  const size_t nl = msg->find('\n');
  if (nl == std::string_view::npos) return false;
  *line = msg->substr(0, nl);
  msg->remove_prefix(nl + 1);
  return true;
}

bool Printable(std::string_view s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) return false;
  }
  return true;
}

// A decimal number of 1 to `digits` digits, no sign, no leading zero unless it is 0.
bool Decimal(std::string_view s, size_t digits, uint64_t* out) {
  if (s.empty() || s.size() > digits || (s.size() > 1 && s[0] == '0')) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  *out = v;
  return true;
}

void CloseAll(std::vector<int>* fds) {
  for (int fd : *fds) ::close(fd);
  fds->clear();
}

}  // namespace

std::string EncodeHello(std::string_view resource, int pool_slot, std::string_view contract) {
  std::string m(kHello);
  m += "\nwire " + std::to_string(kWireVersion) + " " + std::to_string(kWireVersion) + "\n";
  m += resource;
  m += '\n';
  m += pool_slot == kNoSlot ? std::string("-") : std::to_string(pool_slot);
  m += '\n';
  m += contract;
  return m;
}

Result<Hello> ParseHello(std::string_view msg) {
  std::string_view line;
  if (!Line(&msg, &line)) return Corrupt("handshake: expected 'hello 3'");
  if (line != kHello) {
    if (line.substr(0, 6) == "hello ") {
      return Status(Code::kVersionMismatch, "handshake: the client speaks handshake '" +
                                                std::string(line.substr(0, 16)) + "', this server 'hello 3'");
    }
    return Corrupt("handshake: expected 'hello 3'");
  }
  Hello h;
  uint64_t lo = 0, hi = 0;
  if (!Line(&msg, &line) || line.substr(0, 5) != "wire ") return Corrupt("handshake: no wire versions");
  line.remove_prefix(5);
  const size_t space = line.find(' ');
  if (space == std::string_view::npos || !Decimal(line.substr(0, space), 3, &lo) ||
      !Decimal(line.substr(space + 1), 3, &hi) || lo == 0 || lo > hi || hi > 255) {
    return Corrupt("handshake: bad wire versions");
  }
  h.wire_min = static_cast<uint8_t>(lo);
  h.wire_max = static_cast<uint8_t>(hi);
  if (!Line(&msg, &line) || line.empty() || line.size() > 128 || !Printable(line)) {
    return Corrupt("handshake: bad resource name");
  }
  h.resource = std::string(line);
  if (!Line(&msg, &line)) return Corrupt("handshake: no pool slot");
  if (line != "-") {
    uint64_t slot = 0;
    if (!Decimal(line, 2, &slot) || slot >= 64) return Corrupt("handshake: bad pool slot");
    h.pool_slot = static_cast<int>(slot);
  }
  h.contract = msg;
  return h;
}

std::string EncodeAccept(uint32_t resource_id, std::string_view contract) {
  return "ok\n" + std::to_string(resource_id) + "\nwire " + std::to_string(kWireVersion) + "\n" + std::string(contract);
}

std::string EncodeRefusal(const Status& why) {
  return "error\n" + std::to_string(static_cast<int>(why.code())) + "\n" + why.message();
}

Result<Answer> ParseAnswer(std::string_view msg) {
  std::string_view head, number, wire;
  if (!Line(&msg, &head) || !Line(&msg, &number)) return Corrupt("bad handshake answer");
  uint64_t v = 0;
  if (head == "error") {
    if (!Decimal(number, 2, &v) || !IsFailureCode(v)) {
      return Corrupt("bad handshake answer");
    }
    return Status(static_cast<Code>(v), std::string(msg));
  }
  if (head != "ok" || !Decimal(number, 10, &v) || v == 0 || v > UINT32_MAX) return Corrupt("bad handshake answer");
  Answer a;
  a.resource = static_cast<uint32_t>(v);
  uint64_t w = 0;
  if (!Line(&msg, &wire) || wire.substr(0, 5) != "wire " || !Decimal(wire.substr(5), 3, &w)) {
    return Corrupt("bad handshake answer: no wire version");
  }
  if (w != kWireVersion) {
    return Status(Code::kVersionMismatch, "the server chose rpc wire version " + std::to_string(w) +
                                              ", this client speaks " + std::to_string(kWireVersion));
  }
  a.contract = msg;
  return a;
}

Status SendMessage(int sock, std::string_view msg, const std::vector<int>& fds) {
  iovec iov{const_cast<char*>(msg.data()), msg.size()};
  msghdr m{};
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  std::vector<char> control;
  if (!fds.empty()) {
    control.assign(CMSG_SPACE(sizeof(int) * fds.size()), 0);
    m.msg_control = control.data();
    m.msg_controllen = control.size();
    cmsghdr* c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  if (::sendmsg(sock, &m, MSG_NOSIGNAL) < 0) return ErrnoStatus(errno, "sendmsg (handshake)");
  return Status::Ok();
}

Result<std::string> RecvMessage(int sock, Deadline deadline, std::vector<int>* fds, size_t max_fds) {
  fds->clear();
  pollfd p{sock, POLLIN, 0};
  const int64_t left = deadline.RemainingNs();
  const int ms = deadline.is_never() ? -1 : static_cast<int>(std::min<int64_t>(left / 1'000'000 + 1, INT32_MAX));
  const int r = ::poll(&p, 1, ms);
  if (r == 0) return Status(Code::kTimeout, "no answer in the handshake");
  if (r < 0) return ErrnoStatus(errno, "poll (handshake)");
  std::string buf(kMaxHandshakeBytes, '\0');
  iovec iov{buf.data(), buf.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 16)];
  msghdr m{};
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  m.msg_control = control;
  m.msg_controllen = sizeof(control);
  const ssize_t n = ::recvmsg(sock, &m, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  if (n < 0) return ErrnoStatus(errno, "recvmsg (handshake)");
  for (cmsghdr* c = CMSG_FIRSTHDR(&m); c != nullptr; c = CMSG_NXTHDR(&m, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      fds->push_back(fd);
    }
  }
  if ((m.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0 || fds->size() > max_fds) {
    CloseAll(fds);
    return Corrupt("handshake message too large or with too many descriptors");
  }
  if (n == 0) {
    CloseAll(fds);
    return Status(Code::kPeerDead, "the peer closed the connection during the handshake");
  }
  buf.resize(static_cast<size_t>(n));
  return buf;
}

}  // namespace weft::rpc::internal
