// Stores for graph state on local files (weft/graph/store.h, docs/formats/graph-store.md).
//
// A FileStore is an ordered map in memory over a journal on disk: a Weft log in
// <root>/gen-<N>, one record per atomic batch of writes, replayed at open (the log cuts a torn
// last record, so a write is there whole or not at all). When the journal has grown past its
// live keys it is rewritten into generation N+1, which CURRENT then names (replaced by
// rename); generations CURRENT does not name are leftovers and are removed at open. A lock
// file keeps one writing process per store.
#include "weft/graph/store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>

#include "internal/record.h"
#include "internal/store_format.h"
#include "weft/core/mutex.h"
#include "weft/log/log.h"

namespace weft::graph {

namespace fs = std::filesystem;

// ---- the journal's records --------------------------------------------------------------

namespace internal {
namespace {

void Put32(std::string& out, uint32_t v) { out.append(reinterpret_cast<const char*>(&v), 4); }
uint32_t Get32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

}  // namespace

std::string EncodeStoreBatch(const std::vector<StoreOp>& ops) {
  std::string out;
  Put32(out, kStoreBatchMagic);
  Put32(out, static_cast<uint32_t>(ops.size()));
  for (const StoreOp& op : ops) {
    out.push_back(static_cast<char>(op.kind));
    Put32(out, static_cast<uint32_t>(op.key.size()));
    out.append(op.key);
    if (op.kind != kStoreClear) {
      Put32(out, static_cast<uint32_t>(op.value.size()));
      out.append(op.value);
    }
  }
  return out;
}

Result<std::vector<StoreOp>> DecodeStoreBatch(ByteView b) {
  if (b.size() < 8) return Corrupt("a store batch is at least 8 bytes, not " + std::to_string(b.size()));
  if (Get32(b.data()) != kStoreBatchMagic) return Corrupt("not a store batch (magic)");
  const uint32_t count = Get32(b.data() + 4);
  if (count > (b.size() - 8) / 5) return Corrupt("a store batch of " + std::to_string(count) + " writes cannot fit its " + std::to_string(b.size()) + " bytes");
  std::vector<StoreOp> ops;
  ops.reserve(count);
  size_t at = 8;
  auto take = [&](std::string_view& out) -> bool {
    if (b.size() - at < 4) return false;
    const uint32_t n = Get32(b.data() + at);
    at += 4;
    if (b.size() - at < n) return false;
    out = std::string_view(reinterpret_cast<const char*>(b.data() + at), n);
    at += n;
    return true;
  };
  for (uint32_t i = 0; i < count; ++i) {
    if (at >= b.size()) return Corrupt("store batch cut short at write " + std::to_string(i));
    StoreOp op;
    op.kind = b[at++];
    if (op.kind != kStoreSet && op.kind != kStoreClear && op.kind != kStoreClearRange) {
      return Corrupt("store batch write " + std::to_string(i) + " has unknown kind " + std::to_string(op.kind));
    }
    if (!take(op.key) || (op.kind != kStoreClear && !take(op.value))) {
      return Corrupt("store batch write " + std::to_string(i) + " runs past the record");
    }
    ops.push_back(op);
  }
  if (at != b.size()) return Corrupt("store batch has " + std::to_string(b.size() - at) + " bytes after its writes");
  return ops;
}

std::string EncodeStoreCurrent(uint64_t generation) { return "weft-store 1 gen " + std::to_string(generation) + "\n"; }

Result<uint64_t> DecodeStoreCurrent(std::string_view text) {
  constexpr std::string_view kHead = "weft-store 1 gen ";
  if (text.substr(0, kHead.size()) != kHead || text.size() < kHead.size() + 2 || text.back() != '\n' ||
      text.size() > kHead.size() + 21) {
    return Corrupt("CURRENT is not a weft store's");
  }
  const std::string_view digits = text.substr(kHead.size(), text.size() - kHead.size() - 1);
  if (digits.size() > 1 && digits[0] == '0') return Corrupt("CURRENT's generation is not a number");
  uint64_t g = 0;
  for (char c : digits) {
    if (c < '0' || c > '9' || g > (UINT64_MAX - 9) / 10) return Corrupt("CURRENT's generation is not a number");
    g = g * 10 + static_cast<uint64_t>(c - '0');
  }
  return g;
}

}  // namespace internal

// ---- FileStore --------------------------------------------------------------------------

namespace {

// Writes `bytes` to `path` by a synced temporary file renamed over it, then syncs the directory.
Status ReplaceFile(const std::string& path, std::string_view bytes) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoStatus(errno, "create " + tmp);
  const bool ok = ::write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size()) && ::fsync(fd) == 0;
  const int err = errno;
  ::close(fd);
  if (!ok) return ErrnoStatus(err, "write " + tmp);
  if (::rename(tmp.c_str(), path.c_str()) != 0) return ErrnoStatus(errno, "rename " + tmp);
  const std::string dir = fs::path(path).parent_path().string();
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return Status::Ok();
}

