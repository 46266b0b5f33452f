#include "internal/commits.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>

#include "weft/core/crc32c.h"

namespace weft::bus::internal {

namespace {

template <typename T>
uint32_t CrcBefore(const T& t) {
  return Crc32c(0, &t, offsetof(T, crc));
}

uint32_t CopyCrc(uint64_t position, uint32_t generation, uint32_t s) {
  uint8_t b[16];
  std::memcpy(b, &position, 8);
  std::memcpy(b + 8, &generation, 4);
  std::memcpy(b + 12, &s, 4);
  return Crc32c(0, b, sizeof(b));
}

Status ReadAll(int fd, void* out, size_t n, uint64_t at, const std::string& path) {
  size_t done = 0;
  while (done < n) {
    const ssize_t r = ::pread(fd, static_cast<uint8_t*>(out) + done, n - done, static_cast<off_t>(at + done));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return ErrnoStatus(errno, "read of " + path);
    if (r == 0) return Status(Code::kCorrupt, path + ": ends at byte " + std::to_string(at + done) + " (truncated)");
    done += static_cast<size_t>(r);
  }
  return Status::Ok();
}

Status WriteAll(int fd, const void* in, size_t n, uint64_t at, const std::string& path) {
  size_t done = 0;
  while (done < n) {
    const ssize_t r = ::pwrite(fd, static_cast<const uint8_t*>(in) + done, n - done, static_cast<off_t>(at + done));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return ErrnoStatus(errno, "write of " + path);
    done += static_cast<size_t>(r);
  }
  return Status::Ok();
}

uint64_t SlotAt(uint32_t s) { return sizeof(GroupFileHeader) + uint64_t{s} * kCommitSlotBytes; }

}  // namespace

LogBusMeta MakeMeta(uint32_t shards, uint32_t max_event, uint32_t flags, uint64_t id) {
  LogBusMeta m{};
  std::memcpy(m.magic, kMetaMagic, sizeof(m.magic));
  m.version = kLogBusVersion;
  m.shards = shards;
  m.max_event = max_event;
  m.flags = flags;
  m.id = id;
  m.crc = CrcBefore(m);
  return m;
}

Result<LogBusMeta> ParseMeta(ByteView bytes) {
  LogBusMeta m;
  if (bytes.size() != sizeof(m)) {
    return Status(Code::kCorrupt, "bus.meta has " + std::to_string(bytes.size()) + " bytes, not " + std::to_string(sizeof(m)));
  }
  std::memcpy(&m, bytes.data(), sizeof(m));
  if (std::memcmp(m.magic, kMetaMagic, sizeof(m.magic)) != 0) return Status(Code::kCorrupt, "bus.meta: not a Weft log: bus");
  if (m.crc != CrcBefore(m)) return Status(Code::kCorrupt, "bus.meta: checksum mismatch");
  if (m.version != kLogBusVersion) {
    return Status(Code::kCorrupt, "bus.meta: version " + std::to_string(m.version) + " (this build reads " +
                                      std::to_string(kLogBusVersion) + ")");
  }
  if (m.shards == 0 || m.shards > 256) return Status(Code::kCorrupt, "bus.meta: " + std::to_string(m.shards) + " shards");
  if (m.max_event == 0) return Status(Code::kCorrupt, "bus.meta: max_event 0");
  return m;
}

Status ParseGroupHeader(ByteView bytes, uint64_t bus_id, uint32_t shards) {
  return ParseSlotFileHeader(bytes, kGroupMagic, bus_id, shards).status();
}

Result<uint64_t> ParseSlotFileHeader(ByteView bytes, const char (&magic)[8], uint64_t id, uint32_t shards) {
  const bool group = std::memcmp(magic, kGroupMagic, sizeof(kGroupMagic)) == 0;
  const std::string what = group ? "group file" : "producer nonce file";
  GroupFileHeader h;
  if (bytes.size() < sizeof(h)) return Status(Code::kCorrupt, what + " header truncated");
  std::memcpy(&h, bytes.data(), sizeof(h));
  if (std::memcmp(h.magic, magic, sizeof(h.magic)) != 0) return Status(Code::kCorrupt, "not a Weft bus " + what);
  if (h.crc != CrcBefore(h)) return Status(Code::kCorrupt, what + " header: checksum mismatch");
  if (h.version != kLogBusVersion) return Status(Code::kCorrupt, what + " version " + std::to_string(h.version));
  if (id != 0 && h.bus_id != id) return Status(Code::kCorrupt, what + " of another bus (its id differs)");
  if (h.shards != shards) {
    return Status(Code::kCorrupt, what + " for " + std::to_string(h.shards) + " shards, not " + std::to_string(shards));
  }
  return h.bus_id;
}

CommitCopy MakeCommitCopy(uint64_t position, uint32_t generation, uint32_t s) {
  return CommitCopy{position, generation, CopyCrc(position, generation, s)};
}

Result<std::optional<uint64_t>> ParseCommitSlot(ByteView slot, uint32_t s) {
  if (slot.size() != kCommitSlotBytes) return Status(Code::kCorrupt, "commit slot truncated");
  CommitCopy c[2];
  std::memcpy(c, slot.data(), sizeof(c));
  const CommitCopy* best = nullptr;
  bool written = false;
  for (const CommitCopy& x : c) {
    if (x.generation == 0 && x.position == 0 && x.crc == 0) continue;  // never written
    written = true;
    if (x.generation == 0 || x.crc != CopyCrc(x.position, x.generation, s)) continue;
    if (best == nullptr || x.generation > best->generation) best = &x;
  }
  if (best != nullptr) return std::optional<uint64_t>(best->position);
  if (written) return Status(Code::kCorrupt, "shard " + std::to_string(s) + "'s committed position is damaged (both copies)");
  return std::optional<uint64_t>();
}

Result<bool> PublishFile(const std::string& path, ByteView bytes) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoStatus(errno, "create " + tmp);
  Status st = WriteAll(fd, bytes.data(), bytes.size(), 0, tmp);
  if (st.ok() && ::fsync(fd) != 0) st = ErrnoStatus(errno, "fsync " + tmp);
  ::close(fd);
  if (!st.ok()) {
    ::unlink(tmp.c_str());
    return st;
  }
  // link(2) fails with EEXIST rather than replace: the first creator's file stays.
  const int rc = ::link(tmp.c_str(), path.c_str());
  const int err = errno;
  ::unlink(tmp.c_str());
  if (rc != 0) {
    if (err == EEXIST) return false;
    return ErrnoStatus(err, "link " + path);
  }
  const std::string dir = path.substr(0, path.rfind('/'));
  const int dfd = ::open(dir.empty() ? "/" : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);  // the name is durable too
    ::close(dfd);
  }
  return true;
}

