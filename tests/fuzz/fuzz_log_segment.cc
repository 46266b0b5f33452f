// Fuzzes the log's segment reader with arbitrary file bytes: the header check, the record scan
// from the start and from index entries taken from the input, and the locate step. None may
// read outside the buffer, crash, or accept a record whose checksum does not match.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "log/internal/files.h"
#include "log/internal/format.h"

using namespace weft::log::internal;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The first bytes choose index entries; the rest is the segment file.
  size_t n_idx = size > 0 ? data[0] % 8 : 0;
  size_t skip = 1 + n_idx * sizeof(IndexEntry);
  if (size < skip) return 0;
  std::vector<IndexEntry> idx(n_idx);
  if (n_idx > 0) std::memcpy(idx.data(), data + 1, n_idx * sizeof(IndexEntry));
  std::vector<uint8_t> file(data + skip, data + size);  // exact size: overreads are caught
  const weft::ByteView seg(file.data(), file.size());
  uint64_t first = 0;
  if (file.size() >= sizeof(SegmentHeader)) std::memcpy(&first, file.data() + 16, 8);
  (void)ValidateSegmentHeader(seg, first);
  uint64_t seq = 0;
  int64_t min_ts = 0;
  uint64_t off = LocateFrom(seg, idx, UINT64_MAX, first, &seq, &min_ts);
  for (int i = 0; i < 100000; ++i) {
    ScanStep st = ScanRecord(seg, off, seq, min_ts);
    if (st.end != ScanEnd::kRecord) break;
    if (st.next_offset <= off) __builtin_trap();  // must make progress
    const RecordHeader& h = st.header;
    if (RecordCrc(h, file.data() + off + sizeof(RecordHeader)) != h.crc) __builtin_trap();
    off = st.next_offset;
    min_ts = h.timestamp_ns;
    ++seq;
  }
  return 0;
}