Result<std::string> ReadSmallFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, "open " + path);
  char buf[128];
  const ssize_t n = ::read(fd, buf, sizeof(buf));
  ::close(fd);
  if (n < 0) return ErrnoStatus(errno, "read " + path);
  return std::string(buf, static_cast<size_t>(n));
}

constexpr size_t kChunk = 1 << 20;  // a compacted journal's records hold about this much

}  // namespace

struct FileStore::Impl {
  std::string root;
  FileStoreOptions options;
  int lock_fd = -1;
  mutable Mutex mu;
  std::map<std::string, std::string, std::less<>> map WEFT_GUARDED_BY(mu);
  uint64_t live_bytes WEFT_GUARDED_BY(mu) = 0;
  uint64_t journal_bytes WEFT_GUARDED_BY(mu) = 0;
  uint64_t generation WEFT_GUARDED_BY(mu) = 0;
  std::unique_ptr<log::Log> journal WEFT_GUARDED_BY(mu);

  ~Impl() {
    {
      MutexLock l(mu);
      if (journal != nullptr) journal->Close().IgnoreError();
    }
    if (lock_fd >= 0) ::close(lock_fd);
  }

  std::string GenDir(uint64_t g) const { return root + "/gen-" + std::to_string(g); }

  log::LogOptions JournalOptions() const {
    log::LogOptions o;
    o.fsync = options.fsync ? log::Fsync::kAlways : log::Fsync::kNever;
    return o;
  }

  using Iter = std::map<std::string, std::string, std::less<>>::iterator;
  Iter Erase(Iter it) WEFT_REQUIRES(mu) {
    live_bytes -= it->first.size() + it->second.size();
    return map.erase(it);
  }

  void Apply(const internal::StoreOp& op) WEFT_REQUIRES(mu) {
    switch (op.kind) {
      case internal::kStoreSet: {
        auto it = map.find(op.key);
        if (it != map.end()) Erase(it);
        map.emplace(std::string(op.key), std::string(op.value));
        live_bytes += op.key.size() + op.value.size();
        break;
      }
      case internal::kStoreClear: {
        auto it = map.find(op.key);
        if (it != map.end()) Erase(it);
        break;
      }
      default: {  // [key, value); an empty end: to the end of the store
        if (!op.value.empty() && op.value <= op.key) break;
        auto it = map.lower_bound(op.key);
        while (it != map.end() && (op.value.empty() || it->first < op.value)) it = Erase(it);
      }
    }
  }

  Status Write(const std::vector<internal::StoreOp>& ops) WEFT_EXCLUDES(mu) {
    if (ops.empty()) return Status::Ok();
    const std::string rec = internal::EncodeStoreBatch(ops);
    MutexLock l(mu);
    if (journal == nullptr) return Status(Code::kClosed, "store " + root + " is closed");
    auto seq = journal->Append(AsBytes(rec));
    if (!seq.ok()) return Status(seq.status().code(), "store " + root + ": " + seq.status().message());
    for (const internal::StoreOp& op : ops) Apply(op);
    journal_bytes += rec.size() + 32;
    if (journal_bytes > options.compact_above_bytes && journal_bytes > 2 * live_bytes) {
      CompactLocked().IgnoreError();  // the write is made; a failed rewrite leaves the old journal
    }
    return Status::Ok();
  }

