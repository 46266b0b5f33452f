// log:<directory>: a durable bus. Each shard is a Weft log (<dir>/shard.<i>); an event is one
// record, its key first (the record's flags hold the key's length). Groups, membership and
// wake-ups live in a control segment (a bus layout whose rings are unused, named after the
// bus's id) so that members in any process share shards as on shm:; committed positions are
// written through to <dir>/group.<name> (internal/commits.h), so that after every process and
// the control segment are gone, a group resumes where it committed.
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "internal/backends.h"
#include "internal/commits.h"
#include "internal/groups.h"
#include "internal/layout.h"
#include "internal/member.h"
#include "internal/segment.h"
#include "weft/bus/bus.h"
#include "weft/core/mutex.h"
#include "weft/core/pair.h"
#include "weft/log/log.h"
#include "weft/shm/segment.h"

namespace weft::bus::internal {

namespace {

constexpr std::string_view kLog = kLogScheme;

// What a bus handle and its consumers share; consumers keep it alive.
struct LogCore {
  BusOptions options;
  std::string dir;
  uint64_t id = 0;
  shm::Segment control;
  View view;
  std::vector<std::unique_ptr<log::Log>> readers;  // read-only, one per shard (tails, next_seq)

  // Writers, opened at the first ingest to a shard: the log's lock makes this process its one
  // writer until the bus handle closes.
  Mutex writers_mu;
  std::vector<std::unique_ptr<log::Log>> writer_logs WEFT_GUARDED_BY(writers_mu);
  std::vector<std::atomic<log::Log*>> writers;  // published after open (acquire to use)

  Mutex files_mu;
  std::map<std::string, std::shared_ptr<CommitFile>, std::less<>> files WEFT_GUARDED_BY(files_mu);  // by group name

  // A producer slot in the control segment while this handle writes shards, so that `weft gc`
  // sees the bus in use.
  uint32_t producer_slot WEFT_GUARDED_BY(writers_mu) = UINT32_MAX;
  uint32_t producer_epoch WEFT_GUARDED_BY(writers_mu) = 0;

  explicit LogCore(uint32_t shards) : writer_logs(shards), writers(shards) {}
  ~LogCore() {
    MutexLock g(writers_mu);
    if (producer_slot != UINT32_MAX) shm::ReleaseSlot(view.producer(producer_slot).slot, producer_epoch, shm::kSlotEmpty);
  }

  // Claims a producer slot once the control segment is there and this handle writes a shard.
  void ClaimProducerSlot() WEFT_REQUIRES(writers_mu) {
    if (producer_slot != UINT32_MAX || view.base == nullptr) return;
    for (uint32_t i = 0; i < kMaxProducers; ++i) {
      Result<uint32_t> epoch = shm::BeginClaim(view.producer(i).slot, "bus producer slot");
      if (!epoch.ok()) continue;
      shm::FinishClaim(view.producer(i).slot, *epoch);
      producer_slot = i;
      producer_epoch = *epoch;
      return;
    }
  }

  std::string ShardDir(uint32_t s) const { return dir + "/shard." + std::to_string(s); }

  Status Intact() const {
    if (!control.damaged()) return Status::Ok();
    return Status(Code::kCorrupt, "bus '" + options.url + "': another process shrank its control segment");
  }

  Result<log::Log*> Writer(uint32_t s) {
    log::Log* w = writers[s].load(std::memory_order_acquire);  // pairs with the release below
    if (w != nullptr) return w;
    MutexLock g(writers_mu);
    if (writer_logs[s] == nullptr) {
      log::LogOptions lo = options.log;
      lo.read_only = false;
      lo.create = true;
      auto opened = log::Log::Open(ShardDir(s), lo);
      if (!opened.ok()) {
        return Status(opened.status().code(), "bus '" + options.url + "' shard " + std::to_string(s) + ": " +
                                                  opened.status().message());
      }
      writer_logs[s] = std::move(opened).value();
      writers[s].store(writer_logs[s].get(), std::memory_order_release);
      ClaimProducerSlot();
    }
    return writer_logs[s].get();
  }

