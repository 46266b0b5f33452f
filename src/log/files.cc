#include "internal/files.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "weft/core/fault_guard.h"

namespace weft::log::internal {

Mapping::~Mapping() {
  UnguardMapping(guard);
  if (base != nullptr) ::munmap(base, size);
  if (fd >= 0) ::close(fd);
}

bool Mapping::damaged() const { return MappingDamaged(guard); }

FileImage::~FileImage() {
  if (base != nullptr) ::munmap(base, size);
}

namespace {

constexpr uint64_t kPage = 4096;

bool AllZero(const uint8_t* p, size_t n) {
  static constexpr uint8_t kZero[kPage] = {};
  return std::memcmp(p, kZero, n) == 0;
}

}  // namespace

Result<std::unique_ptr<FileImage>> ReadImage(int fd, const std::string& path, uint64_t head, uint64_t from) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return ErrnoStatus(errno, "fstat(" + path + ")");
  auto img = std::make_unique<FileImage>();
  img->size = static_cast<size_t>(st.st_size);
  if (img->size == 0) return Corrupt(path + " is empty");
  void* p = ::mmap(nullptr, img->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return ErrnoStatus(errno, "mmap(image of " + path + ")");
  img->base = static_cast<uint8_t*>(p);
  std::vector<uint8_t> buf(size_t{1} << 20);
  // Reads [begin, end) and keeps its non-zero pages.
  auto fill = [&](uint64_t begin, uint64_t end) -> Status {
    begin &= ~(kPage - 1);
    for (uint64_t pos = begin; pos < end;) {
      const size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), end - pos));
      const ssize_t got = ::pread(fd, buf.data(), want, static_cast<off_t>(pos));
      if (got < 0) {
        if (errno == EINTR) continue;
        return ErrnoStatus(errno, "pread(" + path + ")");
      }
      if (got == 0) break;
      for (size_t q = 0; q < static_cast<size_t>(got); q += kPage) {
        const size_t n = std::min<size_t>(kPage, static_cast<size_t>(got) - q);
        if (AllZero(buf.data() + q, n)) continue;
        std::memcpy(img->base + pos + q, buf.data() + q, n);
        const uint64_t pb = pos + q, pe = pos + q + kPage;
        if (!img->filled.empty() && img->filled.back().second == pb) {
          img->filled.back().second = pe;
        } else {
          img->filled.emplace_back(pb, pe);
        }
      }
      pos += static_cast<uint64_t>(got);
    }
    return Status::Ok();
  };
  WEFT_RETURN_IF_ERROR(fill(0, std::min<uint64_t>(head, img->size)));
  // Data extents only: holes (punched, or reserved and never written) are skipped unread.
  for (uint64_t pos = std::max(from, std::min<uint64_t>(head, img->size)); pos < img->size;) {
    const off_t data = ::lseek(fd, static_cast<off_t>(pos), SEEK_DATA);
    if (data < 0) break;  // ENXIO: no data past pos
    off_t hole = ::lseek(fd, data, SEEK_HOLE);
    if (hole < 0) hole = static_cast<off_t>(img->size);
    WEFT_RETURN_IF_ERROR(fill(static_cast<uint64_t>(data), static_cast<uint64_t>(hole)));
    pos = static_cast<uint64_t>(hole);
  }
  return img;
}

uint64_t ValidRecordAfter(const FileImage& image, uint64_t off, uint64_t seq, uint64_t* count) {
  const ByteView seg = image.bytes();
  uint64_t found = 0;
  for (const auto& [begin, end] : image.filled) {
    // A header that reaches into [begin, end) starts after begin - 32 and before end.
    const uint64_t lo = begin >= sizeof(RecordHeader) ? (begin - sizeof(RecordHeader) + 8) & ~uint64_t{7} : 0;
    for (uint64_t p = std::max(lo, (off + 8) & ~uint64_t{7}); p < end && p + sizeof(RecordHeader) <= seg.size(); p += 8) {
      RecordHeader h;
      std::memcpy(&h, seg.data() + p, sizeof(h));
      if (h.seq < seq || h.reserved != 0) continue;
      if (ScanRecord(seg, p, h.seq, INT64_MIN).end == ScanEnd::kRecord) {
        found = p;
        break;
      }
    }
    if (found != 0) break;
  }
  if (found != 0 && count != nullptr) {
    *count = 0;
    RecordHeader h;
    std::memcpy(&h, seg.data() + found, sizeof(h));
    uint64_t at = found, s = h.seq;
    for (;;) {
      ScanStep st = ScanRecord(seg, at, s, INT64_MIN);
      if (st.end != ScanEnd::kRecord) break;
      ++*count;
      at = st.next_offset;
      ++s;
    }
  }
  return found;
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
  m->guard = GuardMapping(p, m->size);
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
