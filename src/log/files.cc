#include "files.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

namespace weft::log::internal {

Mapping::~Mapping() {
  if (base != nullptr) ::munmap(base, size);
  if (fd >= 0) ::close(fd);
}

Result<std::shared_ptr<Mapping>> MapFile(const std::string& path, bool writable) {
  auto m = std::make_shared<Mapping>();
  m->path = path;
  m->fd = ::open(path.c_str(), (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
  if (m->fd < 0) return ErrnoStatus(errno, "open(" + path + ")");
  struct stat st;
  if (::fstat(m->fd, &st) != 0) return ErrnoStatus(errno, "fstat(" + path + ")");
  m->size = static_cast<size_t>(st.st_size);
  if (m->size == 0) return Corrupt(path + " is empty");
  void* p = ::mmap(nullptr, m->size, PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED, m->fd, 0);
  if (p == MAP_FAILED) return ErrnoStatus(errno, "mmap(" + path + ")");
  m->base = static_cast<uint8_t*>(p);
  return m;
}

Result<std::vector<uint64_t>> ListSegments(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return ErrnoStatus(errno, "opendir(" + dir + ")");
  std::vector<uint64_t> out;
  while (dirent* e = ::readdir(d)) {
    uint64_t first = 0;
    if (ParseSegmentFileName(e->d_name, &first)) out.push_back(first);
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<IndexEntry> ReadIndex(const std::string& path, uint64_t first_seq, size_t last, size_t* skipped) {
  std::vector<IndexEntry> out;
  if (skipped != nullptr) *skipped = 0;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return out;  // missing: scans start at the segment's first record
  struct stat st;
  if (::fstat(fd, &st) == 0 && static_cast<uint64_t>(st.st_size) >= kIndexStart) {
    uint8_t head[kIndexStart];
    const size_t total = (static_cast<size_t>(st.st_size) - kIndexStart) / sizeof(IndexEntry);
    const size_t skip = last > 0 && total > last ? total - last : 0;
    const size_t n = total - skip;
    if (skipped != nullptr) *skipped = skip;
    out.resize(n);
    uint64_t hdr_first = 0;
    bool ok = ::pread(fd, head, sizeof(head), 0) == static_cast<ssize_t>(sizeof(head)) &&
              std::memcmp(head, kIndexMagic, 8) == 0;
    if (ok) {
      uint32_t crc = 0;
      std::memcpy(&hdr_first, head + 16, 8);
      std::memcpy(&crc, head + 60, 4);
      ok = crc == Crc32c(0, head, 60) && hdr_first == first_seq;
    }
    if (ok && n > 0) {
      ok = ::pread(fd, out.data(), n * sizeof(IndexEntry), static_cast<off_t>(kIndexStart + skip * sizeof(IndexEntry))) ==
           static_cast<ssize_t>(n * sizeof(IndexEntry));
    }
    if (!ok) out.clear();
  }
  ::close(fd);
  // Keep the entries that check out and go strictly up; stop at the first that does not.
  size_t keep = 0;
  for (; keep < out.size(); ++keep) {
    if (!IndexEntryValid(out[keep])) break;
    if (keep > 0 && (out[keep].seq <= out[keep - 1].seq || out[keep].offset <= out[keep - 1].offset)) break;
  }
  out.resize(keep);
  return out;
}

uint64_t LocateFrom(ByteView segment, const std::vector<IndexEntry>& index, uint64_t seq, uint64_t first_seq,
                    uint64_t* start_seq, int64_t* min_ts) {
  auto it = std::upper_bound(index.begin(), index.end(), seq,
                             [](uint64_t s, const IndexEntry& e) { return s < e.seq; });
  while (it != index.begin()) {
    --it;
    const ScanStep st = ScanRecord(segment, it->offset, it->seq, INT64_MIN);
    if (st.end == ScanEnd::kRecord && st.header.timestamp_ns == it->timestamp_ns) {
      *start_seq = it->seq;
      *min_ts = it->timestamp_ns;
      return it->offset;
    }
  }
  *start_seq = first_seq;
  *min_ts = INT64_MIN;
  return kRecordsStart;
}

}  // namespace weft::log::internal
