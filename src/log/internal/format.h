// The on-disk format of a log, version 1 (docs/formats/log.md). Internal to the log module.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>

#include "weft/core/bytes.h"
#include "weft/core/crc32c.h"
#include "weft/core/status.h"

namespace weft::log::internal {

inline constexpr uint32_t kFormatVersion = 1;
inline constexpr char kSegmentMagic[8] = {'W', 'E', 'F', 'T', 'L', 'O', 'G', '1'};
inline constexpr char kIndexMagic[8] = {'W', 'E', 'F', 'T', 'I', 'D', 'X', '1'};
inline constexpr char kStateMagic[8] = {'W', 'E', 'F', 'T', 'L', 'S', 'T', '1'};

using weft::Crc32c;  // weft/core/crc32c.h

// First 64 bytes of every segment file "<first_seq, 20 digits>.wlog".
struct SegmentHeader {
  char magic[8];
  uint32_t version;
  uint32_t header_bytes;  // 64
  uint64_t first_seq;
  int64_t created_ns;
  uint64_t capacity;      // the file's size: records live in [64, capacity)
  uint8_t reserved[20];
  uint32_t crc;           // CRC32C of bytes 0..59
};
static_assert(sizeof(SegmentHeader) == 64 && std::is_trivially_copyable_v<SegmentHeader>);

// Every record: this header, then `length` payload bytes, then zero padding to 8 bytes.
struct RecordHeader {
  uint32_t length;
  uint32_t crc;           // CRC32C of `length`, bytes 8..31 of this header, and the payload
  uint64_t seq;
  int64_t timestamp_ns;
  uint32_t flags;
  uint32_t reserved;      // 0
};
static_assert(sizeof(RecordHeader) == 32 && std::is_trivially_copyable_v<RecordHeader>);

inline constexpr uint64_t kRecordsStart = sizeof(SegmentHeader);
inline uint64_t RecordBytes(uint64_t payload) { return sizeof(RecordHeader) + ((payload + 7) & ~uint64_t{7}); }
uint32_t RecordCrc(const RecordHeader& h, const void* payload);

// Sparse index file "<first_seq>.widx": a 64-byte header (magic, version, first_seq, crc over
// bytes 0..59 at 60), then entries appended by the writer.
struct IndexEntry {
  uint64_t seq;
  uint64_t offset;  // of the record's header in the segment
  int64_t timestamp_ns;
  uint32_t crc;     // CRC32C of the 20 bytes before it
  uint32_t reserved;
};
static_assert(sizeof(IndexEntry) == 32 && std::is_trivially_copyable_v<IndexEntry>);
inline constexpr uint64_t kIndexStart = 64;

// "<dir>/state": shared by the writer and every reader through a MAP_SHARED mapping; derived
// data, rebuilt by each writer at open. Futex words live here.
struct alignas(64) SharedState {
  char magic[8];
  uint32_t version;
  uint32_t size;            // sizeof(SharedState)
  uint64_t first_seq;       // oldest record on disk
  uint64_t next_seq;        // records below are complete (release; readers acquire)
  uint64_t durable_seq;     // records below are on disk
  uint32_t wake;            // futex word: bumped by every append
  uint32_t sleepers;        // readers gone to sleep on `wake` since the last wake-up
  int32_t writer_pid;       // 0 when no writer
  uint32_t reserved0;
  uint64_t writer_start_ticks;
  uint64_t segment_bytes;   // the writer's roll size
  uint8_t reserved[48];
};
static_assert(sizeof(SharedState) == 128 && std::is_trivially_copyable_v<SharedState>);

std::string SegmentFileName(uint64_t first_seq);  // "00000000000000000042.wlog"
std::string IndexFileName(uint64_t first_seq);    // "00000000000000000042.widx"
// Parses a segment file name; false if it is not one.
bool ParseSegmentFileName(const std::string& name, uint64_t* first_seq);

// Checks a segment header (magic, version, crc, sizes against the file size).
Status ValidateSegmentHeader(ByteView file, uint64_t expect_first_seq);

// One step of a scan over a segment's records.
enum class ScanEnd { kRecord, kEnd, kTorn };
struct ScanStep {
  ScanEnd end = ScanEnd::kEnd;
  RecordHeader header{};
  uint64_t next_offset = 0;  // after this record
  std::string why;           // kTorn: what failed
};
// Reads the record at `offset` of a mapped segment and checks it: its place, length, sequence
// number (`expect_seq`), timestamp (not below `min_ts`) and checksum. An all-zero header is the
// end of the records. Never reads outside `file`. Fuzzed.
ScanStep ScanRecord(ByteView file, uint64_t offset, uint64_t expect_seq, int64_t min_ts);

// Checks an index entry's own checksum.
bool IndexEntryValid(const IndexEntry& e);

}  // namespace weft::log::internal