  // Group `name`'s commit file (opened, or created with each shard at start(s), once per handle).
  Result<std::shared_ptr<CommitFile>> Commits(std::string_view name, const std::function<uint64_t(uint32_t)>& start) {
    MutexLock lock(files_mu);
    auto it = files.find(name);
    if (it != files.end()) return it->second;
    auto f = CommitFile::Open(dir, name, id, view.geo.shards, start, options.log.fsync == log::Fsync::kAlways);
    if (!f.ok()) return f.status();
    std::shared_ptr<CommitFile> shared(std::move(f).value());
    files.emplace(std::string(name), shared);
    return shared;
  }
};

// A member's reads of the shard logs: a tail per shard it reads, from the committed position.
class LogReader final : public ShardReader {
 public:
  LogReader(std::shared_ptr<LogCore> core, uint32_t g, std::shared_ptr<CommitFile> file)
      : core_(std::move(core)), g_(g), file_(std::move(file)), tails_(core_->view.geo.shards) {}

  Status Intact() const override { return core_->Intact(); }
  bool Readable(uint32_t s, uint64_t at) override { return core_->readers[s]->next_seq() > at; }

  Result<uint64_t> Read(uint32_t s, uint64_t from, size_t limit, std::vector<Event>* out) override {
    std::unique_ptr<log::Tail>& tail = tails_[s];
    if (tail == nullptr || tail->position() != from) {
      auto t = core_->readers[s]->TailFrom(from, {.spin_ns = 0});
      if (!t.ok()) return t.status();
      tail = std::move(t).value();
    }
    GroupShard& c = core_->view.cursor(g_, s);
    for (size_t n = 0; n < limit;) {
      Result<log::Record> r = tail->Next(Deadline::Now());
      if (!r.ok()) {
        if (r.status().code() == Code::kWouldBlock) break;
        if (r.status().code() == Code::kOutOfRange && tail->position() < core_->readers[s]->first_seq()) {
          // Retention removed events this group had not read: count them, go on from the
          // oldest left.
          const uint64_t first = core_->readers[s]->first_seq();
          const uint64_t lost = first - tail->position();
          A(c.dropped).fetch_add(lost, std::memory_order_relaxed);
          A(core_->view.shard(s).dropped_oldest).fetch_add(lost, std::memory_order_relaxed);
          auto t = core_->readers[s]->TailFrom(first, {.spin_ns = 0});
          if (!t.ok()) return t.status();
          tail = std::move(t).value();
          continue;
        }
        return Status(r.status().code(), "bus '" + core_->options.url + "' shard " + std::to_string(s) + ": " +
                                             r.status().message());
      }
      const uint32_t key = r->flags;
      if (key > r->payload.size()) {
        return Status(Code::kCorrupt, "bus '" + core_->options.url + "' shard " + std::to_string(s) + " record " +
                                          std::to_string(r->seq) + ": a key of " + std::to_string(key) +
                                          " bytes in a record of " + std::to_string(r->payload.size()));
      }
      Event e;
      e.position = Position{s, r->seq};
      e.key = r->payload.first(key);
      e.data = r->payload.subspan(key);
      e.timestamp_ns = core_->options.timestamps ? r->timestamp_ns : 0;
      out->push_back(e);
      if (held_.empty() || held_.back() != r->mapping) held_.push_back(r->mapping);
      ++n;
    }
    const uint64_t to = tail->position();
    A(c.cursors.first).store(to, std::memory_order_release);  // for stats; only the owner writes it
    return to;
  }

  Status Commit(uint32_t s, uint64_t to) override {
    WEFT_RETURN_IF_ERROR(file_->Write(s, to));
    A(core_->view.cursor(g_, s).cursors.second).store(to, std::memory_order_release);
    return Status::Ok();
  }
  void Forget(uint32_t s) override { tails_[s].reset(); }
  void EndBatch() override { held_.clear(); }

