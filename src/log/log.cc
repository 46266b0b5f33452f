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
#include "internal/appender.h"
#include "internal/group_commit.h"
#include "internal/segments.h"
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

constexpr int64_t kSliceNs = 20'000'000;  // sleeping readers re-check this often

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
  bool state_writable = true;  // false: a reader without write access; tails observe

  // The segments as readers see them (the writer keeps the list current): locks inside.
  internal::Segments segs;

  // Writer. Lock order: mu before the segments' lock; the group commit's lock before mu
  // (its snapshot); flusher_mu alone.
  Mutex mu;
  internal::Appender app WEFT_GUARDED_BY(mu);
  uint64_t since_sync WEFT_GUARDED_BY(mu) = 0;  // kEveryN
  bool closed WEFT_GUARDED_BY(mu) = false;

  // Durability: group commit (internal/group_commit.h); it takes `mu` briefly for a snapshot.
  internal::GroupCommit commit{{
      .appended = [this] { return NextSeq(); },
      .snapshot = [this] { return SyncSnapshot(); },
      .durable = [this](uint64_t seq) { A(state->durable_seq).store(seq, std::memory_order_release); },
  }};
  std::thread flusher;
  Mutex flusher_mu;
  CondVar flusher_cv;
  bool stop_flusher WEFT_GUARDED_BY(flusher_mu) = false;

  Impl(std::string path, const LogOptions& options)
      : dir(std::move(path)), opt(options), writer(!options.read_only), segs(dir, writer), app(opt, segs) {}
  ~Impl() {
    if (lock_fd >= 0) ::close(lock_fd);
    if (dir_fd >= 0) ::close(dir_fd);
  }

  std::string Path(const std::string& name) const { return segs.Path(name); }
  uint64_t FirstSeq() const { return A(state->first_seq).load(std::memory_order_acquire); }
  uint64_t NextSeq() const { return A(state->next_seq).load(std::memory_order_acquire); }

  Status OutOfRange(uint64_t seq) {
    const uint64_t first = FirstSeq(), next = NextSeq();
    if (seq < first) {
      return Status(Code::kOutOfRange, "record " + std::to_string(seq) +
                                           " was removed by retention; the first available is " + std::to_string(first));
    }
    return Status(Code::kOutOfRange, "record " + std::to_string(seq) + " is not written yet (next is " +
                                         std::to_string(next) + ")");
  }
  Status Locate(uint64_t seq, std::shared_ptr<Mapping>* map, uint64_t* offset, int64_t* min_ts) {
    return segs.Locate(seq, NextSeq(), map, offset, min_ts);
  }

  Status SyncTo(uint64_t target) WEFT_EXCLUDES(mu) { return commit.SyncTo(target); }
  internal::GroupCommit::Snapshot SyncSnapshot() WEFT_EXCLUDES(mu) {
    MutexLock g(mu);
    const std::shared_ptr<Mapping>& active = app.active();
    if (!active) return {app.next(), -1, "", nullptr};
    return {app.next(), active->fd, active->path, active};  // older segments were synced when they rolled
  }

  static Status OpenReader(Impl& m);
  static Status OpenWriter(Impl& m);
  Status OpenState();
  void Publish() WEFT_REQUIRES(mu) {
    A(state->next_seq).store(app.next(), std::memory_order_release);
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

void Log::Impl::FlusherLoop() {
  MutexLock lk(flusher_mu);
  while (!stop_flusher) {
    flusher_cv.WaitForNs(lk, std::max<int64_t>(opt.fsync_interval_ms, 1) * 1'000'000);
    if (stop_flusher) break;
    lk.Unlock();
    uint64_t target;
    {
      MutexLock g(mu);
      target = app.next();
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
Status Log::Impl::OpenReader(Impl& m) {
  struct stat st;
  if (::stat(m.Path("state").c_str(), &st) != 0) {
    return NotFound("no log at " + m.dir + " (no state file: open it once for writing)");
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
  return m.segs.Load();
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
  WEFT_RETURN_IF_ERROR(m.app.Recover(m.dir_fd, m.state));
  SharedState& s = *m.state;
  const uint64_t next = m.app.next();
  const std::vector<uint64_t> firsts = m.segs.List();
  const uint64_t first = firsts.empty() ? next : firsts.front();
  // The state is derived: rebuild it. Magic last, so a reader never takes a half-written one.
  const shm::ProcessIdentity me = shm::SelfIdentity();
  A(s.first_seq).store(first, std::memory_order_relaxed);
  A(s.next_seq).store(next, std::memory_order_relaxed);
  const uint64_t durable = m.opt.fsync != Fsync::kNever ? next : 0;
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
  return m.app.ApplyRetention();
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
  LogOptions opt = options;
  opt.segment_bytes = (options.segment_bytes + 7) & ~uint64_t{7};
  auto impl = std::make_shared<Impl>(path, opt);
  if (impl->writer && options.create) {
    if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) return ErrnoStatus(errno, "mkdir(" + path + ")");
  }
  impl->dir_fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (impl->dir_fd < 0) {
    if (errno == ENOENT) return NotFound("no log at " + path);
    return ErrnoStatus(errno, "open(" + path + ")");
  }
  WEFT_RETURN_IF_ERROR(impl->writer ? Impl::OpenWriter(*impl) : Impl::OpenReader(*impl));
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
    first = m.app.next();
    const int64_t ts = std::max(WallNs(), m.app.last_timestamp());  // a batch shares one timestamp
    for (const ByteView& p : payloads) {
      Status s = m.app.Write(p, flags, ts);
      if (!s.ok()) {
        if (m.app.next() != first) m.Publish();  // what was written stays written
        return s;
      }
    }
    end = m.app.next();
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
    target = m.app.next();
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
  if (st.end != ScanEnd::kRecord) return Segments::Damaged(*map, off, seq, st);
  return Segments::MakeRecord(map, off, st.header);
}

Result<uint64_t> Log::SeqAtTime(int64_t time_ns) {
  Impl& m = *impl_;
  auto list = ListSegments(m.dir);
  if (!list.ok()) return list.status();
  // The last segment whose first record is not after the time, then its index, then a scan.
  uint64_t seg = UINT64_MAX;
  for (uint64_t first : *list) {
    auto map = m.segs.Map(first);
    if (!map.ok()) continue;
    ScanStep st = ScanRecord((*map)->bytes(), kRecordsStart, first, INT64_MIN);
    if (st.end != ScanEnd::kRecord) continue;
    if (st.header.timestamp_ns >= time_ns) break;
    seg = first;
  }
  if (seg == UINT64_MAX) return std::max(m.FirstSeq(), list->empty() ? m.NextSeq() : list->front());
  auto map = m.segs.Map(seg);
  if (!map.ok()) return map.status();
  std::vector<IndexEntry> idx = m.segs.Index(seg, false);
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
  return m.app.ApplyRetention();
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
        if (st.end == ScanEnd::kTorn && !(last && seq >= limit)) return Segments::Damaged(**map, off, seq, st);
        if (last && seq < limit) return Segments::Damaged(**map, off, seq, st);
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
    s.cut_at_offset = m.app.cut_at();
    s.cut_valid_records = m.app.cut_records();
    s.cut_reason = m.app.cut_reason();
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
      next = m.app.next();
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
    m.app.Close();  // gives back the space reserved past the last record
    A(m.state->writer_pid).store(0, std::memory_order_release);
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
        Record r = Segments::MakeRecord(t.seg, t.off, st.header);
        t.off = st.next_offset;
        t.min_ts = st.header.timestamp_ns;
        ++t.pos;
        return r;
      }
      if (st.end == ScanEnd::kEnd) {
        // This segment is full: the record is the first of the next one.
        auto next_map = m.segs.Map(t.pos);
        if (!next_map.ok()) {
          if (t.pos < m.FirstSeq()) return m.OutOfRange(t.pos);
          return Segments::Damaged(*t.seg, t.off, t.pos, st);
        }
        t.seg = *next_map;
        t.off = kRecordsStart;
        continue;
      }
      return Segments::Damaged(*t.seg, t.off, t.pos, st);
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
