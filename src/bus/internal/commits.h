// The files of a log: bus besides its shard logs (docs/formats/bus.md, "log: files"):
//   <dir>/bus.meta      what the bus is (shards, max_event, flags) and its id, written once;
//   <dir>/group.<name>  the committed position of every shard for one group, durable;
// and a remote producer's nonce file (the same layout as a group file of one shard).
// Parsers take untrusted bytes and report damage as kCorrupt (fuzzed:
// tests/fuzz/fuzz_bus_files.cc). Internal to bus.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "weft/core/bytes.h"
#include "weft/core/status.h"

namespace weft::bus::internal {

inline constexpr char kMetaMagic[8] = {'W', 'E', 'F', 'T', 'L', 'B', 'U', 'S'};
inline constexpr char kGroupMagic[8] = {'W', 'E', 'F', 'T', 'L', 'G', 'R', 'P'};
inline constexpr char kNonceMagic[8] = {'W', 'E', 'F', 'T', 'N', 'O', 'N', 'C'};
inline constexpr uint32_t kLogBusVersion = 1;

struct LogBusMeta {
  char magic[8];
  uint32_t version;  // kLogBusVersion
  uint32_t shards;
  uint32_t max_event;
  uint32_t flags;    // BusFlags (kBusTimestamps)
  uint64_t id;       // random, names the control segment
  uint32_t reserved;
  uint32_t crc;      // crc32c of the bytes before it
};
static_assert(sizeof(LogBusMeta) == 40, "bus.meta is 40 bytes");

struct GroupFileHeader {
  char magic[8];
  uint32_t version;  // kLogBusVersion
  uint32_t shards;
  uint64_t bus_id;   // the bus it belongs to (a file copied from another bus is refused)
  uint32_t reserved;
  uint32_t crc;      // crc32c of the bytes before it
};
static_assert(sizeof(GroupFileHeader) == 32, "a group file's header is 32 bytes");

// One copy of a shard's committed position; each shard has two, written in turns, so that a
// write torn by a power cut leaves the other.
struct CommitCopy {
  uint64_t position;
  uint32_t generation;  // the newer copy has the higher one; 0: never written
  uint32_t crc;         // crc32c of position, generation and the shard index
};
static_assert(sizeof(CommitCopy) == 16, "a commit copy is 16 bytes");
inline constexpr size_t kCommitSlotBytes = 2 * sizeof(CommitCopy);

// Checks bus.meta's bytes; kCorrupt naming what is wrong.
Result<LogBusMeta> ParseMeta(ByteView bytes);
// Checks a group file's header against the bus it should belong to.
Status ParseGroupHeader(ByteView bytes, uint64_t bus_id, uint32_t shards);
// Checks the header of a file of slots (a group file, kGroupMagic, or a producer nonce file,
// kNonceMagic) and returns its id; `id` 0 takes any id.
Result<uint64_t> ParseSlotFileHeader(ByteView bytes, const char (&magic)[8], uint64_t id, uint32_t shards);
// The committed position in shard s's slot (kCommitSlotBytes): the newer valid copy; nullopt
// if neither was ever written; kCorrupt if a copy was written and neither is valid.
Result<std::optional<uint64_t>> ParseCommitSlot(ByteView slot, uint32_t s);
CommitCopy MakeCommitCopy(uint64_t position, uint32_t generation, uint32_t s);
LogBusMeta MakeMeta(uint32_t shards, uint32_t max_event, uint32_t flags, uint64_t id);

// Publishes `bytes` as file `path` if no file has that name: written to a temporary name,
// synced, then linked into place (so a reader sees all of it or nothing). False if the name
// was taken (by another creator); the caller reads theirs.
Result<bool> PublishFile(const std::string& path, ByteView bytes);

// One group's committed positions, durable in <dir>/group.<name>. Any process may hold one;
// shard s's slot is written only by the member that owns shard s at the time.
class CommitFile {
 public:
  ~CommitFile();
  CommitFile(const CommitFile&) = delete;
  CommitFile& operator=(const CommitFile&) = delete;

  // Opens group `name`'s file, creating it (each shard at start(s)) if absent. `sync`: every
  // commit is on disk when Write returns (fdatasync).
  static Result<std::unique_ptr<CommitFile>> Open(const std::string& dir, std::string_view name, uint64_t bus_id,
                                                  uint32_t shards, const std::function<uint64_t(uint32_t)>& start,
                                                  bool sync);
  // The same for any file of slots (`magic`: kGroupMagic or kNonceMagic) at `path`, created
  // with `id`; with `any_id`, an existing file may have any id (see id()).
  static Result<std::unique_ptr<CommitFile>> OpenPath(const std::string& path, const char (&magic)[8], uint64_t id,
                                                      bool any_id, uint32_t shards,
                                                      const std::function<uint64_t(uint32_t)>& start, bool sync);
  uint64_t id() const { return id_; }
  // Shard s's committed position as on disk now.
  Result<uint64_t> Read(uint32_t s) const;
  // Commits shard s at `position` (the older copy is overwritten).
  Status Write(uint32_t s, uint64_t position);
  const std::string& path() const { return path_; }

 private:
  CommitFile(int fd, std::string path, bool sync) : fd_(fd), path_(std::move(path)), sync_(sync) {}
  int fd_;
  std::string path_;
  bool sync_;
  uint64_t id_ = 0;
};

}  // namespace weft::bus::internal
