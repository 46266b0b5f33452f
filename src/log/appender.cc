#include "internal/appender.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <iterator>
#include <vector>

namespace weft::log::internal {

namespace {

template <typename T>
std::atomic_ref<T> A(T& v) {
  return std::atomic_ref<T>(v);
}

constexpr uint64_t kPopulateChunk = uint64_t{256} << 10;  // the writer faults pages in ahead
constexpr uint64_t kDirectWriteMin = uint64_t{16} << 10;  // records this large go by pwritev
constexpr uint64_t kZeroChunk = uint64_t{1} << 20;      // and writes blocks once ahead
constexpr size_t kRecoveryIndexEntries = 64;  // index entries recovery reads (from the end)

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

Status SyncFd(int fd, const std::string& what) {
  if (::fdatasync(fd) != 0) return ErrnoStatus(errno, "fdatasync(" + what + ")");
  return Status::Ok();
}

Status WriteIndexHeader(int fd, uint64_t first_seq) {
  uint8_t head[kIndexStart] = {};
  std::memcpy(head, kIndexMagic, 8);
  const uint32_t version = kFormatVersion, size = kIndexStart;
  std::memcpy(head + 8, &version, 4);
  std::memcpy(head + 12, &size, 4);
  std::memcpy(head + 16, &first_seq, 8);
  const uint32_t crc = Crc32c(0, head, 60);
  std::memcpy(head + 60, &crc, 4);
  if (::pwrite(fd, head, sizeof(head), 0) != static_cast<ssize_t>(sizeof(head))) return ErrnoStatus(errno, "write index");
  return Status::Ok();
}

}  // namespace

Appender::~Appender() { Close(); }

// The segment appends go to from now on, with records up to `end`.
void Appender::SetActive(std::shared_ptr<Mapping> m, uint64_t first, uint64_t cap, uint64_t end) {
  // No readahead for the writer's faults: with it the kernel builds large page-cache folios
  // and zeroes a whole folio again on every page fault inside it.
  ::madvise(m->base, m->size, MADV_RANDOM);
  active_ = std::move(m);
  active_first_ = first;
  capacity_ = cap;
  write_off_ = end;
  populated_to_ = 0;
  zeroed_to_ = 0;
}

Status Appender::Create(uint64_t first) {
  const std::string path = segs_.Path(SegmentFileName(first));
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoStatus(errno, "create(" + path + ")");
  // A sparse file of the full size; blocks are written (and so reserved) ahead of the records,
  // so that a full disk fails an append with an error, never a store into the mapping.
  SegmentHeader h{};
  std::memcpy(h.magic, kSegmentMagic, 8);
  h.version = kFormatVersion;
  h.header_bytes = sizeof(SegmentHeader);
  h.first_seq = first;
  h.created_ns = WallNs();
  h.capacity = opt_.segment_bytes;
  h.crc = Crc32c(0, &h, 60);
  if (::ftruncate(fd, static_cast<off_t>(opt_.segment_bytes)) != 0 ||
      ::pwrite(fd, &h, sizeof(h), 0) != static_cast<ssize_t>(sizeof(h))) {
    const int err = errno;
    ::close(fd);
    ::unlink(path.c_str());
    return ErrnoStatus(err, "create(" + path + ")");
  }
  ::close(fd);
  auto m = MapFile(path, true);
  if (!m.ok()) return m.status();
  const std::string ipath = segs_.Path(IndexFileName(first));
  const int ifd = ::open(ipath.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (ifd < 0) return ErrnoStatus(errno, "create(" + ipath + ")");
  Status s = WriteIndexHeader(ifd, first);
  if (!s.ok()) {
    ::close(ifd);
    return s;
  }
  if (opt_.fsync != Fsync::kNever) {
    WEFT_RETURN_IF_ERROR(SyncFd((*m)->fd, path));
    if (::fsync(dir_fd_) != 0) return ErrnoStatus(errno, "fsync(" + segs_.dir() + ")");
  }
  if (idx_fd_ >= 0) ::close(idx_fd_);
  idx_fd_ = ifd;
  idx_size_ = kIndexStart;
  SetActive(*m, first, opt_.segment_bytes, kRecordsStart);
  last_index_off_ = 0;
  segs_.Add(first);
  return Status::Ok();
}

Status Appender::Recover(int dir_fd, SharedState* state) {
  dir_fd_ = dir_fd;
  state_ = state;
  auto list = ListSegments(segs_.dir());
  if (!list.ok()) return list.status();
  std::vector<uint64_t> firsts = *list;
  // A roll killed before the new segment's header was written: remove that file.
  while (!firsts.empty()) {
    const std::string path = segs_.Path(SegmentFileName(firsts.back()));
    auto m = MapFile(path, false);
    bool unfinished = !m.ok() && m.status().code() == Code::kCorrupt;  // empty file
    if (m.ok() && (*m)->size >= sizeof(SegmentHeader)) {
      static constexpr uint8_t kZero[sizeof(SegmentHeader)] = {};
      unfinished = std::memcmp((*m)->base, kZero, sizeof(kZero)) == 0;
    }
    if (!unfinished || firsts.size() == 1) {
      if (unfinished) {
        ::unlink(path.c_str());
        ::unlink(segs_.Path(IndexFileName(firsts.back())).c_str());
        firsts.pop_back();
      }
      break;
    }
    ::unlink(path.c_str());
    ::unlink(segs_.Path(IndexFileName(firsts.back())).c_str());
    firsts.pop_back();
  }
  segs_.Reset(firsts);
  if (firsts.empty()) {
    next_ = 0;
    return Create(0);
  }
  const uint64_t first = firsts.back();
  const std::string path = segs_.Path(SegmentFileName(first));
  auto m = MapFile(path, true);
  if (!m.ok()) return m.status();
  // Everything recovery looks at is read with pread into a private image, never through the
  // mapping: a hole read through a shared mapping on a full tmpfs would die of SIGBUS.
  size_t idx_skipped = 0;
  std::vector<IndexEntry> idx = ReadIndex(segs_.Path(IndexFileName(first)), first, kRecoveryIndexEntries, &idx_skipped);
  auto image = ReadImage((*m)->fd, path, sizeof(SegmentHeader), idx.empty() ? kRecordsStart : idx.front().offset);
  if (!image.ok()) return image.status();
  WEFT_RETURN_IF_ERROR(ValidateSegmentHeader((*image)->bytes(), first).Annotate(path));
  SegmentHeader h;
  std::memcpy(&h, (*image)->base, sizeof(h));
  const ByteView seg((*image)->base, h.capacity);
  // The last index entries are enough to start from.
  uint64_t seq = 0;
  int64_t min_ts = INT64_MIN;
  uint64_t off = LocateFrom(seg, idx, UINT64_MAX, first, &seq, &min_ts);
  for (;;) {
    ScanStep st = ScanRecord(seg, off, seq, min_ts);
    if (st.end != ScanEnd::kRecord) {
      // Where the records stop, the segment must hold no valid record further on (searched to
      // its end): a torn tail is cut, but damage that valid records follow is reported, and
      // cut only when the user asks (LogOptions::repair).
      uint64_t later = 0;
      const uint64_t at = ValidRecordAfter(**image, off, seq, &later);
      if (at != 0) {
        const std::string why = st.end == ScanEnd::kEnd ? std::string("zeros where a record belongs") : st.why;
        if (!opt_.repair) {
          return Corrupt(path + " offset " + std::to_string(off) + " (record " + std::to_string(seq) + "): " + why +
                         ", and " + std::to_string(later) + " valid records follow from offset " +
                         std::to_string(at) + "; nothing was cut (weft log verify --repair cuts them)");
        }
        cut_records_ = later;
        cut_reason_ = why;
      }
      break;
    }
    min_ts = st.header.timestamp_ns;
    off = st.next_offset;
    ++seq;
  }
  // Zero everything past the last valid record, if anything is there (the file keeps its size:
  // mapped readers never see it shrink), and reserve the space again.
  bool dirty = false;
  for (const auto& [begin, end] : (*image)->filled) {
    if (end <= off) continue;
    const uint64_t b = std::max(begin, off), e = std::min<uint64_t>(end, h.capacity);
    for (uint64_t p = b; p < e && !dirty; ++p) dirty = (*image)->base[p] != 0;
  }
  const off_t from = static_cast<off_t>(off), len = static_cast<off_t>(h.capacity - off);
  if (dirty) {
    if (::fallocate((*m)->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, from, len) != 0) {
      static const std::vector<uint8_t> zeros(size_t{1} << 20);
      for (uint64_t p = off; p < h.capacity;) {
        const size_t n = static_cast<size_t>(std::min<uint64_t>(zeros.size(), h.capacity - p));
        if (::pwrite((*m)->fd, zeros.data(), n, static_cast<off_t>(p)) != static_cast<ssize_t>(n)) {
          return ErrnoStatus(errno, "zeroing the torn tail of " + path);
        }
        p += n;
      }
    }
    cut_at_ = off;
  }
  {
    size_t keep = 0;
    while (keep < idx.size() && idx[keep].offset < off) ++keep;
    const std::string ipath = segs_.Path(IndexFileName(first));
    idx_fd_ = ::open(ipath.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (idx_fd_ < 0) return ErrnoStatus(errno, "open(" + ipath + ")");
    struct stat st;
    if (::fstat(idx_fd_, &st) != 0 || static_cast<uint64_t>(st.st_size) < kIndexStart || idx_skipped + keep == 0) {
      WEFT_RETURN_IF_ERROR(WriteIndexHeader(idx_fd_, first));
    }
    idx_size_ = kIndexStart + (idx_skipped + keep) * sizeof(IndexEntry);
    if (::ftruncate(idx_fd_, static_cast<off_t>(idx_size_)) != 0) return ErrnoStatus(errno, "ftruncate(" + ipath + ")");
    last_index_off_ = keep > 0 ? idx[keep - 1].offset : 0;
  }
  if (opt_.fsync != Fsync::kNever) WEFT_RETURN_IF_ERROR(SyncFd((*m)->fd, path));
  // The roll size may have changed since the segment was made: this one keeps its own.
  SetActive(*m, first, h.capacity, off);
  next_ = seq;
  last_ts_ = min_ts;
  return Status::Ok();
}

Status Appender::Roll() {
  const uint64_t used = write_off_;
  std::shared_ptr<Mapping> old = active_;
  if (opt_.fsync != Fsync::kNever) WEFT_RETURN_IF_ERROR(SyncFd(old->fd, old->path));
  // Give back the reserved space the records did not use (the size stays, for mapped readers).
  const uint64_t from = (used + 4095) & ~uint64_t{4095};
  if (from < capacity_) {
    ::fallocate(old->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(from),
                static_cast<off_t>(capacity_ - from));
  }
  WEFT_RETURN_IF_ERROR(Create(next_));
  return ApplyRetention();
}

// Small records are copied into the mapping. Write the pages ahead once as zeros first:
// the write path fills the page cache far more cheaply than faulting fresh pages in one
// by one, and under a durable policy the extents turn from reserved to written in one
// metadata commit per chunk, so the fsyncs that follow flush data only.
Status Appender::ZeroAhead(uint64_t need) {
  if (write_off_ + need <= zeroed_to_) return Status::Ok();
  const uint64_t from = std::max(zeroed_to_, write_off_);
  const uint64_t to = std::min<uint64_t>(capacity_, std::max(write_off_ + need, from + kZeroChunk));
  alignas(64) static const uint8_t kZeros[64 << 10] = {};  // one small source, kept in cache
  iovec iov[kZeroChunk / sizeof(kZeros)];
  for (iovec& v : iov) v = {const_cast<uint8_t*>(kZeros), sizeof(kZeros)};
  for (uint64_t p = from; p < to;) {
    uint64_t left = to - p;
    int n = 0;
    for (; n < static_cast<int>(std::size(iov)) && left > 0; ++n) {
      iov[n].iov_len = static_cast<size_t>(std::min<uint64_t>(left, sizeof(kZeros)));
      left -= iov[n].iov_len;
    }
    const ssize_t w = ::pwritev(active_->fd, iov, n, static_cast<off_t>(p));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      // The record's own bytes must be on written blocks before we store into the mapping
      // (a store to a block the disk cannot give would be a SIGBUS): fail the append.
      if (p < write_off_ + need) return ErrnoStatus(w < 0 ? errno : ENOSPC, "write(" + active_->path + ")");
      break;
    }
    p += static_cast<uint64_t>(w);
  }
  zeroed_to_ = to;
  return Status::Ok();
}

Status Appender::Write(ByteView payload, uint32_t flags, int64_t timestamp_ns) {
  const uint64_t need = RecordBytes(payload.size());
  if (write_off_ + need > capacity_) WEFT_RETURN_IF_ERROR(Roll());
  if (payload.size() < kDirectWriteMin) WEFT_RETURN_IF_ERROR(ZeroAhead(need));
  RecordHeader h{};
  h.length = static_cast<uint32_t>(payload.size());
  h.seq = next_;
  h.timestamp_ns = timestamp_ns;
  h.flags = flags;
  // Large records go in with one pwritev: whole pages copied straight into the page cache,
  // which the mapping shares, without the kernel first zeroing pages for the mapping. So do
  // all records under kAlways: after each fsync a page stored through the mapping is write-
  // protected again, and the next_ store would pay a fault into the filesystem.
  if (payload.size() >= kDirectWriteMin || opt_.fsync == Fsync::kAlways) {
    h.crc = RecordCrc(h, payload.data());
    static const uint8_t kPad[8] = {};
    iovec iov[3] = {{&h, sizeof(h)},
                    {const_cast<uint8_t*>(payload.data()), payload.size()},
                    {const_cast<uint8_t*>(kPad), need - sizeof(h) - payload.size()}};
    uint64_t done = 0;
    while (done < need) {
      const ssize_t w = ::pwritev(active_->fd, iov, 3, static_cast<off_t>(write_off_ + done));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return ErrnoStatus(errno, "write(" + active_->path + ")");
      done += static_cast<uint64_t>(w);
      // Rare short write: advance the iovecs past what went out.
      uint64_t skip = static_cast<uint64_t>(w);
      for (iovec& v : iov) {
        const uint64_t k = std::min<uint64_t>(skip, v.iov_len);
        v.iov_base = static_cast<uint8_t*>(v.iov_base) + k;
        v.iov_len -= k;
        skip -= k;
      }
    }
  } else {
    if (write_off_ + need > populated_to_) {
      // Fault the next pages in with one call instead of one fault per page, never past what
      // ZeroAhead wrote: a page that is not in the page cache yet would be read in (zeroes
      // from a hole) and reserved page by page, several times the cost of the write path.
      const uint64_t from = populated_to_ > write_off_ ? populated_to_ : (write_off_ & ~uint64_t{4095});
      const uint64_t to = std::min<uint64_t>({capacity_, zeroed_to_, std::max(write_off_ + need, from + kPopulateChunk)});
      ::madvise(active_->base + (from & ~uint64_t{4095}), to - (from & ~uint64_t{4095}), MADV_POPULATE_WRITE);
      populated_to_ = to;
    }
    uint8_t* at = active_->base + write_off_;
    std::memcpy(at + sizeof(RecordHeader), payload.data(), payload.size());
    h.crc = RecordCrc(h, at + sizeof(RecordHeader));
    std::memcpy(at, &h, sizeof(h));
  }
  if (last_index_off_ == 0 || write_off_ - last_index_off_ >= opt_.index_every_bytes) {
    IndexEntry e{next_, write_off_, h.timestamp_ns, 0, 0};
    e.crc = Crc32c(0, &e, 24);
    if (::pwrite(idx_fd_, &e, sizeof(e), static_cast<off_t>(idx_size_)) == static_cast<ssize_t>(sizeof(e))) {
      idx_size_ += sizeof(e);
      last_index_off_ = write_off_;
    }
  }
  last_ts_ = h.timestamp_ns;
  write_off_ += need;
  ++next_;
  return Status::Ok();
}

Status Appender::ApplyRetention() {
  if (opt_.retention_events == 0 && opt_.retention_bytes == 0 && opt_.retention_age_ms <= 0) return Status::Ok();
  const std::vector<uint64_t> firsts = segs_.List();
  std::vector<uint64_t> bytes(firsts.size(), 0);
  uint64_t total = 0;
  for (size_t i = 0; i < firsts.size(); ++i) {
    struct stat st;
    if (::stat(segs_.Path(SegmentFileName(firsts[i])).c_str(), &st) == 0) bytes[i] = static_cast<uint64_t>(st.st_blocks) * 512;
    total += bytes[i];
  }
  const int64_t now = WallNs();
  size_t drop = 0;
  while (drop + 1 < firsts.size()) {
    const uint64_t next_first = firsts[drop + 1];
    bool go = false;
    if (opt_.retention_events != 0 && next_ - next_first >= opt_.retention_events) go = true;
    if (opt_.retention_bytes != 0 && total - bytes[drop] >= opt_.retention_bytes) go = true;
    if (opt_.retention_age_ms > 0) {
      // Every record of segment `drop` is no newer than the next_ segment's first record.
      RecordHeader h{};
      const int fd = ::open(segs_.Path(SegmentFileName(next_first)).c_str(), O_RDONLY | O_CLOEXEC);
      if (fd >= 0) {
        if (::pread(fd, &h, sizeof(h), kRecordsStart) == static_cast<ssize_t>(sizeof(h)) && h.length + h.seq != 0 &&
            h.timestamp_ns < now - opt_.retention_age_ms * 1'000'000) {
          go = true;
        }
        ::close(fd);
      }
    }
    if (!go) break;
    total -= bytes[drop];
    ++drop;
  }
  if (drop == 0) return Status::Ok();
  // Readers learn the new first record before the files go; a reader already inside a removed
  // segment keeps its mapping until it moves on.
  A(state_->first_seq).store(firsts[drop], std::memory_order_release);
  for (size_t i = 0; i < drop; ++i) {
    ::unlink(segs_.Path(SegmentFileName(firsts[i])).c_str());
    ::unlink(segs_.Path(IndexFileName(firsts[i])).c_str());
  }
  segs_.Forget(std::vector<uint64_t>(firsts.begin(), firsts.begin() + static_cast<long>(drop)));
  return Status::Ok();
}

void Appender::Close() {
  // Give back the space reserved past the last record (the next writer reserves it again).
  const uint64_t from = (write_off_ + 4095) & ~uint64_t{4095};
  if (active_ && from < capacity_) {
    ::fallocate(active_->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(from),
                static_cast<off_t>(capacity_ - from));
  }
  if (idx_fd_ >= 0) ::close(idx_fd_);
  idx_fd_ = -1;
  active_.reset();
}

}  // namespace weft::log::internal
