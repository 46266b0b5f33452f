#include "weft/core/mutex.h"
#include "weft/log/log.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "internal/files.h"
#include "internal/format.h"
#include "internal/group_commit.h"
#include "weft/core/futex.h"
#include "weft/core/wait.h"
#include "weft/shm/process.h"

namespace weft::log {

using namespace internal;

namespace {

template <typename T>
std::atomic_ref<T> A(T& v) {
  return std::atomic_ref<T>(v);
}

constexpr int64_t kSliceNs = 20'000'000;              // sleeping readers re-check this often
constexpr uint64_t kPopulateChunk = uint64_t{256} << 10;  // the writer faults pages in ahead
constexpr uint64_t kDirectWriteMin = uint64_t{16} << 10;  // records this large go by pwritev
constexpr uint64_t kZeroChunk = uint64_t{1} << 20;      // and writes blocks once ahead
constexpr size_t kRecoveryIndexEntries = 64;  // index entries recovery reads (from the end)

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

// Whether a valid record with a later sequence number follows `off`: an index entry that checks
// out, or a record found in the next MiB (a writer appends in order, so after a torn tail there
// is nothing but zeros or the torn record's own bytes).
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

// ---- shared implementation -------------------------------------------------------------------

struct Log::Impl {
  std::string dir;
  LogOptions opt;
  bool writer = false;
  int lock_fd = -1;
  int dir_fd = -1;
  std::shared_ptr<Mapping> state_map;
  SharedState* state = nullptr;

  // Readers' cache of segment mappings and indexes (sealed segments never change).
  Mutex seg_mu;
  std::vector<uint64_t> seg_firsts WEFT_GUARDED_BY(seg_mu);
  std::map<uint64_t, std::shared_ptr<Mapping>> maps WEFT_GUARDED_BY(seg_mu);
  std::map<uint64_t, std::vector<IndexEntry>> indexes WEFT_GUARDED_BY(seg_mu);

  // Writer.
  // Lock order: mu, then seg_mu; the group commit's lock, then mu (its snapshot); flusher_mu alone.
  Mutex mu WEFT_ACQUIRED_BEFORE(seg_mu);  // appends, rolls, retention
  std::shared_ptr<Mapping> active WEFT_GUARDED_BY(mu);
  uint64_t active_first WEFT_GUARDED_BY(mu) = 0;
  uint64_t capacity WEFT_GUARDED_BY(mu) = 0;  // the active segment's
  uint64_t write_off WEFT_GUARDED_BY(mu) = 0;
  uint64_t populated_to WEFT_GUARDED_BY(mu) = 0;
  uint64_t zeroed_to WEFT_GUARDED_BY(mu) = 0;  // durable policies: blocks up to here were written (as zeros) once
  int idx_fd WEFT_GUARDED_BY(mu) = -1;
  uint64_t idx_size WEFT_GUARDED_BY(mu) = 0;
  uint64_t last_index_off WEFT_GUARDED_BY(mu) = 0;
  int64_t last_ts WEFT_GUARDED_BY(mu) = INT64_MIN;
  uint64_t next WEFT_GUARDED_BY(mu) = 0;        // next seq (writer's copy)
  uint64_t since_sync WEFT_GUARDED_BY(mu) = 0;  // kEveryN
  uint64_t cut_at WEFT_GUARDED_BY(mu) = 0;  // where recovery cut a torn tail (0: nothing cut)
  uint64_t cut_records WEFT_GUARDED_BY(mu) = 0;  // valid records a repair cut after damage
  std::string cut_reason WEFT_GUARDED_BY(mu);    // what the damage was, when a repair cut
  bool closed WEFT_GUARDED_BY(mu) = false;

  // Durability: group commit (internal/group_commit.h); it takes `mu` briefly for a snapshot.
  internal::GroupCommit commit{{
      .appended = [this] { return NextSeq(); },
      .snapshot = [this] { return SyncSnapshot(); },
      .durable = [this](uint64_t seq) { A(state->durable_seq).store(seq, std::memory_order_release); },
  }};
  Status SyncTo(uint64_t target) WEFT_EXCLUDES(mu) { return commit.SyncTo(target); }
  internal::GroupCommit::Snapshot SyncSnapshot() WEFT_EXCLUDES(mu) {
    MutexLock g(mu);
    if (!active) return {next, -1, "", nullptr};
    return {next, active->fd, active->path, active};  // older segments were synced when they rolled
  }
  std::thread flusher;
  Mutex flusher_mu;
  CondVar flusher_cv;
  bool stop_flusher WEFT_GUARDED_BY(flusher_mu) = false;

  bool state_writable = true;  // false: a reader without write access; tails poll

  ~Impl() {
    if (idx_fd >= 0) ::close(idx_fd);
    if (lock_fd >= 0) ::close(lock_fd);
    if (dir_fd >= 0) ::close(dir_fd);
  }

  std::string Path(const std::string& name) const { return dir + "/" + name; }

  uint64_t FirstSeq() const { return A(state->first_seq).load(std::memory_order_acquire); }
  uint64_t NextSeq() const { return A(state->next_seq).load(std::memory_order_acquire); }

  // ---- reading ----

