#include "weft/shm/segment.h"

#include <dirent.h>
#include <fcntl.h>
#include <pwd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <thread>
#include <type_traits>

#include "weft/core/fault_guard.h"
#include "weft/core/clock.h"
#include "weft/shm/process.h"

namespace weft::shm {

static_assert(std::is_trivially_copyable_v<SegmentHeader>, "shared structs are trivially copyable");
static_assert(sizeof(SegmentHeader) == 160, "SegmentHeader size is part of format v1");
static_assert(offsetof(SegmentHeader, magic) == 0, "magic first");
static_assert(offsetof(SegmentHeader, version) == 8, "format v1 layout");
static_assert(offsetof(SegmentHeader, kind) == 12, "format v1 layout");
static_assert(offsetof(SegmentHeader, total_bytes) == 24, "format v1 layout");
static_assert(offsetof(SegmentHeader, creator_pid) == 32, "format v1 layout");
static_assert(offsetof(SegmentHeader, creator_start_ticks) == 40, "format v1 layout");
static_assert(offsetof(SegmentHeader, name) == 56, "format v1 layout");
static_assert(std::atomic_ref<uint64_t>::is_always_lock_free, "shared atomics must be lock-free");

namespace {

constexpr std::string_view kPrefix = "/weft.";

std::string ShmPath(std::string_view name) {
  std::string p(kPrefix);
  p += name;
  return p;
}

size_t PageRound(size_t n) {
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  return (n + page - 1) / page * page;
}

constexpr unsigned kSealedSet = F_SEAL_SHRINK | F_SEAL_GROW;

std::string UserName(uid_t uid) {
  char buf[1024];
  passwd pw{};
  passwd* out = nullptr;
  if (::getpwuid_r(uid, &pw, buf, sizeof(buf), &out) == 0 && out != nullptr) {
    return std::to_string(uid) + " (" + out->pw_name + ")";
  }
  return std::to_string(uid);
}

// A segment is trusted only if this uid owns it and nobody else may open it: another uid's
// object (a squatted name) could be read, scribbled or shrunk by that uid at will.
Status CheckOwner(const struct stat& st, std::string_view what) {
  const uid_t me = ::geteuid();
  if (st.st_uid != me) {
    return Status(Code::kPermissionDenied, std::string(what) + " belongs to uid " + UserName(st.st_uid) +
                                               ", not to this process's uid " + UserName(me) +
                                               "; refusing to use another user's object");
  }
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return Status(Code::kPermissionDenied, std::string(what) + " has mode " + mode +
                                               ": other users may open it; refusing to use it");
  }
  return Status::Ok();
}

}  // namespace

const char* SegmentKindName(uint32_t kind) {
  switch (kind) {
    case 1: return "channel";
    case 2: return "pool";
    case 3: return "registry";
    case 4: return "block";
    case 5: return "topic";
    case 6: return "bus";
    default: return "unknown";
  }
}

Status ValidateName(std::string_view name) {
  if (name.empty()) return InvalidArgument("segment name is empty");
  if (name.size() > kMaxNameLength) {
    return InvalidArgument("segment name longer than 100 characters");
  }
  if (name[0] == '.') return InvalidArgument("segment name must not start with '.'");
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok) {
      return InvalidArgument("segment name '" + std::string(name) +
                             "' has a character outside [A-Za-z0-9._-]");
    }
  }
  return Status::Ok();
}

