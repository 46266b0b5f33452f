// The remote backends' shared pieces (internal/remote.h).
#include "internal/remote.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <vector>

#include "internal/layout.h"

namespace weft::bus::internal {

std::string FormatShape(const RemoteShape& s) {
  return "weft-bus 1 " + std::to_string(s.shards) + " " + std::to_string(s.max_event) + " " + (s.timestamps ? "1" : "0");
}

Result<RemoteShape> ParseShape(std::string_view text, uint32_t most_max_event, const std::string& where) {
  auto bad = [&] {
    return Status(Code::kCorrupt, where + " holds '" + std::string(text.substr(0, 80)) + "', not a Weft bus's shape");
  };
  std::vector<std::string_view> tokens;
  for (size_t at = 0; at <= text.size() && tokens.size() < 6;) {
    const size_t sp = text.find(' ', at);
    tokens.push_back(text.substr(at, sp == std::string_view::npos ? std::string_view::npos : sp - at));
    if (sp == std::string_view::npos) break;
    at = sp + 1;
  }
  if (tokens.size() != 5 || tokens[0] != "weft-bus" || tokens[1] != "1" || (tokens[4] != "0" && tokens[4] != "1")) return bad();
  RemoteShape s;
  for (auto [tok, out] : {std::pair{tokens[2], &s.shards}, std::pair{tokens[3], &s.max_event}}) {
    auto [p, ec] = std::from_chars(tok.data(), tok.data() + tok.size(), *out);
    if (ec != std::errc() || p != tok.data() + tok.size() || tok.empty()) return bad();
  }
  if (s.shards == 0 || s.shards > kMaxShards || s.max_event == 0 || s.max_event > most_max_event) return bad();
  s.timestamps = tokens[4] == "1";
  return s;
}

Status AdoptShape(const RemoteShape& s, BusOptions* o) {
  if (o->must_match && (s.shards != o->shards || s.max_event != o->max_event || s.timestamps != o->timestamps)) {
    return InvalidArgument("bus '" + o->url + "' exists with " + std::to_string(s.shards) + " shards, max_event " +
                           std::to_string(s.max_event) + ": not what was asked");
  }
  o->shards = s.shards;
  o->max_event = s.max_event;
  o->timestamps = s.timestamps;
  return Status::Ok();
}

Status CheckRemoteName(std::string_view name, std::string_view what, std::string_view url, bool dots) {
  const std::string chars = dots ? "[A-Za-z0-9._-]" : "[A-Za-z0-9_-] (JetStream names and subject tokens take no '.')";
  if (name.empty() || name.size() > 64) {
    return InvalidArgument("bus '" + std::string(url) + "': a " + std::string(what) + " has 1 to 64 of " + chars +
                           " (the bus's name follows the address: scheme://host:port/<name>)");
  }
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
                    (dots && c == '.');
    if (!ok) return InvalidArgument(std::string(what) + " '" + std::string(name) + "': use " + chars);
  }
  return Status::Ok();
}

Result<uint64_t> ParseEntryId(std::string_view id) {
  const size_t dash = id.find('-');
  uint64_t ms = 0, seq = 0;
  if (dash == std::string_view::npos || dash == 0 || dash + 1 == id.size()) {
    return Status(Code::kCorrupt, "redis entry id '" + std::string(id.substr(0, 64)) + "'");
  }
  auto a = std::from_chars(id.data(), id.data() + dash, ms);
  auto b = std::from_chars(id.data() + dash + 1, id.data() + id.size(), seq);
  if (a.ec != std::errc() || b.ec != std::errc() || a.ptr != id.data() + dash || b.ptr != id.data() + id.size() ||
      ms >= (uint64_t{1} << (64 - kEntrySeqBits)) || seq >= (uint64_t{1} << kEntrySeqBits)) {
    return Status(Code::kCorrupt, "redis entry id '" + std::string(id.substr(0, 64)) + "' does not fit a Weft position");
  }
  return (ms << kEntrySeqBits) | seq;
}

Result<int> RemoteBell::Open() {
  int fd = fd_.load(std::memory_order_acquire);
  if (fd >= 0) return fd;
  fd = ::eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK);  // starts readable
  if (fd < 0) return ErrnoStatus(errno, "eventfd");
  fd_.store(fd, std::memory_order_release);
  return fd;
}

void RemoteBell::Ring() {
  const int fd = fd_.load(std::memory_order_acquire);
  if (fd < 0) return;
  const uint64_t one = 1;
  (void)!::write(fd, &one, sizeof(one));
}

void RemoteBell::Drain() {
  const int fd = fd_.load(std::memory_order_acquire);
  if (fd < 0) return;
  uint64_t v;
  (void)!::read(fd, &v, sizeof(v));
}

void RemoteBell::Close() {
  const int fd = fd_.exchange(-1, std::memory_order_acq_rel);
  if (fd >= 0) ::close(fd);
}

}  // namespace weft::bus::internal
