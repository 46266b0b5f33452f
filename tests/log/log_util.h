// Helpers for log tests: a temporary directory removed at the end, payloads that carry their
// sequence number, and direct edits of segment files.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "weft/core/bytes.h"

namespace weft::testing {

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/weft-log-test-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::string Log() const { return path + "/log"; }
};

// A payload of `n` bytes (>= 8) that starts with `seq` and repeats a pattern derived from it.
inline std::vector<uint8_t> Payload(uint64_t seq, size_t n) {
  std::vector<uint8_t> p(std::max<size_t>(n, 8));
  std::memcpy(p.data(), &seq, 8);
  for (size_t i = 8; i < p.size(); ++i) p[i] = static_cast<uint8_t>(seq * 31 + i);
  return p;
}

inline bool PayloadIntact(uint64_t seq, ByteView b) {
  if (b.size() < 8) return false;
  std::vector<uint8_t> want = Payload(seq, b.size());
  return std::memcmp(want.data(), b.data(), b.size()) == 0;
}

inline std::string SegmentPath(const std::string& log, uint64_t first) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "/%020llu.wlog", static_cast<unsigned long long>(first));
  return log + buf;
}

inline std::string IndexPath(const std::string& log, uint64_t first) {
  std::string s = SegmentPath(log, first);
  return s.substr(0, s.size() - 4) + "widx";
}

// Overwrites bytes of a file at `offset`.
inline void Poke(const std::string& path, uint64_t offset, const void* data, size_t n) {
  const int fd = ::open(path.c_str(), O_WRONLY);
  if (fd >= 0) {
    (void)!::pwrite(fd, data, n, static_cast<off_t>(offset));
    ::close(fd);
  }
}

inline std::vector<uint8_t> Peek(const std::string& path, uint64_t offset, size_t n) {
  std::vector<uint8_t> out(n);
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd >= 0) {
    out.resize(std::max<ssize_t>(::pread(fd, out.data(), n, static_cast<off_t>(offset)), 0));
    ::close(fd);
  }
  return out;
}

}  // namespace weft::testing
