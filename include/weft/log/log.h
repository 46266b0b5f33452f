// Durable append-only logs: a directory of segment files with checksummed, sequenced records,
// one writer at a time (a file lock), any number of readers in any processes, and tails that
// backfill from disk and then follow live appends, woken by the writer.
//
//   auto log = Log::Open("/var/lib/app/events", {.fsync = Fsync::kAlways}).value();
//   uint64_t seq = log->Append(AsBytes("step 1")).value();   // durable when it returns
//   auto tail = log->TailFrom(0).value();
//   for (;;) { auto rec = tail->Next(Deadline::Never()); ... rec->payload ... }
//
// Layout: docs/formats/log.md. Thread rule: a Log may be used from many threads at once (appends
// are serialized; under kAlways concurrent appenders share fsyncs); a Tail by one thread at a
// time, except Close, which any thread may call.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "weft/core/bytes.h"
#include "weft/core/clock.h"
#include "weft/core/status.h"

namespace weft::log {

// When appends reach the disk.
enum class Fsync : uint32_t {
  kNever = 0,     // when the kernel writes them back (a process crash loses nothing)
  kEveryN = 1,    // an fsync after every `fsync_every_n` records
  kInterval = 2,  // an fsync every `fsync_interval_ms`, from a background thread
  kAlways = 3,    // Append returns only after an fsync covered its record (group commit)
};

struct LogOptions {
  bool read_only = false;  // a reader: no lock, no appends; the log must exist
  bool create = true;      // a writer creates the directory and log if absent
  Fsync fsync = Fsync::kNever;
  uint64_t fsync_every_n = 1000;
  int64_t fsync_interval_ms = 100;
  uint64_t segment_bytes = uint64_t{64} << 20;  // roll size (a record never spans segments)
  uint32_t index_every_bytes = 64 << 10;        // a sparse index entry per this many bytes
  // Retention on disk, applied to whole segments (0: no limit). The newest segment stays.
  uint64_t retention_events = 0;  // keep at least this many newest records, drop older segments
  uint64_t retention_bytes = 0;   // keep the newest segments totalling at least this many bytes
  int64_t retention_age_ms = 0;   // drop segments whose newest record is older than this
  // A writer's open finds damage in the newest segment that valid records follow: by default it
  // refuses (kCorrupt naming the offset, nothing cut); with repair it cuts at the damage and
  // reports what it cut in LogStats (cut_at_offset, cut_valid_records, cut_reason).
  bool repair = false;
};

// One record, read in place from the mapped segment. The payload stays valid while the Record
// (or a copy of it) lives.
struct Record {
  uint64_t seq = 0;
  int64_t timestamp_ns = 0;  // wall clock at append, never decreasing along the log
  uint32_t flags = 0;        // the appender's
  ByteView payload;
  std::shared_ptr<const void> mapping;  // keeps the segment mapped
};

struct LogStats {
  uint64_t first_seq = 0;    // oldest record still on disk
  uint64_t next_seq = 0;     // the sequence number the next append gets
  uint64_t durable_seq = 0;  // records below this are known to be on disk
  uint64_t segments = 0;
  uint64_t bytes = 0;        // record bytes on disk, over all segments
  uint64_t fsyncs = 0;       // by this handle
  uint64_t cut_at_offset = 0;  // where this writer's open cut a torn tail (0: nothing cut)
  uint64_t cut_valid_records = 0;  // valid records after damage that a repair cut
  std::string cut_reason;          // the damage a repair cut at
  int32_t writer_pid = 0;    // 0 if no writer holds the log
};

class Log;

struct TailOptions {
  // Next spins up to this long for a new record before sleeping (adaptive: less while spinning
  // finds nothing); 0 sleeps at once; -1 spins until the deadline.
  int64_t spin_ns = 50'000;
};

// Reads records from `from_seq` on: first those on disk, then each new append as it lands,
// without gaps or duplicates, in this or any other process.
class Tail {
 public:
  ~Tail();
  Tail(const Tail&) = delete;
  Tail& operator=(const Tail&) = delete;

  // The next record. kTimeout (or kWouldBlock for Deadline::Now()) when none came by the
  // deadline; kClosed after Close; kOutOfRange if retention removed the next record (the
  // message names the first sequence still available); kCorrupt for a damaged record (with
  // its file and offset).
  Result<Record> Next(Deadline deadline);
  // Ends Next in any thread, now and for good.
  void Close();
  uint64_t position() const;  // the sequence Next returns next

 private:
  friend class Log;
  struct Impl;
  explicit Tail(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

class Log {
 public:
  ~Log();  // Close
  Log(const Log&) = delete;
  Log& operator=(const Log&) = delete;

  // Opens the log in directory `path`. A writer takes the log's lock (kBusy, naming the holder,
  // if another writer has it), validates the newest segment and cuts a torn tail at the last
  // valid record; a reader maps what is there.
  static Result<std::unique_ptr<Log>> Open(const std::string& path, const LogOptions& options = {});

  // Appends one record; returns its sequence number. kTooLarge if it cannot fit a segment.
  Result<uint64_t> Append(ByteView payload, uint32_t flags = 0);
  // Appends records in order with consecutive sequence numbers, durable together; returns the
  // first, or nullopt when `payloads` is empty (nothing appended).
  Result<std::optional<uint64_t>> AppendBatch(std::span<const ByteView> payloads, uint32_t flags = 0);
  // Makes every record appended so far durable.
  Status Sync();

  // The record `seq` (a sparse-index lookup, then a short scan). kOutOfRange outside
  // [first_seq, next_seq).
  Result<Record> Read(uint64_t seq);
  // A tail from `from_seq` (clamped to nothing: below first_seq gives kOutOfRange at Next).
  Result<std::unique_ptr<weft::log::Tail>> TailFrom(uint64_t from_seq, const TailOptions& options = {});
  // The first record appended at or after wall time `time_ns` (next_seq if none).
  Result<uint64_t> SeqAtTime(int64_t time_ns);

  // Drops whole segments past the retention limits now (also done at every roll and open).
  Status ApplyRetention();
  // Reads every record of every segment and checks it; the first damage found as kCorrupt.
  Status Verify();
  LogStats Stats();
  uint64_t first_seq();
  uint64_t next_seq();
  const std::string& path() const;
  Status Close();

 private:
  friend class weft::log::Tail;
  struct Impl;
  explicit Log(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace weft::log