  Status CompactLocked() WEFT_REQUIRES(mu) {
    const uint64_t next = generation + 1;
    const std::string dir = GenDir(next);
    std::error_code ec;
    fs::remove_all(dir, ec);
    log::LogOptions o = JournalOptions();
    o.fsync = log::Fsync::kNever;  // one sync at the end
    auto fresh = log::Log::Open(dir, o);
    if (!fresh.ok()) return fresh.status();
    std::vector<internal::StoreOp> chunk;
    size_t chunk_bytes = 0;
    uint64_t written = 0;
    auto flush = [&]() -> Status {
      if (chunk.empty()) return Status::Ok();
      const std::string rec = internal::EncodeStoreBatch(chunk);
      auto seq = (*fresh)->Append(AsBytes(rec));
      if (!seq.ok()) return seq.status();
      written += rec.size() + 32;
      chunk.clear();
      chunk_bytes = 0;
      return Status::Ok();
    };
    for (const auto& [k, v] : map) {
      chunk.push_back({internal::kStoreSet, k, v});
      chunk_bytes += k.size() + v.size() + 9;
      if (chunk_bytes >= kChunk) WEFT_RETURN_IF_ERROR(flush());
    }
    WEFT_RETURN_IF_ERROR(flush());
    WEFT_RETURN_IF_ERROR((*fresh)->Sync());
    WEFT_RETURN_IF_ERROR(ReplaceFile(root + "/CURRENT", internal::EncodeStoreCurrent(next)));
    journal->Close().IgnoreError();
    fs::remove_all(GenDir(generation), ec);
    // The new generation is reopened with the store's own sync policy.
    (*fresh)->Close().IgnoreError();
    auto reopened = log::Log::Open(dir, JournalOptions());
    if (!reopened.ok()) {
      journal.reset();
      return reopened.status();
    }
    journal = std::move(*reopened);
    generation = next;
    journal_bytes = written;
    return Status::Ok();
  }

  Status Load() WEFT_EXCLUDES(mu) {
    MutexLock l(mu);
    auto tail = journal->TailFrom(journal->first_seq());
    if (!tail.ok()) return tail.status();
    for (;;) {
      auto rec = (*tail)->Next(Deadline::Now());
      if (!rec.ok()) {
        if (rec.status().code() == Code::kWouldBlock || rec.status().code() == Code::kTimeout) return Status::Ok();
        return Status(rec.status().code(), "store " + root + ": " + rec.status().message());
      }
      auto ops = internal::DecodeStoreBatch(rec->payload);
      if (!ops.ok()) {
        return Corrupt("store " + root + ": journal record " + std::to_string(rec->seq) + ": " + ops.status().message());
      }
      for (const internal::StoreOp& op : *ops) Apply(op);
      journal_bytes += rec->payload.size() + 32;
    }
  }
};

FileStore::FileStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
FileStore::~FileStore() = default;

Result<std::shared_ptr<FileStore>> FileStore::Open(const std::string& root, FileStoreOptions options) {
  std::error_code ec;
  fs::create_directories(root, ec);
  if (ec) return Status(Code::kIoError, "create store directory " + root + ": " + ec.message());
  auto impl = std::make_unique<Impl>();
  impl->root = root;
  impl->options = options;
  const std::string lock_path = root + "/LOCK";
  impl->lock_fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (impl->lock_fd < 0) return ErrnoStatus(errno, "open " + lock_path);
  if (::flock(impl->lock_fd, LOCK_EX | LOCK_NB) != 0) {
    char buf[32] = {};
    const ssize_t n = ::pread(impl->lock_fd, buf, sizeof(buf) - 1, 0);
    std::string holder = n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string("?");
    holder.erase(holder.find_last_not_of(" \n") + 1);
    return Status(Code::kBusy, "store " + root + " is open by pid " + holder);
  }
  char pid[17];
  std::snprintf(pid, sizeof(pid), "%-15d\n", static_cast<int>(::getpid()));
  if (::pwrite(impl->lock_fd, pid, 16, 0) != 16) return ErrnoStatus(errno, "write " + lock_path);

  uint64_t gen = 0;
  const std::string current = root + "/CURRENT";
  if (::access(current.c_str(), F_OK) == 0) {
    auto text = ReadSmallFile(current);
    if (!text.ok()) return text.status();
    auto g = internal::DecodeStoreCurrent(*text);
    if (!g.ok()) return Corrupt("store " + root + ": " + g.status().message());
    gen = *g;
  } else {
    WEFT_RETURN_IF_ERROR(ReplaceFile(current, internal::EncodeStoreCurrent(0)));
  }
  // Generations CURRENT does not name: a compaction that did not finish, or one that did.
  for (const auto& e : fs::directory_iterator(root, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("gen-", 0) == 0 && name != "gen-" + std::to_string(gen)) fs::remove_all(e.path(), ec);
  }
  {
    const std::string dir = impl->GenDir(gen);
    if (gen != 0 && !fs::exists(dir)) return Corrupt("store " + root + ": CURRENT names generation " + std::to_string(gen) + ", which is missing");
    auto journal = log::Log::Open(dir, impl->JournalOptions());
    if (!journal.ok()) return Status(journal.status().code(), "store " + root + ": " + journal.status().message());
    MutexLock l(impl->mu);
    impl->journal = std::move(*journal);
    impl->generation = gen;
  }
  WEFT_RETURN_IF_ERROR(impl->Load());
  return std::shared_ptr<FileStore>(new FileStore(std::move(impl)));
}