  Result<std::shared_ptr<Mapping>> SegmentMap(uint64_t first) {
    MutexLock g(seg_mu);
    auto it = maps.find(first);
    if (it != maps.end()) return it->second;
    auto m = MapFile(Path(SegmentFileName(first)), false);
    if (!m.ok()) return m.status();
    WEFT_RETURN_IF_ERROR(ValidateSegmentHeader((*m)->bytes(), first).Annotate((*m)->path));
    if (maps.size() > 64) maps.erase(maps.begin());  // bound the cache; users keep their own refs
    maps[first] = *m;
    return *m;
  }

  // The segment holding `seq`: the greatest first_seq <= seq.
  Result<uint64_t> SegmentFor(uint64_t seq) {
    for (int attempt = 0; attempt < 2; ++attempt) {
      {
        MutexLock g(seg_mu);
        auto it = std::upper_bound(seg_firsts.begin(), seg_firsts.end(), seq);
        // The writer keeps its list current; a reader trusts its cached list only if a later
        // segment exists (else one may have appeared since) or this is a re-read.
        if (it != seg_firsts.begin() && (writer || it != seg_firsts.end() || attempt == 1)) return *std::prev(it);
      }
      auto list = ListSegments(dir);
      if (!list.ok()) return list.status();
      MutexLock g(seg_mu);
      seg_firsts = *list;
    }
    return Status(Code::kOutOfRange, "no segment holds seq " + std::to_string(seq));
  }

  std::vector<IndexEntry> IndexOf(uint64_t first, bool sealed) {
    MutexLock g(seg_mu);
    auto it = indexes.find(first);
    if (it != indexes.end()) return it->second;
    std::vector<IndexEntry> idx = ReadIndex(Path(IndexFileName(first)), first);
    if (sealed) indexes[first] = idx;
    return idx;
  }

  Status OutOfRange(uint64_t seq) {
    const uint64_t first = FirstSeq(), next = NextSeq();
    if (seq < first) {
      return Status(Code::kOutOfRange, "record " + std::to_string(seq) +
                                           " was removed by retention; the first available is " + std::to_string(first));
    }
    return Status(Code::kOutOfRange, "record " + std::to_string(seq) + " is not written yet (next is " +
                                         std::to_string(next) + ")");
  }

  // Finds `seq` (which must be below next_seq): its segment's mapping and the record offset.
  Status Locate(uint64_t seq, std::shared_ptr<Mapping>* map, uint64_t* offset, int64_t* min_ts) {
    auto first = SegmentFor(seq);
    if (!first.ok()) return first.status();
    auto m = SegmentMap(*first);
    if (!m.ok()) return m.status();
    const bool sealed = seq < NextSeq() && *first != LatestFirst();
    uint64_t at_seq = 0;
    uint64_t off = LocateFrom((*m)->bytes(), IndexOf(*first, sealed), seq, *first, &at_seq, min_ts);
    for (; at_seq < seq; ++at_seq) {
      ScanStep st = ScanRecord((*m)->bytes(), off, at_seq, *min_ts);
      if (st.end != ScanEnd::kRecord) return Damaged(**m, off, at_seq, st);
      *min_ts = st.header.timestamp_ns;
      off = st.next_offset;
    }
    *map = *m;
    *offset = off;
    return Status::Ok();
  }

  uint64_t LatestFirst() {
    MutexLock g(seg_mu);
    return seg_firsts.empty() ? 0 : seg_firsts.back();
  }

  static Status Damaged(const Mapping& m, uint64_t off, uint64_t seq, const ScanStep& st) {
    return Corrupt(m.path + " offset " + std::to_string(off) + " (record " + std::to_string(seq) + "): " +
                   (st.end == ScanEnd::kEnd ? std::string("the segment ends before it") : st.why));
  }

  static Record MakeRecord(const std::shared_ptr<Mapping>& m, uint64_t off, const RecordHeader& h) {
    Record r;
    r.seq = h.seq;
    r.timestamp_ns = h.timestamp_ns;
    r.flags = h.flags;
    r.payload = ByteView(m->base + off + sizeof(RecordHeader), h.length);
    r.mapping = m;
    return r;
  }

  // ---- writing ----