 private:
  std::shared_ptr<LogCore> core_;
  uint32_t g_;
  std::shared_ptr<CommitFile> file_;
  std::vector<std::unique_ptr<log::Tail>> tails_;
  std::vector<std::shared_ptr<const void>> held_;  // the segments the last batch's events are in
};

class LogBus final : public Bus {
 public:
  explicit LogBus(std::shared_ptr<LogCore> core) : core_(std::move(core)) {}

  Result<Position> Ingest(ByteView data, Deadline) override {
    const uint32_t s = ThreadShard(core_->view.geo.shards);
    WEFT_RETURN_IF_ERROR(CheckSize(0, data.size()));
    return Append(s, data, 0);
  }

  Result<Position> IngestKeyed(ByteView key, ByteView data, Deadline) override {
    if (key.size() > UINT16_MAX) return InvalidArgument("a key has at most 65535 bytes");
    WEFT_RETURN_IF_ERROR(CheckSize(key.size(), data.size()));
    // One record holds the key and then the data: one copy to put them together.
    thread_local std::vector<uint8_t> joined;
    joined.assign(key.begin(), key.end());
    joined.insert(joined.end(), data.begin(), data.end());
    return Append(ShardOf(key), ByteView(joined.data(), joined.size()), static_cast<uint32_t>(key.size()));
  }

  Result<size_t> IngestBatch(std::span<const ByteView> events, Deadline) override {
    if (events.empty()) return size_t{0};
    for (const ByteView& e : events) WEFT_RETURN_IF_ERROR(CheckSize(0, e.size()));
    WEFT_RETURN_IF_ERROR(core_->Intact());
    const uint32_t s = ThreadShard(core_->view.geo.shards);
    Result<log::Log*> w = core_->Writer(s);
    if (!w.ok()) return w.status();
    Result<std::optional<uint64_t>> first = (*w)->AppendBatch(events, 0);
    if (!first.ok()) return first.status();
    WakeGroups(core_->view);
    return events.size();
  }

  Result<std::unique_ptr<Consumer>> Subscribe(std::string_view group, const ConsumerOptions& options) override {
    WEFT_RETURN_IF_ERROR(ValidateGroupName(group));
    WEFT_RETURN_IF_ERROR(core_->Intact());
    return Join(group, options.start, &options);
  }

  BusStats Stats() const override {
    const View& v = core_->view;
    BusStats out;
    out.shards = v.geo.shards;
    for (uint32_t s = 0; s < v.geo.shards; ++s) {
      log::Log& l = *core_->readers[s];
      ShardStats ss;
      ss.tail = l.next_seq();
      ss.oldest = l.first_seq();
      ss.depth_bytes = ss.tail - ss.oldest;
      ss.ingested = ss.tail;
      ss.dropped_oldest = A(v.shard(s).dropped_oldest).load(std::memory_order_relaxed);
      out.ingested += ss.ingested;
      out.dropped_oldest += ss.dropped_oldest;
      out.per_shard.push_back(ss);
    }
    out.groups = DescribeGroups(v, out.per_shard);
    out.producers = Holders([&](uint32_t i) -> shm::Slot& { return v.producer(i).slot; }, kMaxProducers);
    return out;
  }

  uint32_t shards() const override { return core_->view.geo.shards; }
  const BusOptions& options() const override { return core_->options; }

  // Finds or creates group `name` in the control segment, its durable positions first (a new
  // group's file gets `start`); joins it as a member when `member` is given.
  Result<std::unique_ptr<Consumer>> Join(std::string_view name, Start start, const ConsumerOptions* member) {
    LogCore& c = *core_;
    const uint32_t shards = c.view.geo.shards;
    // The file first: the positions a group had are on disk, and a group that never existed
    // starts at the oldest record held or after the newest, by `start`.
    auto placed = [&](uint32_t s) {
      return start == Start::kLatest ? c.readers[s]->next_seq() : c.readers[s]->first_seq();
    };
    auto file = c.Commits(name, placed);
    if (!file.ok()) return file.status();
    std::vector<uint64_t> at(shards);
    for (uint32_t s = 0; s < shards; ++s) {
      Result<uint64_t> p = (*file)->Read(s);
      if (!p.ok()) return p.status();
      at[s] = *p;
    }
    auto g = FindOrCreateGroup(c.view, name, start, [&](uint32_t s) { return at[s]; });
    if (!g.ok()) return g.status();
    if (member == nullptr) return std::unique_ptr<Consumer>();
    return JoinGroup(core_, c.view, *g, name, *member, std::make_unique<LogReader>(core_, *g, *file));
  }

