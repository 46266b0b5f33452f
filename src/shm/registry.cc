#include "internal/registry.h"

#include <atomic>
#include <cstddef>
#include <cstring>
#include <string>

#include <unistd.h>

#include "weft/core/clock.h"
#include "weft/shm/process.h"
#include "weft/shm/segment.h"

namespace weft::shm::internal {
namespace {

constexpr uint64_t kEntries = 1024;
constexpr uint64_t kEntriesOffset = 4096;
constexpr uint64_t kEmpty = 0;
constexpr uint64_t kReady = 1;
constexpr uint64_t kClaiming = uint64_t{1} << 63;  // | pid

struct alignas(64) RegistryEntry {
  uint64_t state;  // kEmpty, kReady, or kClaiming | pid
  uint32_t kind;
  uint32_t reserved;
  int64_t created_unix_ns;
  char name[104];  // NUL-terminated
};
static_assert(sizeof(RegistryEntry) == 128, "registry format v1 layout");

struct RegistryConfig {
  uint64_t entries;
  uint64_t entries_offset;
};

template <typename T>
std::atomic_ref<T> A(T& v) {
  return std::atomic_ref<T>(v);
}

}  // namespace

std::string RegistryName() { return "registry." + std::to_string(::geteuid()); }

namespace {

Result<Segment> OpenRegistry() {
  const std::string registry = RegistryName();
  for (int attempt = 0; attempt < 3; ++attempt) {
    Result<Segment> seg = Segment::OpenValidated(registry, SegmentKind::kRegistry, kRegistryLayoutVersion,
                                                 ValidateRegistry);
    if (seg.ok() || seg.status().code() != Code::kNotFound) return seg;
    Result<Segment> created = Segment::Create(registry, SegmentKind::kRegistry, kRegistryLayoutVersion,
                                              kEntriesOffset + kEntries * sizeof(RegistryEntry));
    if (!created.ok()) {
      if (created.status().code() == Code::kAlreadyExists) continue;  // lost the race: open it
      return created;
    }
    RegistryConfig c{kEntries, kEntriesOffset};
    std::memcpy(created->base() + 192, &c, sizeof(c));
    created->Publish();
    return created;
  }
  return Status(Code::kBusy, "the registry keeps appearing and vanishing");
}

RegistryEntry* Entries(Segment& seg) { return reinterpret_cast<RegistryEntry*>(seg.base() + kEntriesOffset); }

bool NameIs(RegistryEntry& e, std::string_view name) {
  char copy[sizeof(e.name)];
  for (size_t i = 0; i < sizeof(copy); ++i) copy[i] = A(e.name[i]).load(std::memory_order_relaxed);
  copy[sizeof(copy) - 1] = '\0';
  return name == copy;
}

bool Exists(std::string_view name) {
  return ::access(("/dev/shm/weft." + std::string(name)).c_str(), F_OK) == 0;
}

}  // namespace

Status ValidateRegistry(const void* bytes, size_t size) {
  if (size < kEntriesOffset) return Corrupt("registry smaller than its header");
  RegistryConfig c;
  std::memcpy(&c, static_cast<const uint8_t*>(bytes) + 192, sizeof(c));
  if (c.entries != kEntries || c.entries_offset != kEntriesOffset ||
      kEntriesOffset + kEntries * sizeof(RegistryEntry) > size) {
    return Corrupt("registry table does not match its size");
  }
  return Status::Ok();
}

// Case analysis of the CAS on an entry's state: empty, or claiming by a dead process, is
// claimed; anything else is skipped. After publishing, an entry that finds the same name at a
// lower index (another process registered it at the same time) withdraws itself.
Status RegisterName(std::string_view name, uint32_t kind) {
  if (name.size() >= sizeof(RegistryEntry::name)) return InvalidArgument("name too long for the registry");
  Result<Segment> seg = OpenRegistry();
  if (!seg.ok()) return seg.status();
  RegistryEntry* e = Entries(*seg);
  for (uint64_t i = 0; i < kEntries; ++i) {
    if (A(e[i].state).load(std::memory_order_acquire) == kReady && NameIs(e[i], name)) return Status::Ok();
  }
  const uint64_t me = kClaiming | static_cast<uint32_t>(SelfIdentity().pid);
  for (int pass = 0; pass < 2; ++pass) {
    for (uint64_t i = 0; i < kEntries; ++i) {
      uint64_t st = A(e[i].state).load(std::memory_order_acquire);
      const bool dead_claim = (st & kClaiming) && !IsAlive({static_cast<int32_t>(st & 0xFFFFFFFFu), 0});
      const bool stale = pass == 1 && st == kReady && !Exists(std::string_view(e[i].name));
      if (st != kEmpty && !dead_claim && !stale) continue;
      // acq_rel: claims the entry; a failure means another process took it first.
      if (!A(e[i].state).compare_exchange_strong(st, me, std::memory_order_acq_rel)) continue;
      for (size_t k = 0; k < sizeof(e[i].name); ++k) {
        A(e[i].name[k]).store(k < name.size() ? name[k] : '\0', std::memory_order_relaxed);
      }
      A(e[i].kind).store(kind, std::memory_order_relaxed);
      A(e[i].created_unix_ns).store(WallNs(), std::memory_order_relaxed);
      // release: the name is complete before readers see the entry ready.
      A(e[i].state).store(kReady, std::memory_order_release);
      for (uint64_t j = 0; j < i; ++j) {
        if (A(e[j].state).load(std::memory_order_acquire) == kReady && NameIs(e[j], name)) {
          A(e[i].state).store(kEmpty, std::memory_order_release);
          break;
        }
      }
      return Status::Ok();
    }
  }
  return Status(Code::kBusy, "the registry is full (1024 live names)");
}

Result<std::vector<std::string>> RegisteredNames(uint32_t kind) {
  Result<Segment> seg = OpenRegistry();
  if (!seg.ok()) return seg.status();
  std::vector<std::string> names;
  RegistryEntry* e = Entries(*seg);
  for (uint64_t i = 0; i < kEntries; ++i) {
    if (A(e[i].state).load(std::memory_order_acquire) != kReady) continue;
    if (A(e[i].kind).load(std::memory_order_relaxed) != kind) continue;
    char copy[sizeof(e[i].name)];
    for (size_t k = 0; k < sizeof(copy); ++k) copy[k] = A(e[i].name[k]).load(std::memory_order_relaxed);
    copy[sizeof(copy) - 1] = '\0';
    if (ValidateName(copy).ok() && Exists(copy)) names.emplace_back(copy);
  }
  return names;
}

}  // namespace weft::shm::internal