Keyspace FileStore::Prefix(std::string_view prefix) { return Keyspace(shared_from_this(), std::string(prefix)); }

Status FileStore::Compact() {
  MutexLock l(impl_->mu);
  if (impl_->journal == nullptr) return Status(Code::kClosed, "store " + impl_->root + " is closed");
  return impl_->CompactLocked();
}

FileStoreStats FileStore::stats() const {
  MutexLock l(impl_->mu);
  return {impl_->map.size(), impl_->live_bytes, impl_->journal_bytes, impl_->generation};
}

const std::string& FileStore::root() const { return impl_->root; }

// ---- WriteBatch and Keyspace ------------------------------------------------------------

void WriteBatch::Set(std::string_view key, std::string_view value) {
  ops_.push_back({internal::kStoreSet, std::string(key), std::string(value)});
}
void WriteBatch::Clear(std::string_view key) { ops_.push_back({internal::kStoreClear, std::string(key), {}}); }
void WriteBatch::ClearRange(std::string_view begin, std::string_view end) {
  ops_.push_back({internal::kStoreClearRange, std::string(begin), std::string(end)});
}

namespace {

// The first key after every key that starts with `prefix` ("" if there is none: all of them).
std::string PrefixEnd(std::string prefix) {
  while (!prefix.empty()) {
    if (static_cast<unsigned char>(prefix.back()) != 0xff) {
      prefix.back() = static_cast<char>(static_cast<unsigned char>(prefix.back()) + 1);
      return prefix;
    }
    prefix.pop_back();
  }
  return prefix;
}

}  // namespace

Result<std::optional<std::string>> Keyspace::Get(std::string_view key) const {
  const std::string k = prefix_ + std::string(key);
  FileStore::Impl& s = *store_->impl_;
  MutexLock l(s.mu);
  auto it = s.map.find(k);
  if (it == s.map.end()) return std::optional<std::string>();
  return std::optional<std::string>(it->second);
}

Status Keyspace::Set(std::string_view key, std::string_view value) const {
  WriteBatch b;
  b.Set(key, value);
  return Commit(b);
}

Status Keyspace::Clear(std::string_view key) const {
  WriteBatch b;
  b.Clear(key);
  return Commit(b);
}

Status Keyspace::ClearRange(std::string_view begin, std::string_view end) const {
  WriteBatch b;
  b.ClearRange(begin, end);
  return Commit(b);
}

Status Keyspace::Commit(const WriteBatch& batch) const {
  // Keys become the store's (the prefix in front); an open-ended range ends with the keyspace.
  std::vector<std::string> keys;
  keys.reserve(batch.ops_.size() * 2);
  std::vector<internal::StoreOp> ops;
  ops.reserve(batch.ops_.size());
  const std::string end_of_space = PrefixEnd(prefix_);
  for (const WriteBatch::Op& op : batch.ops_) {
    keys.push_back(prefix_ + op.key);
    std::string_view key = keys.back();
    std::string_view value = op.value;
    if (op.kind == internal::kStoreClearRange) {
      keys.push_back(op.value.empty() ? end_of_space : prefix_ + op.value);  // "": the store's end
      value = keys.back();
    }
    ops.push_back({op.kind, key, value});
  }
  // `keys` reserved up front: the views above stay valid.
  return store_->impl_->Write(ops);
}

Result<std::vector<KeyValue>> Keyspace::Range(std::string_view begin, std::string_view end, size_t limit) const {
  const std::string b = prefix_ + std::string(begin);
  const std::string e = end.empty() ? PrefixEnd(prefix_) : prefix_ + std::string(end);
  std::vector<KeyValue> out;
  FileStore::Impl& s = *store_->impl_;
  MutexLock l(s.mu);
  for (auto it = s.map.lower_bound(b); it != s.map.end() && out.size() < limit; ++it) {
    if (!e.empty() && it->first >= e) break;
    if (it->first.compare(0, prefix_.size(), prefix_) != 0) break;
    out.push_back({it->first.substr(prefix_.size()), it->second});
  }
  return out;
}

Keyspace Keyspace::Prefix(std::string_view more) const { return Keyspace(store_, prefix_ + std::string(more)); }