 private:
  Status CheckSize(size_t key, size_t data) const { return CheckEventSize(key, data, core_->options.max_event); }

  Result<Position> Append(uint32_t s, ByteView payload, uint32_t key_length) {
    WEFT_RETURN_IF_ERROR(core_->Intact());
    Result<log::Log*> w = core_->Writer(s);
    if (!w.ok()) return w.status();
    Result<uint64_t> seq = (*w)->Append(payload, key_length);
    if (!seq.ok()) return seq.status();
    WakeGroups(core_->view);
    return Position{s, *seq};
  }

  std::shared_ptr<LogCore> core_;
};

Result<std::string> ReadSmallFile(const std::string& path, size_t most) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return ErrnoStatus(errno, "open " + path);
  std::string out(most + 1, '\0');
  size_t got = 0;
  for (;;) {
    const ssize_t r = ::read(fd, out.data() + got, out.size() - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += static_cast<size_t>(r);
    if (got == out.size()) break;
  }
  ::close(fd);
  out.resize(got);
  return out;
}

// The bus's description: read, or written by the first opener (with o->create).
Result<LogBusMeta> OpenMeta(const std::string& dir, BusOptions* o) {
  const std::string path = dir + "/bus.meta";
  for (int attempt = 0; attempt < 2; ++attempt) {
    Result<std::string> bytes = ReadSmallFile(path, sizeof(LogBusMeta));
    if (bytes.ok()) {
      Result<LogBusMeta> m = ParseMeta(AsBytes(*bytes));
      if (!m.ok()) return Status(m.status().code(), path + ": " + m.status().message());
      return m;
    }
    if (bytes.status().code() != Code::kNotFound) return bytes.status();
    if (!o->create) return Status(Code::kNotFound, "no bus at '" + o->url + "' (" + path + " is absent)");
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) return ErrnoStatus(ec.value(), "create directory " + dir);
    const LogBusMeta m = MakeMeta(o->shards, o->max_event, o->timestamps ? uint32_t{kBusTimestamps} : 0u, RandomBusId());
    Result<bool> made = PublishFile(path, ByteView(reinterpret_cast<const uint8_t*>(&m), sizeof(m)));
    if (!made.ok()) return made.status();
    if (*made) return m;
    // Another process made it first: read theirs.
  }
  return Status(Code::kBusy, "bus '" + o->url + "': bus.meta keeps changing");
}

Status CheckLogOptions(BusOptions* o) {
  const std::string dir = o->url.substr(kLog.size());
  if (dir.empty()) return InvalidArgument("bus url 'log:': name a directory (log:/var/lib/app/bus)");
  if (o->backpressure != Overflow::kDropOldest) {
    return InvalidArgument(std::string("bus '") + o->url + "': a log: bus holds events until retention removes them " +
                           "and is never full, so backpressure must be drop_oldest (a group that falls behind " +
                           "retention loses what it removed, counted), not " + OverflowName(o->backpressure));
  }
  const uint64_t seg = o->log.segment_bytes;
  const uint64_t most = std::min<uint64_t>(seg / 4, UINT32_MAX / 2);
  if (o->max_event == 0) o->max_event = static_cast<uint32_t>(most);
  if (o->max_event == 0 || o->max_event > most) {
    return InvalidArgument("max_event " + std::to_string(o->max_event) + " does not fit a quarter of a log segment of " +
                           std::to_string(seg) + " bytes");
  }
  return Status::Ok();
}

std::string ControlName(uint64_t id) {
  char name[40];
  std::snprintf(name, sizeof(name), "lbus.%016" PRIx64, id);
  return name;
}

}  // namespace

