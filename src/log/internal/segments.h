// The segments of a log directory as readers see them: the list of segments, and a cache of
// their mappings and sparse indexes (a sealed segment never changes). Shared by the writer and
// every tail of one Log. Internal to log. Thread rule: any thread (one mutex inside).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "files.h"
#include "format.h"
#include "weft/core/mutex.h"
#include "weft/core/status.h"
#include "weft/log/log.h"

namespace weft::log::internal {

class Segments {
 public:
  // `writer`: this process writes the log and keeps the list current itself (Add, Forget), so
  // the list is trusted; a reader lists the directory again when a segment may be new.
  Segments(std::string dir, bool writer) : dir_(std::move(dir)), writer_(writer) {}

  const std::string& dir() const { return dir_; }
  std::string Path(const std::string& name) const { return dir_ + "/" + name; }

  // The list, from the directory (a reader's open) or as recovery left it.
  Status Load() WEFT_EXCLUDES(mu_);
  void Reset(std::vector<uint64_t> firsts) WEFT_EXCLUDES(mu_);
  // A new newest segment starts at `first`.
  void Add(uint64_t first) WEFT_EXCLUDES(mu_);
  // Retention removed these (the oldest, in order): forget them and their cached mappings.
  void Forget(const std::vector<uint64_t>& firsts) WEFT_EXCLUDES(mu_);
  std::vector<uint64_t> List() const WEFT_EXCLUDES(mu_);
  uint64_t Newest() const WEFT_EXCLUDES(mu_);  // 0 if there is none

  // The segment starting at `first`, mapped read-only with a checked header (cached).
  Result<std::shared_ptr<Mapping>> Map(uint64_t first) WEFT_EXCLUDES(mu_);
  // The first seq of the segment holding `seq`: the greatest first <= seq.
  Result<uint64_t> For(uint64_t seq) WEFT_EXCLUDES(mu_);
  // A segment's index (cached once it is sealed).
  std::vector<IndexEntry> Index(uint64_t first, bool sealed) WEFT_EXCLUDES(mu_);

  // Finds record `seq` (below `next_seq`, the log's next record): its segment's mapping, the
  // record's offset, and the timestamp it may not be older than.
  Status Locate(uint64_t seq, uint64_t next_seq, std::shared_ptr<Mapping>* map, uint64_t* offset,
                int64_t* min_ts) WEFT_EXCLUDES(mu_);

  // The error for a record that does not scan at `off`.
  static Status Damaged(const Mapping& m, uint64_t off, uint64_t seq, const ScanStep& st);
  // A record viewing the mapping it lives in (which it keeps alive).
  static Record MakeRecord(const std::shared_ptr<Mapping>& m, uint64_t off, const RecordHeader& h);

 private:
  const std::string dir_;
  const bool writer_;
  mutable Mutex mu_;
  std::vector<uint64_t> firsts_ WEFT_GUARDED_BY(mu_);
  std::map<uint64_t, std::shared_ptr<Mapping>> maps_ WEFT_GUARDED_BY(mu_);
  std::map<uint64_t, std::vector<IndexEntry>> indexes_ WEFT_GUARDED_BY(mu_);
};

}  // namespace weft::log::internal
