// The writer's side of a log: the active segment and where the next record goes in it, its
// sparse index, recovery of the newest segment at open, rolling to a new segment, and
// retention. Internal to log. Thread rule: one thread at a time (Log::Impl holds its mutex
// around every call).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "files.h"
#include "format.h"
#include "segments.h"
#include "weft/core/bytes.h"
#include "weft/core/status.h"
#include "weft/log/log.h"

namespace weft::log::internal {

class Appender {
 public:
  // `options` and `segments` outlive the appender. Nothing is touched until Recover.
  Appender(const LogOptions& options, Segments& segments) : opt_(options), segs_(segments) {}
  ~Appender();
  Appender(const Appender&) = delete;
  Appender& operator=(const Appender&) = delete;

  // Validates the newest segment from its last good index entry and cuts a torn tail (or
  // reports damage that valid records follow, unless options.repair); creates the first
  // segment of an empty log. `dir_fd` is the log's directory, synced after a segment is
  // created; `state` the shared state, whose first_seq retention advances.
  Status Recover(int dir_fd, SharedState* state);
  // Writes one record with the next sequence number (rolling to a new segment if it does not
  // fit). Readers see it once the caller publishes next().
  Status Write(ByteView payload, uint32_t flags, int64_t timestamp_ns);
  // Removes whole old segments by the retention options.
  Status ApplyRetention();
  // Gives back the space reserved past the last record and closes the active segment.
  void Close();

  uint64_t next() const { return next_; }           // the next record's seq
  int64_t last_timestamp() const { return last_ts_; }
  bool open() const { return active_ != nullptr; }
  // What an fsync of everything so far covers: the active segment (older ones were synced
  // when they rolled).
  const std::shared_ptr<Mapping>& active() const { return active_; }

  // What recovery cut: the offset of a torn tail (0: nothing), and the valid records a repair
  // cut after damage, with what the damage was.
  uint64_t cut_at() const { return cut_at_; }
  uint64_t cut_records() const { return cut_records_; }
  const std::string& cut_reason() const { return cut_reason_; }

 private:
  Status Create(uint64_t first);
  Status Roll();
  void SetActive(std::shared_ptr<Mapping> m, uint64_t first, uint64_t cap, uint64_t end);
  Status ZeroAhead(uint64_t need);

  const LogOptions& opt_;
  Segments& segs_;
  int dir_fd_ = -1;
  SharedState* state_ = nullptr;
  std::shared_ptr<Mapping> active_;
  uint64_t active_first_ = 0;
  uint64_t capacity_ = 0;  // the active segment's
  uint64_t write_off_ = 0;
  uint64_t populated_to_ = 0;
  uint64_t zeroed_to_ = 0;  // durable policies: blocks up to here were written (as zeros) once
  int idx_fd_ = -1;
  uint64_t idx_size_ = 0;
  uint64_t last_index_off_ = 0;
  int64_t last_ts_ = INT64_MIN;
  uint64_t next_ = 0;
  uint64_t cut_at_ = 0;
  uint64_t cut_records_ = 0;
  std::string cut_reason_;
};

}  // namespace weft::log::internal