  // The segment appends go to from now on, with records up to `end`.
  void SetActive(std::shared_ptr<Mapping> m, uint64_t first, uint64_t cap, uint64_t end) WEFT_REQUIRES(mu) {
    // No readahead for the writer's faults: with it the kernel builds large page-cache folios
    // and zeroes a whole folio again on every page fault inside it.
    ::madvise(m->base, m->size, MADV_RANDOM);
    active = std::move(m);
    active_first = first;
    capacity = cap;
    write_off = end;
    populated_to = 0;
    zeroed_to = 0;
  }
  static Status OpenReader(Impl& m, const std::string& path);
  static Status OpenWriter(Impl& m);
  Status OpenState();
  Status Recover() WEFT_REQUIRES(mu);
  Status CreateSegment(uint64_t first) WEFT_REQUIRES(mu);
  Status Roll() WEFT_REQUIRES(mu);
  Status WriteOne(ByteView payload, uint32_t flags, int64_t timestamp_ns) WEFT_REQUIRES(mu);
  Status RetentionLocked() WEFT_REQUIRES(mu);
  void Publish() WEFT_REQUIRES(mu) {
    A(state->next_seq).store(next, std::memory_order_release);
    // Wakes the tails that counted themselves asleep (weft/core/wait.h); no system call and
    // no read-modify-write when none did.
    EventCount::Counter(&state->wake, &state->sleepers).Notify();
  }
  void FlusherLoop() WEFT_EXCLUDES(mu, flusher_mu);
};

Status Log::Impl::OpenState() {
  const std::string path = Path("state");
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoStatus(errno, "open(" + path + ")");
  if (::ftruncate(fd, sizeof(SharedState)) != 0) {
    const int err = errno;
    ::close(fd);
    return ErrnoStatus(err, "ftruncate(" + path + ")");
  }
  ::close(fd);
  auto m = MapFile(path, true);
  if (!m.ok()) return m.status();
  state_map = *m;
  state = reinterpret_cast<SharedState*>(state_map->base);
  return Status::Ok();
}

Status Log::Impl::CreateSegment(uint64_t first) {
  const std::string path = Path(SegmentFileName(first));
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
  h.capacity = opt.segment_bytes;
  h.crc = Crc32c(0, &h, 60);
  if (::ftruncate(fd, static_cast<off_t>(opt.segment_bytes)) != 0 ||
      ::pwrite(fd, &h, sizeof(h), 0) != static_cast<ssize_t>(sizeof(h))) {
    const int err = errno;
    ::close(fd);
    ::unlink(path.c_str());
    return ErrnoStatus(err, "create(" + path + ")");
  }
  ::close(fd);
  auto m = MapFile(path, true);
  if (!m.ok()) return m.status();
  const std::string ipath = Path(IndexFileName(first));
  const int ifd = ::open(ipath.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (ifd < 0) return ErrnoStatus(errno, "create(" + ipath + ")");
  Status s = WriteIndexHeader(ifd, first);
  if (!s.ok()) {
    ::close(ifd);
    return s;
  }
  if (opt.fsync != Fsync::kNever) {
    WEFT_RETURN_IF_ERROR(SyncFd((*m)->fd, path));
    if (::fsync(dir_fd) != 0) return ErrnoStatus(errno, "fsync(" + dir + ")");
  }
  if (idx_fd >= 0) ::close(idx_fd);
  idx_fd = ifd;
  idx_size = kIndexStart;
  SetActive(*m, first, opt.segment_bytes, kRecordsStart);
  last_index_off = 0;
  {
    MutexLock g(seg_mu);
    if (seg_firsts.empty() || seg_firsts.back() < first) seg_firsts.push_back(first);
  }
  return Status::Ok();
}

// Validates the newest segment from its last good index entry and cuts a torn tail.
Status Log::Impl::Recover() {
  auto list = ListSegments(dir);
  if (!list.ok()) return list.status();
  std::vector<uint64_t> firsts = *list;
  // A roll killed before the new segment's header was written: remove that file.
  while (!firsts.empty()) {
    const std::string path = Path(SegmentFileName(firsts.back()));
    auto m = MapFile(path, false);
    bool unfinished = !m.ok() && m.status().code() == Code::kCorrupt;  // empty file
    if (m.ok() && (*m)->size >= sizeof(SegmentHeader)) {
      static constexpr uint8_t kZero[sizeof(SegmentHeader)] = {};
      unfinished = std::memcmp((*m)->base, kZero, sizeof(kZero)) == 0;
    }
    if (!unfinished || firsts.size() == 1) {
      if (unfinished) {
        ::unlink(path.c_str());
        ::unlink(Path(IndexFileName(firsts.back())).c_str());
        firsts.pop_back();
      }
      break;
    }
    ::unlink(path.c_str());
    ::unlink(Path(IndexFileName(firsts.back())).c_str());
    firsts.pop_back();
  }
  {
    MutexLock g(seg_mu);
    seg_firsts = firsts;
  }
  if (firsts.empty()) {
    next = 0;
    return CreateSegment(0);
  }
  const uint64_t first = firsts.back();
  const std::string path = Path(SegmentFileName(first));
  auto m = MapFile(path, true);
  if (!m.ok()) return m.status();
  // Everything recovery looks at is read with pread into a private image, never through the
  // mapping: a hole read through a shared mapping on a full tmpfs would die of SIGBUS.
  size_t idx_skipped = 0;
  std::vector<IndexEntry> idx = ReadIndex(Path(IndexFileName(first)), first, kRecoveryIndexEntries, &idx_skipped);
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
        if (!opt.repair) {
          return Corrupt(path + " offset " + std::to_string(off) + " (record " + std::to_string(seq) + "): " + why +
                         ", and " + std::to_string(later) + " valid records follow from offset " +
                         std::to_string(at) + "; nothing was cut (weft log verify --repair cuts them)");
        }
        cut_records = later;
        cut_reason = why;
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
    cut_at = off;
  }
  {
    size_t keep = 0;
    while (keep < idx.size() && idx[keep].offset < off) ++keep;
    const std::string ipath = Path(IndexFileName(first));
    idx_fd = ::open(ipath.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (idx_fd < 0) return ErrnoStatus(errno, "open(" + ipath + ")");
    struct stat st;
    if (::fstat(idx_fd, &st) != 0 || static_cast<uint64_t>(st.st_size) < kIndexStart || idx_skipped + keep == 0) {
      WEFT_RETURN_IF_ERROR(WriteIndexHeader(idx_fd, first));
    }
    idx_size = kIndexStart + (idx_skipped + keep) * sizeof(IndexEntry);
    if (::ftruncate(idx_fd, static_cast<off_t>(idx_size)) != 0) return ErrnoStatus(errno, "ftruncate(" + ipath + ")");
    last_index_off = keep > 0 ? idx[keep - 1].offset : 0;
  }
  if (opt.fsync != Fsync::kNever) WEFT_RETURN_IF_ERROR(SyncFd((*m)->fd, path));
  // The roll size may have changed since the segment was made: this one keeps its own.
  SetActive(*m, first, h.capacity, off);
  next = seq;
  last_ts = min_ts;
  return Status::Ok();
}

Status Log::Impl::Roll() {
  const uint64_t used = write_off;
  std::shared_ptr<Mapping> old = active;
  if (opt.fsync != Fsync::kNever) WEFT_RETURN_IF_ERROR(SyncFd(old->fd, old->path));
  // Give back the reserved space the records did not use (the size stays, for mapped readers).
  const uint64_t from = (used + 4095) & ~uint64_t{4095};
  if (from < capacity) {
    ::fallocate(old->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(from),
                static_cast<off_t>(capacity - from));
  }
  WEFT_RETURN_IF_ERROR(CreateSegment(next));
  return RetentionLocked();
}

Status Log::Impl::WriteOne(ByteView payload, uint32_t flags, int64_t timestamp_ns) {
  const uint64_t need = RecordBytes(payload.size());
  if (write_off + need > capacity) WEFT_RETURN_IF_ERROR(Roll());
  if (write_off + need > zeroed_to && payload.size() < kDirectWriteMin) {
    // Small records are copied into the mapping. Write the pages ahead once as zeros first:
    // the write path fills the page cache far more cheaply than faulting fresh pages in one
    // by one, and under a durable policy the extents turn from reserved to written in one
    // metadata commit per chunk, so the fsyncs that follow flush data only.
    const uint64_t from = std::max(zeroed_to, write_off);
    const uint64_t to = std::min<uint64_t>(capacity, std::max(write_off + need, from + kZeroChunk));
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
      const ssize_t w = ::pwritev(active->fd, iov, n, static_cast<off_t>(p));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) {
        // The record's own bytes must be on written blocks before we store into the mapping
        // (a store to a block the disk cannot give would be a SIGBUS): fail the append.
        if (p < write_off + need) return ErrnoStatus(w < 0 ? errno : ENOSPC, "write(" + active->path + ")");
        break;
      }
      p += static_cast<uint64_t>(w);
    }
    zeroed_to = to;
  }
  RecordHeader h{};
  h.length = static_cast<uint32_t>(payload.size());
  h.seq = next;
  h.timestamp_ns = timestamp_ns;
  h.flags = flags;
  // Large records go in with one pwritev: whole pages copied straight into the page cache,
  // which the mapping shares, without the kernel first zeroing pages for the mapping. So do
  // all records under kAlways: after each fsync a page stored through the mapping is write-
  // protected again, and the next store would pay a fault into the filesystem.
  if (payload.size() >= kDirectWriteMin || opt.fsync == Fsync::kAlways) {
    h.crc = RecordCrc(h, payload.data());
    static const uint8_t kPad[8] = {};
    iovec iov[3] = {{&h, sizeof(h)},
                    {const_cast<uint8_t*>(payload.data()), payload.size()},
                    {const_cast<uint8_t*>(kPad), need - sizeof(h) - payload.size()}};
    uint64_t done = 0;
    while (done < need) {
      const ssize_t w = ::pwritev(active->fd, iov, 3, static_cast<off_t>(write_off + done));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return ErrnoStatus(errno, "write(" + active->path + ")");
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
    if (write_off + need > populated_to) {
      // Fault the next pages in with one call instead of one fault per page.
      const uint64_t from = populated_to > write_off ? populated_to : (write_off & ~uint64_t{4095});
      const uint64_t to = std::min<uint64_t>(capacity, std::max(write_off + need, from + kPopulateChunk));
      ::madvise(active->base + (from & ~uint64_t{4095}), to - (from & ~uint64_t{4095}), MADV_POPULATE_WRITE);
      populated_to = to;
    }
    uint8_t* at = active->base + write_off;
    std::memcpy(at + sizeof(RecordHeader), payload.data(), payload.size());
    h.crc = RecordCrc(h, at + sizeof(RecordHeader));
    std::memcpy(at, &h, sizeof(h));
  }
  if (last_index_off == 0 || write_off - last_index_off >= opt.index_every_bytes) {
    IndexEntry e{next, write_off, h.timestamp_ns, 0, 0};
    e.crc = Crc32c(0, &e, 24);
    if (::pwrite(idx_fd, &e, sizeof(e), static_cast<off_t>(idx_size)) == static_cast<ssize_t>(sizeof(e))) {
      idx_size += sizeof(e);
      last_index_off = write_off;
    }
  }
  last_ts = h.timestamp_ns;
  write_off += need;
  ++next;
  return Status::Ok();
}

Status Log::Impl::RetentionLocked() {
  if (opt.retention_events == 0 && opt.retention_bytes == 0 && opt.retention_age_ms <= 0) return Status::Ok();
  std::vector<uint64_t> firsts;
  {
    MutexLock g(seg_mu);
    firsts = seg_firsts;
  }
  std::vector<uint64_t> bytes(firsts.size(), 0);
  uint64_t total = 0;
  for (size_t i = 0; i < firsts.size(); ++i) {
    struct stat st;
    if (::stat(Path(SegmentFileName(firsts[i])).c_str(), &st) == 0) bytes[i] = static_cast<uint64_t>(st.st_blocks) * 512;
    total += bytes[i];
  }
  const int64_t now = WallNs();
  size_t drop = 0;
  while (drop + 1 < firsts.size()) {
    const uint64_t next_first = firsts[drop + 1];
    bool go = false;
    if (opt.retention_events != 0 && next - next_first >= opt.retention_events) go = true;
    if (opt.retention_bytes != 0 && total - bytes[drop] >= opt.retention_bytes) go = true;
    if (opt.retention_age_ms > 0) {
      // Every record of segment `drop` is no newer than the next segment's first record.
      RecordHeader h{};
      const int fd = ::open(Path(SegmentFileName(next_first)).c_str(), O_RDONLY | O_CLOEXEC);
      if (fd >= 0) {
        if (::pread(fd, &h, sizeof(h), kRecordsStart) == static_cast<ssize_t>(sizeof(h)) && h.length + h.seq != 0 &&
            h.timestamp_ns < now - opt.retention_age_ms * 1'000'000) {
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
  A(state->first_seq).store(firsts[drop], std::memory_order_release);
  for (size_t i = 0; i < drop; ++i) {
    ::unlink(Path(SegmentFileName(firsts[i])).c_str());
    ::unlink(Path(IndexFileName(firsts[i])).c_str());
  }
  MutexLock g(seg_mu);
  seg_firsts.erase(seg_firsts.begin(), seg_firsts.begin() + static_cast<long>(drop));
  for (size_t i = 0; i < drop; ++i) {
    maps.erase(firsts[i]);
    indexes.erase(firsts[i]);
  }
  return Status::Ok();
}

void Log::Impl::FlusherLoop() {
  MutexLock lk(flusher_mu);
  while (!stop_flusher) {
    flusher_cv.WaitForNs(lk, std::max<int64_t>(opt.fsync_interval_ms, 1) * 1'000'000);
    if (stop_flusher) break;
    lk.Unlock();
    uint64_t target;
    {
      MutexLock g(mu);
      target = next;
    }
    if (A(state->durable_seq).load(std::memory_order_acquire) < target) SyncTo(target).IgnoreError();
    lk.Lock();
  }
}

// ---- Log ----------------------------------------------------------------------------------------

Log::Log(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
Log::~Log() { Close().IgnoreError(); }

// A reader: maps the state (writable if it may, to count itself among sleeping tails) and lists
// the segments; it never recovers or writes anything.
Status Log::Impl::OpenReader(Impl& m, const std::string& path) {
  struct stat st;
  if (::stat(m.Path("state").c_str(), &st) != 0) {
    return NotFound("no log at " + path + " (no state file: open it once for writing)");
  }
  auto map = MapFile(m.Path("state"), true);  // tails count themselves as sleepers
  if (!map.ok() && map.status().code() == Code::kPermissionDenied) {
    m.state_writable = false;
    map = MapFile(m.Path("state"), false);
  }
  if (!map.ok()) return map.status();
  if ((*map)->size < sizeof(SharedState) || std::memcmp((*map)->base, kStateMagic, 8) != 0) {
    return Corrupt(m.Path("state") + ": not a weft log state file");
  }
  m.state_map = *map;
  m.state = reinterpret_cast<SharedState*>((*map)->base);
  auto list = ListSegments(path);
  if (!list.ok()) return list.status();
  MutexLock g(m.seg_mu);
  m.seg_firsts = *list;
  return Status::Ok();
}

// The writer: takes the log's lock file, rebuilds the shared state from the files (recovery),
// then applies retention.
Status Log::Impl::OpenWriter(Impl& m) {
  // The lock first.
  const std::string lock_path = m.Path("lock");
  m.lock_fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (m.lock_fd < 0) return ErrnoStatus(errno, "open(" + lock_path + ")");
  if (::flock(m.lock_fd, LOCK_EX | LOCK_NB) != 0) {
    char buf[32] = {};
    const ssize_t n = ::pread(m.lock_fd, buf, sizeof(buf) - 1, 0);
    std::string holder = n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string("?");
    holder.erase(holder.find_last_not_of(" \n") + 1);
    return Status(Code::kBusy, "log " + m.dir + " is open for writing by pid " + holder);
  }
  char pid[17];
  std::snprintf(pid, sizeof(pid), "%-15d\n", static_cast<int>(::getpid()));  // fixed width: no truncate
  if (::pwrite(m.lock_fd, pid, 16, 0) != 16) {
    return ErrnoStatus(errno, "write(" + lock_path + ")");
  }
  WEFT_RETURN_IF_ERROR(m.OpenState());
  MutexLock g(m.mu);  // nobody else has the log yet: the lock is for the analysis
  WEFT_RETURN_IF_ERROR(m.Recover());
  SharedState& s = *m.state;
  uint64_t first = m.next;
  {
    MutexLock sg(m.seg_mu);
    if (!m.seg_firsts.empty()) first = m.seg_firsts.front();
  }
  // The state is derived: rebuild it. Magic last, so a reader never takes a half-written one.
  const shm::ProcessIdentity me = shm::SelfIdentity();
  A(s.first_seq).store(first, std::memory_order_relaxed);
  A(s.next_seq).store(m.next, std::memory_order_relaxed);
  const uint64_t durable = m.opt.fsync != Fsync::kNever ? m.next : 0;
  g.Unlock();  // lock order: the group commit's lock before mu
  m.commit.SetDurable(durable);
  g.Lock();
  A(s.durable_seq).store(durable, std::memory_order_relaxed);
  A(s.writer_pid).store(me.pid, std::memory_order_relaxed);
  A(s.writer_start_ticks).store(me.start_ticks, std::memory_order_relaxed);
  A(s.segment_bytes).store(m.opt.segment_bytes, std::memory_order_relaxed);
  s.version = kFormatVersion;
  s.size = sizeof(SharedState);
  std::atomic_thread_fence(std::memory_order_release);
  std::memcpy(s.magic, kStateMagic, 8);
  return m.RetentionLocked();
}

Result<std::unique_ptr<Log>> Log::Open(const std::string& path, const LogOptions& options) {
  if (path.empty()) return InvalidArgument("empty log path");
  if (!options.read_only) {
    if (options.segment_bytes < 4096 || options.segment_bytes > (uint64_t{1} << 40)) {
      return InvalidArgument("segment_bytes must be 4 KiB to 1 TiB");
    }
    if (options.fsync == Fsync::kEveryN && options.fsync_every_n == 0) return InvalidArgument("fsync_every_n is 0");
    if (options.fsync == Fsync::kInterval && options.fsync_interval_ms <= 0) {
      return InvalidArgument("fsync_interval_ms must be positive");
    }
  }
  auto impl = std::make_shared<Impl>();
  impl->dir = path;
  impl->opt = options;
  impl->opt.segment_bytes = (options.segment_bytes + 7) & ~uint64_t{7};
  impl->writer = !options.read_only;
  if (impl->writer && options.create) {
    if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) return ErrnoStatus(errno, "mkdir(" + path + ")");
  }
  impl->dir_fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (impl->dir_fd < 0) {
    if (errno == ENOENT) return NotFound("no log at " + path);
    return ErrnoStatus(errno, "open(" + path + ")");
  }
  WEFT_RETURN_IF_ERROR(impl->writer ? Impl::OpenWriter(*impl) : Impl::OpenReader(*impl, path));
  if (impl->opt.fsync == Fsync::kInterval) {
    Impl* raw = impl.get();
    impl->flusher = std::thread([raw] { raw->FlusherLoop(); });
  }
  return std::unique_ptr<Log>(new Log(std::move(impl)));
}

Result<uint64_t> Log::Append(ByteView payload, uint32_t flags) {
  ByteView one[1] = {payload};
  auto r = AppendBatch(one, flags);
  if (!r.ok()) return r.status();
  return **r;
}

Result<std::optional<uint64_t>> Log::AppendBatch(std::span<const ByteView> payloads, uint32_t flags) {
  Impl& m = *impl_;
  if (!m.writer) return Status(Code::kPermissionDenied, "log " + m.dir + " is open read-only");
  if (payloads.empty()) return std::optional<uint64_t>();
  uint64_t first, end;
  bool sync_now = false;
  {
    MutexLock g(m.mu);
    if (m.closed) return Status(Code::kClosed, "log is closed");
    const uint64_t room = m.opt.segment_bytes - kRecordsStart;
    for (const ByteView& p : payloads) {
      if (p.size() > UINT32_MAX || RecordBytes(p.size()) > room) {
        return TooLarge("record of " + std::to_string(p.size()) + " bytes does not fit a " +
                        std::to_string(m.opt.segment_bytes) + "-byte segment");
      }
    }
    first = m.next;
    const int64_t ts = std::max(WallNs(), m.last_ts);  // a batch shares one timestamp
    for (const ByteView& p : payloads) {
      Status s = m.WriteOne(p, flags, ts);
      if (!s.ok()) {
        if (m.next != first) m.Publish();  // what was written stays written
        return s;
      }
    }
    end = m.next;
    m.Publish();
    if (m.opt.fsync == Fsync::kEveryN) {
      m.since_sync += payloads.size();
      if (m.since_sync >= m.opt.fsync_every_n) {
        m.since_sync = 0;
        sync_now = true;
      }
    }
  }
  if (m.opt.fsync == Fsync::kAlways || sync_now) WEFT_RETURN_IF_ERROR(m.SyncTo(end));
  return std::optional<uint64_t>(first);
}

Status Log::Sync() {
  Impl& m = *impl_;
  if (!m.writer) return Status::Ok();
  uint64_t target;
  {
    MutexLock g(m.mu);
    target = m.next;
  }
  return m.SyncTo(target);
}

Result<Record> Log::Read(uint64_t seq) {
  Impl& m = *impl_;
  if (seq < m.FirstSeq() || seq >= m.NextSeq()) return m.OutOfRange(seq);
  std::shared_ptr<Mapping> map;
  uint64_t off = 0;
  int64_t min_ts = INT64_MIN;
  Status s = m.Locate(seq, &map, &off, &min_ts);
  if (!s.ok()) return seq < m.FirstSeq() ? m.OutOfRange(seq) : s;
  ScanStep st = ScanRecord(map->bytes(), off, seq, min_ts);
  if (st.end != ScanEnd::kRecord) return Impl::Damaged(*map, off, seq, st);
  return Impl::MakeRecord(map, off, st.header);
}

Result<uint64_t> Log::SeqAtTime(int64_t time_ns) {
  Impl& m = *impl_;
  auto list = ListSegments(m.dir);
  if (!list.ok()) return list.status();
  // The last segment whose first record is not after the time, then its index, then a scan.
  uint64_t seg = UINT64_MAX;
  for (uint64_t first : *list) {
    auto map = m.SegmentMap(first);
    if (!map.ok()) continue;
    ScanStep st = ScanRecord((*map)->bytes(), kRecordsStart, first, INT64_MIN);
    if (st.end != ScanEnd::kRecord) continue;
    if (st.header.timestamp_ns >= time_ns) break;
    seg = first;
  }
  if (seg == UINT64_MAX) return std::max(m.FirstSeq(), list->empty() ? m.NextSeq() : list->front());
  auto map = m.SegmentMap(seg);
  if (!map.ok()) return map.status();
  std::vector<IndexEntry> idx = m.IndexOf(seg, false);
  uint64_t seq = seg, off = kRecordsStart;
  int64_t min_ts = INT64_MIN;
  for (const IndexEntry& e : idx) {
    if (e.timestamp_ns >= time_ns) break;
    if (ScanRecord((*map)->bytes(), e.offset, e.seq, INT64_MIN).end == ScanEnd::kRecord) {
      seq = e.seq;
      off = e.offset;
    }
  }
  const uint64_t limit = m.NextSeq();
  for (; seq < limit; ++seq) {
    ScanStep st = ScanRecord((*map)->bytes(), off, seq, min_ts);
    if (st.end != ScanEnd::kRecord) break;  // the segment ends: the next one starts later
    if (st.header.timestamp_ns >= time_ns) return seq;
    min_ts = st.header.timestamp_ns;
    off = st.next_offset;
  }
  return seq;
}

Status Log::ApplyRetention() {
  Impl& m = *impl_;
  if (!m.writer) return Status(Code::kPermissionDenied, "log " + m.dir + " is open read-only");
  MutexLock g(m.mu);
  return m.RetentionLocked();
}

Status Log::Verify() {
  Impl& m = *impl_;
  auto list = ListSegments(m.dir);
  if (!list.ok()) return list.status();
  const uint64_t limit = m.NextSeq();
  uint64_t seq = list->empty() ? 0 : list->front();
  int64_t min_ts = INT64_MIN;
  for (size_t i = 0; i < list->size(); ++i) {
    const uint64_t first = (*list)[i];
    const std::string path = m.Path(SegmentFileName(first));
    if (first != seq) {
      return Corrupt(path + ": starts at record " + std::to_string(first) + " where " + std::to_string(seq) +
                     " belongs (a segment is missing or damaged)");
    }
    auto map = MapFile(path, false);
    if (!map.ok()) return map.status();
    WEFT_RETURN_IF_ERROR(ValidateSegmentHeader((*map)->bytes(), first).Annotate(path));
    uint64_t off = kRecordsStart;
    const bool last = i + 1 == list->size();
    for (int attempt = 0;; ++attempt) {
      for (;;) {
        ScanStep st = ScanRecord((*map)->bytes(), off, seq, min_ts);
        if ((*map)->damaged()) return Corrupt(path + ": unreadable (the file shrank, or a hole could not be read)");
        if (st.end == ScanEnd::kRecord) {
          min_ts = st.header.timestamp_ns;
          off = st.next_offset;
          ++seq;
          continue;
        }
        if (st.end == ScanEnd::kTorn && !(last && seq >= limit)) return Impl::Damaged(**map, off, seq, st);
        if (last && seq < limit) return Impl::Damaged(**map, off, seq, st);
        break;
      }
      // Where the records stop, nothing valid may follow (read with pread: no fault on a hole).
      auto image = ReadImage((*map)->fd, path, 0, off);
      if (!image.ok()) return image.status();
      uint64_t later = 0;
      const uint64_t at = ValidRecordAfter(**image, off, seq, &later);
      if (at == 0) break;
      // A live writer may have been writing the record at `off` while we looked: look again.
      if (last && attempt < 3 && A(m.state->writer_pid).load(std::memory_order_relaxed) != 0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        continue;
      }
      return Corrupt(path + " offset " + std::to_string(off) + " (record " + std::to_string(seq) +
                     "): the records stop, and " + std::to_string(later) + " valid records follow from offset " +
                     std::to_string(at));
    }
  }
  return Status::Ok();
}

LogStats Log::Stats() {
  Impl& m = *impl_;
  LogStats s;
  s.first_seq = m.FirstSeq();
  s.next_seq = m.NextSeq();
  s.durable_seq = A(m.state->durable_seq).load(std::memory_order_acquire);
  s.fsyncs = m.commit.fsyncs();
  {
    MutexLock g(m.mu);
    s.cut_at_offset = m.cut_at;
    s.cut_valid_records = m.cut_records;
    s.cut_reason = m.cut_reason;
  }
  const int32_t pid = A(m.state->writer_pid).load(std::memory_order_relaxed);
  const uint64_t ticks = A(m.state->writer_start_ticks).load(std::memory_order_relaxed);
  s.writer_pid = pid != 0 && shm::IsAlive({pid, ticks}) ? pid : 0;
  auto list = ListSegments(m.dir);
  if (list.ok()) {
    s.segments = list->size();
    for (uint64_t first : *list) {
      struct stat st;
      if (::stat(m.Path(SegmentFileName(first)).c_str(), &st) == 0) s.bytes += static_cast<uint64_t>(st.st_blocks) * 512;
    }
  }
  return s;
}

uint64_t Log::first_seq() { return impl_->FirstSeq(); }
uint64_t Log::next_seq() { return impl_->NextSeq(); }
const std::string& Log::path() const { return impl_->dir; }

Status Log::Close() {
  if (!impl_) return Status::Ok();
  Impl& m = *impl_;
  Status result;
  if (m.writer) {
    uint64_t next;
    {
      MutexLock g(m.mu);  // an append in progress holds it: none runs after this
      if (m.closed) return Status::Ok();
      m.closed = true;
      next = m.next;
    }
    if (m.flusher.joinable()) {
      {
        MutexLock g(m.flusher_mu);
        m.stop_flusher = true;
      }
      m.flusher_cv.NotifyAll();
      m.flusher.join();
    }
    if (m.opt.fsync != Fsync::kNever) result = m.SyncTo(next);
    MutexLock g(m.mu);
    // Give back the space reserved past the last record (the next writer reserves it again).
    const uint64_t from = (m.write_off + 4095) & ~uint64_t{4095};
    if (m.active && from < m.capacity) {
      ::fallocate(m.active->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(from),
                  static_cast<off_t>(m.capacity - from));
    }
    A(m.state->writer_pid).store(0, std::memory_order_release);
    if (m.idx_fd >= 0) ::close(m.idx_fd);
    m.idx_fd = -1;
    m.active.reset();
    if (m.lock_fd >= 0) ::close(m.lock_fd);  // releases the flock
    m.lock_fd = -1;
  }
  if (m.dir_fd >= 0) ::close(m.dir_fd);
  m.dir_fd = -1;
  return result;
}

// ---- Tail -------------------------------------------------------------------------------------

struct Tail::Impl {
  std::shared_ptr<Log::Impl> log;  // the log's state outlives the Log handle while we live
  std::shared_ptr<Mapping> state_keep;  // the state stays mapped while the tail lives
  uint64_t pos = 0;
  std::shared_ptr<Mapping> seg;  // current segment, or null
  uint64_t off = 0;
  int64_t min_ts = INT64_MIN;
  Waiter waiter;  // spin budget; Close interrupts it
  // Readers that may write the state count themselves as sleepers; a reader without write
  // access observes (short slices, woken early whenever a counted reader is).
  EventCount Events() const {
    SharedState& s = *log->state;
    return log->state_writable ? EventCount::Counter(&s.wake, &s.sleepers) : EventCount::Observer(&s.wake);
  }
};

Tail::Tail(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tail::~Tail() = default;

Result<std::unique_ptr<Tail>> Log::TailFrom(uint64_t from_seq, const TailOptions& options) {
  auto impl = std::make_unique<weft::log::Tail::Impl>();
  impl->waiter.set_policy({.spin_ns = options.spin_ns, .adaptive = true, .liveness_check_ns = kSliceNs});
  impl->log = impl_;
  impl->state_keep = impl_->state_map;
  impl->pos = from_seq;
  return std::unique_ptr<weft::log::Tail>(new weft::log::Tail(std::move(impl)));
}

uint64_t Tail::position() const { return impl_->pos; }

void Tail::Close() {
  impl_->waiter.Interrupt(impl_->Events());
}

Result<Record> Tail::Next(Deadline deadline) {
  Impl& t = *impl_;
  Log::Impl& m = *t.log;
  for (;;) {
    if (t.waiter.interrupted()) return Status(Code::kClosed, "tail closed");
    if (t.pos < m.FirstSeq()) return m.OutOfRange(t.pos);
    if (t.pos < m.NextSeq()) {
      if (!t.seg) {
        Status st = m.Locate(t.pos, &t.seg, &t.off, &t.min_ts);
        if (!st.ok()) {
          t.seg.reset();
          if (t.pos < m.FirstSeq()) return m.OutOfRange(t.pos);
          return st;
        }
      }
      ScanStep st = ScanRecord(t.seg->bytes(), t.off, t.pos, t.min_ts);
      if (st.end == ScanEnd::kRecord) {
        Record r = Log::Impl::MakeRecord(t.seg, t.off, st.header);
        t.off = st.next_offset;
        t.min_ts = st.header.timestamp_ns;
        ++t.pos;
        return r;
      }
      if (st.end == ScanEnd::kEnd) {
        // This segment is full: the record is the first of the next one.
        auto next_map = m.SegmentMap(t.pos);
        if (!next_map.ok()) {
          if (t.pos < m.FirstSeq()) return m.OutOfRange(t.pos);
          return Log::Impl::Damaged(*t.seg, t.off, t.pos, st);
        }
        t.seg = *next_map;
        t.off = kRecordsStart;
        continue;
      }
      return Log::Impl::Damaged(*t.seg, t.off, t.pos, st);
    }
    // Caught up: wait for an append.
    const WaitReport r = t.waiter.Wait(t.Events(), deadline, [&] { return t.pos < m.NextSeq(); }, [] { return true; });
    if (r.end == WaitEnd::kReady || r.end == WaitEnd::kInterrupted) continue;  // the loop reports Closed
    // A miss allocates nothing (pollers see many).
    static const Status::Fixed kNone{Code::kWouldBlock, "no record yet"};
    static const Status::Fixed kLate{Code::kTimeout, "no record before the deadline"};
    return Status(deadline.is_now() ? kNone : kLate);
  }
}

}  // namespace weft::log
