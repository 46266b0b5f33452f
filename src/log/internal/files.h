// Files of a log directory: mapped segments, index files, the directory listing. Internal.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "format.h"
#include "weft/core/status.h"

namespace weft::log::internal {

// A file mapped whole, read-only or read-write; unmapped and closed when the last user goes.
struct Mapping {
  int fd = -1;
  uint8_t* base = nullptr;
  size_t size = 0;
  std::string path;
  int guard = -1;
  ~Mapping();
  ByteView bytes() const { return ByteView(base, size); }
  bool damaged() const;
};

// Maps a whole file. The mapping is guarded (weft/core/fault_guard.h): if the file shrinks
// under it, or a hole cannot be filled on a full tmpfs, the access reads zeros instead of
// killing the process, and damaged() says so.
Result<std::shared_ptr<Mapping>> MapFile(const std::string& path, bool writable);

// A file's bytes as read with pread, never through a shared mapping (so a hole on a full tmpfs
// reads as zeros instead of faulting): an anonymous private mapping of the file's size, with
// the first `head` bytes and every data extent from `from` on filled in. Pages that read as
// zeros are left untouched (they cost no memory); `filled` lists the page ranges that are not.
struct FileImage {
  uint8_t* base = nullptr;
  size_t size = 0;
  std::vector<std::pair<uint64_t, uint64_t>> filled;  // [begin, end), ascending, page-aligned
  ~FileImage();
  ByteView bytes() const { return ByteView(base, size); }
};
Result<std::unique_ptr<FileImage>> ReadImage(int fd, const std::string& path, uint64_t head, uint64_t from);

// The first offset after `off` (searched through the whole file, in the non-zero pages of
// `image`) where a valid record with a sequence number of at least `seq` starts, or 0 if none does.
// *count (if given) gets how many valid records start there and after, in order.
uint64_t ValidRecordAfter(const FileImage& image, uint64_t off, uint64_t seq, uint64_t* count = nullptr);

// The first sequence numbers of the segment files in `dir`, ascending.
Result<std::vector<uint64_t>> ListSegments(const std::string& dir);

// A segment's sparse index entries with valid checksums, in file order; with `last` > 0, only
// (up to) the last `last` entries of the file are read, and *skipped (if given) gets how many
// entries come before them in the file.
std::vector<IndexEntry> ReadIndex(const std::string& path, uint64_t first_seq, size_t last = 0,
                                  size_t* skipped = nullptr);

// The offset to start scanning from for `seq` in a segment: the last valid index entry at or
// below it whose record checks out, else the first record. *start_seq gets that record's seq.
uint64_t LocateFrom(ByteView segment, const std::vector<IndexEntry>& index, uint64_t seq, uint64_t first_seq,
                    uint64_t* start_seq, int64_t* min_ts);

}  // namespace weft::log::internal