CommitFile::~CommitFile() {
  if (fd_ >= 0) ::close(fd_);
}

Result<std::unique_ptr<CommitFile>> CommitFile::Open(const std::string& dir, std::string_view name, uint64_t bus_id,
                                                     uint32_t shards, const std::function<uint64_t(uint32_t)>& start,
                                                     bool sync) {
  return OpenPath(dir + "/group." + std::string(name), kGroupMagic, bus_id, false, shards, start, sync);
}

Result<std::unique_ptr<CommitFile>> CommitFile::OpenPath(const std::string& path, const char (&magic)[8], uint64_t id,
                                                         bool any_id, uint32_t shards,
                                                         const std::function<uint64_t(uint32_t)>& start, bool sync) {
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0 && errno == ENOENT) {
    std::string bytes(sizeof(GroupFileHeader) + shards * kCommitSlotBytes, '\0');
    GroupFileHeader h{};
    std::memcpy(h.magic, magic, sizeof(h.magic));
    h.version = kLogBusVersion;
    h.shards = shards;
    h.bus_id = id;
    h.crc = CrcBefore(h);
    std::memcpy(bytes.data(), &h, sizeof(h));
    for (uint32_t s = 0; s < shards; ++s) {
      const CommitCopy c = MakeCommitCopy(start(s), 1, s);
      std::memcpy(bytes.data() + SlotAt(s), &c, sizeof(c));
    }
    Result<bool> made = PublishFile(path, AsBytes(bytes));
    if (!made.ok()) return made.status();
    fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW);
  }
  if (fd < 0) return ErrnoStatus(errno, "open " + path);
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return Status(Code::kCorrupt, path + " is not a regular file");
  }
  auto file = std::unique_ptr<CommitFile>(new CommitFile(fd, path, sync));
  uint8_t header[sizeof(GroupFileHeader)];
  WEFT_RETURN_IF_ERROR(ReadAll(fd, header, sizeof(header), 0, path));
  Result<uint64_t> parsed = ParseSlotFileHeader(ByteView(header, sizeof(header)), magic, any_id ? 0 : id, shards);
  if (!parsed.ok()) return Status(parsed.status().code(), path + ": " + parsed.status().message());
  file->id_ = *parsed;
  if (static_cast<uint64_t>(st.st_size) < SlotAt(shards)) {
    return Status(Code::kCorrupt, path + ": " + std::to_string(st.st_size) + " bytes, too short for " +
                                      std::to_string(shards) + " shards");
  }
  return file;
}

Result<uint64_t> CommitFile::Read(uint32_t s) const {
  uint8_t slot[kCommitSlotBytes];
  WEFT_RETURN_IF_ERROR(ReadAll(fd_, slot, sizeof(slot), SlotAt(s), path_));
  Result<std::optional<uint64_t>> p = ParseCommitSlot(ByteView(slot, sizeof(slot)), s);
  if (!p.ok()) return Status(p.status().code(), path_ + ": " + p.status().message());
  return p->value_or(0);
}

Status CommitFile::Write(uint32_t s, uint64_t position) {
  uint8_t slot[kCommitSlotBytes];
  WEFT_RETURN_IF_ERROR(ReadAll(fd_, slot, sizeof(slot), SlotAt(s), path_));
  CommitCopy c[2];
  std::memcpy(c, slot, sizeof(c));
  // The copy to overwrite: the older (or damaged) one; the newer stays until this one is whole.
  const bool ok0 = c[0].generation != 0 && c[0].crc == CopyCrc(c[0].position, c[0].generation, s);
  const bool ok1 = c[1].generation != 0 && c[1].crc == CopyCrc(c[1].position, c[1].generation, s);
  uint32_t gen = 0;
  int victim = 0;
  if (ok0 && ok1) {
    victim = c[0].generation < c[1].generation ? 0 : 1;
    gen = std::max(c[0].generation, c[1].generation);
  } else if (ok0) {
    victim = 1;
    gen = c[0].generation;
  } else if (ok1) {
    victim = 0;
    gen = c[1].generation;
  }
  const CommitCopy next = MakeCommitCopy(position, gen + 1, s);
  WEFT_RETURN_IF_ERROR(WriteAll(fd_, &next, sizeof(next), SlotAt(s) + victim * sizeof(CommitCopy), path_));
  if (sync_ && ::fdatasync(fd_) != 0) return ErrnoStatus(errno, "fdatasync " + path_);
  return Status::Ok();
}

}  // namespace weft::bus::internal
