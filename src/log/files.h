// Files of a log directory: mapped segments, index files, the directory listing. Internal.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
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
  ~Mapping();
  ByteView bytes() const { return ByteView(base, size); }
};

Result<std::shared_ptr<Mapping>> MapFile(const std::string& path, bool writable);

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