// ---- schemas bound to names -------------------------------------------------------------

namespace {

// The schema `what` was first opened with, recorded at `key`: another is kSchemaMismatch.
Status BindSchema(const Keyspace& ks, const std::string& key, const Schema& schema, const std::string& what) {
  auto had = ks.Get(key);
  if (!had.ok()) return had.status();
  if (!had->has_value()) return ks.Set(key, schema.text());
  if (**had != schema.text()) {
    return Status(Code::kSchemaMismatch, what + " holds '" + **had + "', not '" + schema.text() + "'");
  }
  return Status::Ok();
}

Status CheckName(std::string_view what, std::string_view name) { return RouteName::ValidateToken(what, name); }

Status CheckSize(const Schema& schema, size_t size, const std::string& what) {
  if (schema.fixed_size() != 0 && size != schema.fixed_size()) {
    return InvalidArgument(what + ": a value of '" + schema.text() + "' is " + std::to_string(schema.fixed_size()) +
                           " bytes, not " + std::to_string(size));
  }
  return Status::Ok();
}

std::string Hex64(uint64_t v) {
  char b[17];
  std::snprintf(b, sizeof(b), "%016llx", static_cast<unsigned long long>(v));
  return b;
}

}  // namespace

// ---- EventLog ---------------------------------------------------------------------------

struct EventLog::Impl {
  std::string name, what;
  Keyspace ks;
  Schema schema;
  std::unique_ptr<log::Log> log;
};

EventLog::EventLog(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
EventLog::~EventLog() = default;

Result<std::shared_ptr<EventLog>> EventLog::Open(std::string_view name, const Keyspace& keyspace, Schema schema) {
  WEFT_RETURN_IF_ERROR(CheckName("event log's name", name));
  const std::string what = "event log '" + std::string(name) + "'";
  WEFT_RETURN_IF_ERROR(BindSchema(keyspace, "eventlog/" + std::string(name) + "/schema", schema, what));
  // Its own log, in the store's directory: the keyspace's prefix hashed, then the name.
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : keyspace.prefix()) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  const std::string dir = keyspace.store()->root() + "/logs/" + Hex64(h) + "-" + std::string(name);
  std::error_code ec;
  fs::create_directories(keyspace.store()->root() + "/logs", ec);
  log::LogOptions o;
  o.fsync = log::Fsync::kAlways;
  auto log = log::Log::Open(dir, o);
  if (!log.ok()) return Status(log.status().code(), what + ": " + log.status().message());
  auto impl = std::make_unique<Impl>(Impl{std::string(name), what, keyspace, std::move(schema), std::move(*log)});
  return std::shared_ptr<EventLog>(new EventLog(std::move(impl)));
}

Result<uint64_t> EventLog::Append(ByteView value) {
  WEFT_RETURN_IF_ERROR(CheckSize(impl_->schema, value.size(), impl_->what));
  // Each record carries the low half of the schema's id as its flags: a record of another is
  // refused when read.
  return impl_->log->Append(value, static_cast<uint32_t>(impl_->schema.id()));
}

Result<std::vector<StoredEvent>> EventLog::Read(uint64_t from_seq, size_t limit) const {
  std::vector<StoredEvent> out;
  if (limit == 0 || from_seq >= impl_->log->next_seq()) return out;
  auto tail = impl_->log->TailFrom(from_seq);
  if (!tail.ok()) return tail.status();
  while (out.size() < limit) {
    auto rec = (*tail)->Next(Deadline::Now());
    if (!rec.ok()) {
      if (rec.status().code() == Code::kWouldBlock || rec.status().code() == Code::kTimeout) break;
      return Status(rec.status().code(), impl_->what + ": " + rec.status().message());
    }
    if (rec->flags != static_cast<uint32_t>(impl_->schema.id()) ||
        CheckSize(impl_->schema, rec->payload.size(), impl_->what).code() != Code::kOk) {
      return Corrupt(impl_->what + ": record " + std::to_string(rec->seq) + " is not a value of '" + impl_->schema.text() + "'");
    }
    out.push_back({rec->seq, rec->timestamp_ns, std::string(rec->payload.begin(), rec->payload.end())});
  }
  return out;
}

Status EventLog::Commit(std::string_view reader, uint64_t next_seq) {
  WEFT_RETURN_IF_ERROR(CheckName("reader's name", reader));
  if (next_seq > impl_->log->next_seq()) {
    return InvalidArgument(impl_->what + ": cannot commit " + std::to_string(next_seq) + ", past its end " +
                           std::to_string(impl_->log->next_seq()));
  }
  return impl_->ks.Set("eventlog/" + impl_->name + "/reader/" + std::string(reader),
                       std::string_view(reinterpret_cast<const char*>(&next_seq), 8));
}