Status ValidateHeader(const void* bytes, size_t size, uint32_t expected_kind,
                      uint32_t expected_kind_version) {
  if (size < sizeof(SegmentHeader)) {
    return Corrupt("segment of " + std::to_string(size) + " bytes is smaller than its header");
  }
  SegmentHeader h;
  std::memcpy(&h, bytes, sizeof(h));
  uint64_t magic = h.magic;
  if (magic != kSegmentMagic) return Corrupt("not a Weft segment (bad magic)");
  if (h.version != kSegmentVersion) {
    return Status(Code::kVersionMismatch, "segment header version " + std::to_string(h.version) +
                                              ", this build reads " +
                                              std::to_string(kSegmentVersion));
  }
  if (h.header_bytes != sizeof(SegmentHeader)) return Corrupt("segment header_bytes is wrong");
  if (h.total_bytes != size) {
    return Corrupt("segment records " + std::to_string(h.total_bytes) + " bytes but maps " +
                   std::to_string(size));
  }
  if (std::memchr(h.name, '\0', sizeof(h.name)) == nullptr) return Corrupt("segment name unterminated");
  if (expected_kind != 0 && h.kind != expected_kind) {
    return Status(Code::kWrongKind, std::string("segment is a ") + SegmentKindName(h.kind) +
                                        ", not a " + SegmentKindName(expected_kind));
  }
  if (expected_kind != 0 && h.kind_version != expected_kind_version) {
    return Status(Code::kVersionMismatch,
                  std::string(SegmentKindName(h.kind)) + " layout version " +
                      std::to_string(h.kind_version) + ", this build reads " +
                      std::to_string(expected_kind_version));
  }
  return Status::Ok();
}

Segment::~Segment() { Reset(); }

void Segment::Reset() {
  UnguardMapping(guard_);
  guard_ = -1;
  damaged_ = nullptr;
  if (base_ != nullptr) ::munmap(base_, size_);
  base_ = nullptr;
  size_ = 0;
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

Segment::Segment(Segment&& other) noexcept
    : base_(other.base_),
      size_(other.size_),
      name_(std::move(other.name_)),
      guard_(other.guard_),
      damaged_(other.damaged_),
      fd_(other.fd_) {
  other.damaged_ = nullptr;
  other.base_ = nullptr;
  other.size_ = 0;
  other.guard_ = -1;
  other.fd_ = -1;
}

Segment& Segment::operator=(Segment&& other) noexcept {
  if (this != &other) {
    Reset();
    base_ = other.base_;
    size_ = other.size_;
    name_ = std::move(other.name_);
    guard_ = other.guard_;
    damaged_ = other.damaged_;
    fd_ = other.fd_;
    other.damaged_ = nullptr;
    other.base_ = nullptr;
    other.size_ = 0;
    other.guard_ = -1;
    other.fd_ = -1;
  }
  return *this;
}


namespace {

// Fills in a new segment's header (all but the magic).
void InitHeader(SegmentHeader* h, std::string_view name, SegmentKind kind, uint32_t kind_version,
                size_t size) {
  h->version = kSegmentVersion;
  h->kind = static_cast<uint32_t>(kind);
  h->kind_version = kind_version;
  h->header_bytes = sizeof(SegmentHeader);
  h->total_bytes = size;
  ProcessIdentity self = SelfIdentity();
  h->creator_pid = self.pid;
  h->creator_start_ticks = self.start_ticks;
  h->created_unix_ns = WallNs();
  std::memcpy(h->name, name.data(), name.size());
}

}  // namespace

Result<Segment> Segment::Create(std::string_view name, SegmentKind kind, uint32_t kind_version,
                                size_t total_bytes) {
  WEFT_RETURN_IF_ERROR(ValidateName(name));
  if (total_bytes < sizeof(SegmentHeader)) return InvalidArgument("segment too small");
  const size_t size = PageRound(total_bytes);
  const std::string path = ShmPath(name);
  int fd = ::shm_open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    Status s = ErrnoStatus(errno, "shm_open(" + path + ")");
    if (s.code() == Code::kAlreadyExists) {
      return Status(Code::kAlreadyExists, "segment '" + std::string(name) + "' already exists");
    }
    return s;
  }
  ::fchmod(fd, 0600);  // the umask may have narrowed it; never widened
  if (::ftruncate(fd, static_cast<off_t>(size)) != 0) {
    int err = errno;
    ::close(fd);
    ::shm_unlink(path.c_str());
    return ErrnoStatus(err, "ftruncate(" + path + ")");
  }
  // MAP_POPULATE: fault the pages in now rather than on the data path.
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
  int err = errno;
  ::close(fd);
  if (p == MAP_FAILED) {
    ::shm_unlink(path.c_str());
    return ErrnoStatus(err, "mmap(" + path + ")");
  }
  Segment seg;
  seg.base_ = static_cast<uint8_t*>(p);
  seg.size_ = size;
  seg.name_ = std::string(name);
  seg.guard_ = GuardMapping(p, size);
  seg.damaged_ = MappingDamageFlag(seg.guard_);
  InitHeader(seg.header(), name, kind, kind_version, size);
  return seg;
}

