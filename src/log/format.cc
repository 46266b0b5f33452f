#include "internal/format.h"

#include <cinttypes>
#include <cstdio>
#include <cstring>


namespace weft::log::internal {

uint32_t RecordCrc(const RecordHeader& h, const void* payload) {
  uint32_t crc = Crc32c(0, &h.length, 4);
  crc = Crc32c(crc, reinterpret_cast<const uint8_t*>(&h) + 8, sizeof(RecordHeader) - 8);
  return Crc32c(crc, payload, h.length);
}

bool IndexEntryValid(const IndexEntry& e) { return Crc32c(0, &e, 24) == e.crc; }

std::string SegmentFileName(uint64_t first_seq) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%020" PRIu64 ".wlog", first_seq);
  return buf;
}

std::string IndexFileName(uint64_t first_seq) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%020" PRIu64 ".widx", first_seq);
  return buf;
}

bool ParseSegmentFileName(const std::string& name, uint64_t* first_seq) {
  if (name.size() != 25 || name.compare(20, 5, ".wlog") != 0) return false;
  uint64_t v = 0;
  for (int i = 0; i < 20; ++i) {
    const char c = name[i];
    if (c < '0' || c > '9') return false;
    if (v > (UINT64_MAX - (c - '0')) / 10) return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  *first_seq = v;
  return true;
}

Status ValidateSegmentHeader(ByteView file, uint64_t expect_first_seq) {
  if (file.size() < sizeof(SegmentHeader)) return Corrupt("segment file shorter than its header");
  SegmentHeader h;
  std::memcpy(&h, file.data(), sizeof(h));
  if (std::memcmp(h.magic, kSegmentMagic, 8) != 0) return Corrupt("not a weft log segment (bad magic)");
  if (Crc32c(0, &h, 60) != h.crc) return Corrupt("segment header checksum mismatch");
  if (h.version != kFormatVersion) {
    return Status(Code::kVersionMismatch, "log segment format " + std::to_string(h.version) + ", this build reads " +
                                              std::to_string(kFormatVersion));
  }
  if (h.header_bytes != sizeof(SegmentHeader)) return Corrupt("segment header size " + std::to_string(h.header_bytes));
  if (h.first_seq != expect_first_seq) {
    return Corrupt("segment header says first seq " + std::to_string(h.first_seq) + ", its name says " +
                   std::to_string(expect_first_seq));
  }
  if (h.capacity < sizeof(SegmentHeader) || h.capacity > file.size()) {
    return Corrupt("segment capacity " + std::to_string(h.capacity) + " beyond its file (" +
                   std::to_string(file.size()) + " bytes)");
  }
  return Status::Ok();
}

ScanStep ScanRecord(ByteView file, uint64_t offset, uint64_t expect_seq, int64_t min_ts) {
  ScanStep st;
  auto torn = [&](std::string why) {
    st.end = ScanEnd::kTorn;
    st.why = std::move(why);
    return st;
  };
  if (offset % 8 != 0 || offset < kRecordsStart) return torn("misaligned offset");
  if (offset > file.size() || file.size() - offset < sizeof(RecordHeader)) {
    st.end = ScanEnd::kEnd;  // no room for another record
    return st;
  }
  std::memcpy(&st.header, file.data() + offset, sizeof(RecordHeader));
  static constexpr uint8_t kZero[sizeof(RecordHeader)] = {};
  if (std::memcmp(&st.header, kZero, sizeof(kZero)) == 0) {
    st.end = ScanEnd::kEnd;
    return st;
  }
  const RecordHeader& h = st.header;
  if (h.length > file.size() - offset - sizeof(RecordHeader)) return torn("record length runs past the file");
  if (h.seq != expect_seq) {
    return torn("record seq " + std::to_string(h.seq) + " where " + std::to_string(expect_seq) + " belongs");
  }
  if (h.reserved != 0) return torn("reserved field set");
  if (h.timestamp_ns < min_ts) return torn("timestamp goes backwards");
  if (RecordCrc(h, file.data() + offset + sizeof(RecordHeader)) != h.crc) return torn("record checksum mismatch");
  const uint64_t next = offset + RecordBytes(h.length);
  st.next_offset = next > file.size() ? file.size() : next;
  st.end = ScanEnd::kRecord;
  return st;
}

}  // namespace weft::log::internal
