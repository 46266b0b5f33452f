// Shared-memory segments: named POSIX shared memory under /dev/shm/weft.<name>, mode 0600,
// opening with a common 160-byte header (docs/formats/segment.md) that records the kind, the
// layout versions and the creator's identity. Thread rule: a Segment is one mapping owned by
// one object; the bytes inside follow the rules of the kind that uses them.
//
// Trust (docs/security.md): Open refuses a segment owned by another uid, or readable or
// writable by others, with kPermissionDenied naming its owner. Every mapping is guarded: if
// another process shrinks the file under it, the access that would die of SIGBUS reads zeros
// instead and the segment reports damaged() (the kind then answers kCorrupt). Sealed segments
// (memfd, F_SEAL_SHRINK | F_SEAL_GROW) are passed as descriptors and cannot shrink at all.
//
//   Result<Segment> seg = Segment::Create("frames", SegmentKind::kChannel, 1, 1 << 20);
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "weft/core/status.h"

namespace weft::shm {

enum class SegmentKind : uint32_t { kChannel = 1, kPool = 2, kRegistry = 3, kBlock = 4, kTopic = 5, kBus = 6 };

const char* SegmentKindName(uint32_t kind);

inline constexpr uint64_t kSegmentMagic = 0x314745534654'4557ull;  // "WEFTSEG1", little-endian
inline constexpr uint32_t kSegmentVersion = 1;
inline constexpr size_t kMaxNameLength = 100;

// The first 160 bytes of every segment. Trivially copyable; layout pinned in segment.cc.
struct SegmentHeader {
  uint64_t magic;               // written last (release, via atomic_ref) once ready
  uint32_t version;             // kSegmentVersion
  uint32_t kind;                // SegmentKind
  uint32_t kind_version;        // version of the kind's own layout
  uint32_t header_bytes;        // sizeof(SegmentHeader)
  uint64_t total_bytes;         // size of the whole segment
  int32_t creator_pid;
  uint32_t reserved0;
  uint64_t creator_start_ticks;
  int64_t created_unix_ns;
  char name[kMaxNameLength + 4];  // NUL-terminated copy of the name
};

// Checks a name: 1 to 100 characters from [A-Za-z0-9._-], not starting with '.'.
Status ValidateName(std::string_view name);

// Checks the bytes of a segment header against the mapped size and an expected kind
// (0 accepts any kind). Reads nothing outside [bytes, bytes + size). Fuzzed.
Status ValidateHeader(const void* bytes, size_t size, uint32_t expected_kind,
                      uint32_t expected_kind_version);

class Segment {
 public:
  Segment() = default;
  ~Segment();
  Segment(Segment&& other) noexcept;
  Segment& operator=(Segment&& other) noexcept;
  Segment(const Segment&) = delete;
  Segment& operator=(const Segment&) = delete;

  // Creates /dev/shm/weft.<name> of `total_bytes` (rounded up to a page), zero-filled, with the
  // header filled in except `magic`: the caller initializes its layout, then calls Publish().
  // Fails with kAlreadyExists if the name is taken.
  static Result<Segment> Create(std::string_view name, SegmentKind kind, uint32_t kind_version,
                                size_t total_bytes);
  // Opens an existing segment and validates its header (waits up to 1 s for a creator that
  // is still initializing it). expected_kind 0 opens any kind (for tools).
  static Result<Segment> Open(std::string_view name, uint32_t expected_kind,
                              uint32_t expected_kind_version);
  // Open, then `validate` over the mapped bytes (a kind's own layout checks); a failure is
  // annotated with the kind and name.
  static Result<Segment> OpenValidated(std::string_view name, SegmentKind kind, uint32_t kind_version,
                                       Status (*validate)(const void* bytes, size_t size));
  // Removes the name; mappings stay valid until closed.
  static Status Unlink(std::string_view name);
  // Names (without the "weft." prefix) of all Weft segments on this host.
  static std::vector<std::string> List();

  // Creates an unnamed segment (memfd) of `total_bytes`, sealed so that no process holding
  // its descriptor can shrink or grow it; `name` only labels it (header, doorbells). Publish
  // as for Create, then hand fd() to the peer (for example with SCM_RIGHTS).
  static Result<Segment> CreateSealed(std::string_view name, SegmentKind kind, uint32_t kind_version,
                                      size_t total_bytes);
  // Maps a sealed segment received as a descriptor (not taken over: the caller closes `fd`).
  // kPermissionDenied unless it is sealed against shrinking and growing; then validated as Open.
  static Result<Segment> OpenSealed(int fd, uint32_t expected_kind, uint32_t expected_kind_version,
                                    Status (*validate)(const void* bytes, size_t size) = nullptr);

  // Makes the segment visible to Open (release store of the magic).
  void Publish();

  uint8_t* base() const { return base_; }
  size_t size() const { return size_; }
  const std::string& name() const { return name_; }
  SegmentHeader* header() const { return reinterpret_cast<SegmentHeader*>(base_); }
  // The descriptor of a sealed segment (owned by this object), else -1.
  int fd() const { return fd_; }
  // True once another process shrank the memory under this mapping: the mapping then reads
  // zeros and writes go nowhere. Racy by nature: a check, not a guarantee of the next access.
  bool damaged() const {
    // relaxed is enough since this is a check, not a synchronization: the fault handler sets
    // the flag after replacing the mapping, and nothing is read through the flag.
    return damaged_ != nullptr && damaged_->load(std::memory_order_relaxed);
  }

 private:
  void Reset();

  uint8_t* base_ = nullptr;
  size_t size_ = 0;
  std::string name_;
  int guard_ = -1;  // entry in the fault guard's table (weft/core/fault_guard.h)
  const std::atomic<bool>* damaged_ = nullptr;  // that entry's flag
  int fd_ = -1;
};

}  // namespace weft::shm