Status UnlinkLogBus(std::string_view url) {
  const std::string dir(url.substr(kLog.size()));
  Result<std::string> bytes = ReadSmallFile(dir + "/bus.meta", sizeof(LogBusMeta));
  if (!bytes.ok()) return bytes.status();
  Result<LogBusMeta> m = ParseMeta(AsBytes(*bytes));
  if (!m.ok()) return m.status();
  return shm::Segment::Unlink(ControlName(m->id));
}

Result<std::unique_ptr<Bus>> OpenLogBus(BusOptions o) {
  WEFT_RETURN_IF_ERROR(CheckLogOptions(&o));
  const std::string dir = o.url.substr(kLog.size());
  Result<LogBusMeta> meta = OpenMeta(dir, &o);
  if (!meta.ok()) return meta.status();
  const bool timestamps = (meta->flags & kBusTimestamps) != 0;
  if (o.must_match && (meta->shards != o.shards || meta->max_event != o.max_event || timestamps != o.timestamps)) {
    return InvalidArgument("bus '" + o.url + "' exists with " + std::to_string(meta->shards) + " shards, max_event " +
                           std::to_string(meta->max_event) + ": not what was asked");
  }
  o.shards = meta->shards;
  o.max_event = meta->max_event;
  o.timestamps = timestamps;

  auto core = std::make_shared<LogCore>(o.shards);
  core->dir = dir;
  core->id = meta->id;
  core->options = o;
  for (uint32_t s = 0; s < o.shards; ++s) {
    log::LogOptions ro = o.log;
    ro.read_only = true;
    auto r = log::Log::Open(core->ShardDir(s), ro);
    for (int attempt = 0; attempt < 200 && !r.ok() && r.status().code() == Code::kNotFound; ++attempt) {
      // Not made yet: a writer's open creates it, and this one lets it go at once (a process
      // that only reads must not keep other processes from writing the shard). Busy: another
      // process is making it; it is there once that open returns.
      log::LogOptions wo = o.log;
      wo.read_only = false;
      wo.create = true;
      auto made = log::Log::Open(core->ShardDir(s), wo);
      if (made.ok()) {
        (*made)->Close().IgnoreError();
      } else if (made.status().code() == Code::kBusy) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      } else {
        return Status(made.status().code(), "bus '" + o.url + "' shard " + std::to_string(s) + ": " +
                                                made.status().message());
      }
      r = log::Log::Open(core->ShardDir(s), ro);
    }
    if (!r.ok()) return Status(r.status().code(), "bus '" + o.url + "' shard " + std::to_string(s) + ": " + r.status().message());
    core->readers.push_back(std::move(r).value());
  }

  // The control segment: the groups' membership and wake-ups. Its rings are unused (the
  // smallest there are); its header's max_event is the ring's, not the bus's.
  BusOptions control = o;
  control.shard_bytes = kMinShardBytes;
  control.max_event = kMinShardBytes / 4 - sizeof(RecordHeader) - 8;
  control.must_match = false;
  control.create = true;
  const std::string name = ControlName(meta->id);
  WEFT_RETURN_IF_ERROR(OpenBusSegment(name, kBusLogControl, &control, &core->control, &core->view));
  if (control.shards != o.shards) return Status(Code::kCorrupt, "control segment " + name + " disagrees with bus.meta");
  core->view.geo.max_event = o.max_event;

  auto bus = std::make_unique<LogBus>(core);
  // Groups that have files (committed positions) and those asked for exist from the start.
  std::vector<std::string> groups = o.groups;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d)) {
      const std::string n = e->d_name;
      if (n.rfind("group.", 0) == 0 && n.find(".tmp.") == std::string::npos) groups.push_back(n.substr(6));
    }
    ::closedir(d);
  }
  for (const std::string& g : groups) {
    if (!ValidateGroupName(g).ok()) continue;  // not a name this bus would have written
    auto made = bus->Join(g, Start::kOldest, nullptr);
    if (!made.ok()) return made.status();
  }
  return std::unique_ptr<Bus>(std::move(bus));
}

}  // namespace weft::bus::internal