Result<Segment> Segment::CreateSealed(std::string_view name, SegmentKind kind, uint32_t kind_version,
                                      size_t total_bytes) {
  WEFT_RETURN_IF_ERROR(ValidateName(name));
  if (total_bytes < sizeof(SegmentHeader)) return InvalidArgument("segment too small");
  const size_t size = PageRound(total_bytes);
  const std::string label = "weft." + std::string(name);
  const int fd = ::memfd_create(label.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return ErrnoStatus(errno, "memfd_create(" + label + ")");
  if (::ftruncate(fd, static_cast<off_t>(size)) != 0 ||
      ::fcntl(fd, F_ADD_SEALS, kSealedSet | F_SEAL_SEAL) != 0) {
    const int err = errno;
    ::close(fd);
    return ErrnoStatus(err, "sealing " + label);
  }
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
  if (p == MAP_FAILED) {
    const int err = errno;
    ::close(fd);
    return ErrnoStatus(err, "mmap(" + label + ")");
  }
  Segment seg;
  seg.base_ = static_cast<uint8_t*>(p);
  seg.size_ = size;
  seg.name_ = std::string(name);
  seg.fd_ = fd;  // sealed: cannot shrink, so no guard is needed
  InitHeader(seg.header(), name, kind, kind_version, size);
  return seg;
}

Result<Segment> Segment::OpenSealed(int fd, uint32_t expected_kind, uint32_t expected_kind_version,
                                    Status (*validate)(const void* bytes, size_t size)) {
  const int seals = ::fcntl(fd, F_GET_SEALS);
  if (seals < 0 || (static_cast<unsigned>(seals) & kSealedSet) != kSealedSet) {
    return Status(Code::kPermissionDenied, "a shared segment passed as a descriptor must be a memfd sealed "
                                           "against shrinking and growing");
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) return ErrnoStatus(errno, "fstat(sealed segment)");
  const size_t size = static_cast<size_t>(st.st_size);
  if (size < sizeof(SegmentHeader)) return Corrupt("sealed segment of " + std::to_string(size) + " bytes");
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
  if (p == MAP_FAILED) return ErrnoStatus(errno, "mmap(sealed segment)");
  Segment seg;
  seg.base_ = static_cast<uint8_t*>(p);
  seg.size_ = size;
  // acquire: pairs with the release in Segment::Publish.
  if (std::atomic_ref<uint64_t>(seg.header()->magic).load(std::memory_order_acquire) == 0) {
    return Corrupt("sealed segment was never initialized");
  }
  WEFT_RETURN_IF_ERROR(ValidateHeader(p, size, expected_kind, expected_kind_version));
  char name[sizeof(SegmentHeader::name)];
  std::memcpy(name, seg.header()->name, sizeof(name));
  name[sizeof(name) - 1] = '\0';
  WEFT_RETURN_IF_ERROR(ValidateName(name));
  seg.name_ = name;
  if (validate != nullptr) WEFT_RETURN_IF_ERROR(validate(p, size));
  return seg;
}

void Segment::Publish() {
  // release: publishes every byte of the initialized layout; pairs with the acquire load of
  // magic in Segment::Open.
  std::atomic_ref<uint64_t>(header()->magic).store(kSegmentMagic, std::memory_order_release);
}

Result<Segment> Segment::Open(std::string_view name, uint32_t expected_kind,
                              uint32_t expected_kind_version) {
  WEFT_RETURN_IF_ERROR(ValidateName(name));
  const std::string path = ShmPath(name);
  int fd = ::shm_open(path.c_str(), O_RDWR | O_CLOEXEC, 0);
  if (fd < 0) {
    Status s = ErrnoStatus(errno, "shm_open(" + path + ")");
    if (s.code() == Code::kNotFound) {
      return NotFound("no segment named '" + std::string(name) + "'");
    }
    struct stat st {};
    if (s.code() == Code::kPermissionDenied && ::stat(("/dev/shm" + path).c_str(), &st) == 0) {
      Status owner = CheckOwner(st, "segment '" + std::string(name) + "'");
      if (!owner.ok()) return owner;  // says whose it is
    }
    return s;
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return ErrnoStatus(err, "fstat(" + path + ")");
  }
  Status owner = CheckOwner(st, "segment '" + std::string(name) + "'");
  if (!owner.ok()) {
    ::close(fd);
    return owner;
  }
  // A creator between shm_open and Publish leaves a short or unpublished segment: wait a
  // little for it, then call it corrupt.
  const Deadline deadline = Deadline::AfterMs(1000);
  void* p = MAP_FAILED;
  size_t size = 0;
  for (;;) {
    if (::fstat(fd, &st) != 0) {
      int err = errno;
      ::close(fd);
      return ErrnoStatus(err, "fstat(" + path + ")");
    }
    size = static_cast<size_t>(st.st_size);
    if (size >= sizeof(SegmentHeader)) {
      p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
      if (p == MAP_FAILED) {
        int err = errno;
        ::close(fd);
        return ErrnoStatus(err, "mmap(" + path + ")");
      }
      auto* h = static_cast<SegmentHeader*>(p);
      // acquire: pairs with the release in Segment::Publish.
      if (std::atomic_ref<uint64_t>(h->magic).load(std::memory_order_acquire) != 0) break;
      ::munmap(p, size);
      p = MAP_FAILED;
    }
    if (deadline.Expired()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ::close(fd);
  if (p == MAP_FAILED) {
    return Corrupt("segment '" + std::string(name) + "' was never initialized (" +
                   std::to_string(size) + " bytes)");
  }
  Segment seg;
  seg.base_ = static_cast<uint8_t*>(p);
  seg.size_ = size;
  seg.name_ = std::string(name);
  seg.guard_ = GuardMapping(p, size);
  seg.damaged_ = MappingDamageFlag(seg.guard_);
  Status s = ValidateHeader(p, size, expected_kind, expected_kind_version);
  if (!s.ok()) return s.Annotate("segment '" + std::string(name) + "'");
  return seg;
}

Result<Segment> Segment::OpenValidated(std::string_view name, SegmentKind kind, uint32_t kind_version,
                                       Status (*validate)(const void* bytes, size_t size)) {
  Result<Segment> seg = Open(name, static_cast<uint32_t>(kind), kind_version);
  if (!seg.ok()) return seg;
  Status v = validate(seg->base(), seg->size());
  if (!v.ok()) return v.Annotate(std::string(SegmentKindName(static_cast<uint32_t>(kind))) + " '" + std::string(name) + "'");
  return seg;
}

Status Segment::Unlink(std::string_view name) {
  WEFT_RETURN_IF_ERROR(ValidateName(name));
  const std::string path = ShmPath(name);
  if (::shm_unlink(path.c_str()) != 0) {
    Status s = ErrnoStatus(errno, "shm_unlink(" + path + ")");
    if (s.code() == Code::kNotFound) return NotFound("no segment named '" + std::string(name) + "'");
    return s;
  }
  return Status::Ok();
}

std::vector<std::string> Segment::List() {
  std::vector<std::string> names;
  DIR* d = ::opendir("/dev/shm");
  if (d == nullptr) return names;
  while (dirent* e = ::readdir(d)) {
    std::string_view n(e->d_name);
    if (n.size() > 5 && n.substr(0, 5) == "weft.") {
      std::string_view rest = n.substr(5);
      if (ValidateName(rest).ok()) names.emplace_back(rest);
    }
  }
  ::closedir(d);
  return names;
}

}  // namespace weft::shm