Result<uint64_t> EventLog::Committed(std::string_view reader) const {
  WEFT_RETURN_IF_ERROR(CheckName("reader's name", reader));
  auto v = impl_->ks.Get("eventlog/" + impl_->name + "/reader/" + std::string(reader));
  if (!v.ok()) return v.status();
  if (!v->has_value()) return uint64_t{0};
  if ((*v)->size() != 8) return Corrupt(impl_->what + ": reader " + std::string(reader) + "'s position is damaged");
  uint64_t at;
  std::memcpy(&at, (*v)->data(), 8);
  return at;
}

uint64_t EventLog::next_seq() const { return impl_->log->next_seq(); }
const Schema& EventLog::schema() const { return impl_->schema; }

// ---- SnapshotStore ----------------------------------------------------------------------

Result<std::shared_ptr<SnapshotStore>> SnapshotStore::Open(std::string_view name, const Keyspace& keyspace, Schema schema) {
  WEFT_RETURN_IF_ERROR(CheckName("snapshot's name", name));
  const std::string key = "snapshot/" + std::string(name);
  WEFT_RETURN_IF_ERROR(BindSchema(keyspace, key + "/schema", schema, "snapshot '" + std::string(name) + "'"));
  return std::shared_ptr<SnapshotStore>(new SnapshotStore(key, keyspace, std::move(schema)));
}

Status SnapshotStore::Set(ByteView value) {
  WEFT_RETURN_IF_ERROR(CheckSize(schema_, value.size(), key_));
  std::string v(8, '\0');
  const uint64_t id = schema_.id();
  std::memcpy(v.data(), &id, 8);
  v.append(reinterpret_cast<const char*>(value.data()), value.size());
  return ks_.Set(key_, v);
}

Result<std::optional<std::string>> SnapshotStore::Get() const {
  auto v = ks_.Get(key_);
  if (!v.ok()) return v.status();
  if (!v->has_value()) return std::optional<std::string>();
  uint64_t id = 0;
  if ((*v)->size() < 8) return Corrupt(key_ + " is damaged (shorter than its schema id)");
  std::memcpy(&id, (*v)->data(), 8);
  if (id != schema_.id()) return Status(Code::kSchemaMismatch, key_ + " holds a value of another schema than '" + schema_.text() + "'");
  std::string out = (*v)->substr(8);
  WEFT_RETURN_IF_ERROR(CheckSize(schema_, out.size(), key_));
  return std::optional<std::string>(std::move(out));
}

Status SnapshotStore::Clear() { return ks_.Clear(key_); }

// ---- Memory -----------------------------------------------------------------------------

Result<std::shared_ptr<Memory>> Memory::Open(const std::string& path, FileStoreOptions options) {
  auto store = FileStore::Open(path, options);
  if (!store.ok()) return store.status();
  return std::shared_ptr<Memory>(new Memory(std::move(*store)));
}

Subscription Memory::Remember(const Route& route) {
  Keyspace ks = store_->Prefix("memory/");
  const std::string key = route.name().ToString();
  const uint64_t schema_id = route.schema().id();
  auto errors = write_errors_;
  return route.Observe([ks, key, schema_id, errors](const SampleRef& v) {
    auto bytes = v->bytes();
    if (!bytes.ok() || !ks.Set(key, internal::EncodeRecord(v->envelope(), schema_id, *bytes)).ok()) ++*errors;
  });
}

Result<bool> Memory::Resume(const Route& route) {
  auto v = store_->Prefix("memory/").Get(route.name().ToString());
  if (!v.ok()) return v.status();
  if (!v->has_value()) return false;
  auto d = internal::DecodeRecord(AsBytes(**v));
  if (!d.ok()) return Corrupt("the memory of " + route.name().ToString() + " is damaged: " + d.status().message());
  if (d->schema_id != route.schema().id()) {
    return Status(Code::kSchemaMismatch, "the memory of " + route.name().ToString() + " is of another schema than '" +
                                             route.schema().text() + "'");
  }
  WEFT_RETURN_IF_ERROR(route.Inject(d->env, std::string(d->value.begin(), d->value.end()), this));
  return true;
}

uint64_t Memory::write_errors() const { return write_errors_->load(); }

}  // namespace weft::graph
