// Stores for graph state on local files. A FileStore is an ordered byte keyspace (keys and
// values are any bytes; keys sort as bytes) whose writes are atomic: a Set, a Clear or a whole
// WriteBatch is on disk entirely or not at all, whatever happens to the process. Keyspaces
// are prefixes of it, as in FoundationDB. Above it: EventLog (typed appends on a Weft log,
// readers' committed positions in the keyspace), SnapshotStore (a typed latest value) and
// Memory (a route's latest value remembered across restarts). Guide: docs/graph.md, "Stores";
// format: docs/formats/graph-store.md.
//
//   auto store = graph::FileStore::Open("/var/lib/app/state").value();
//   graph::Keyspace plant = store->Prefix("plant/");
//   plant.Set("boiler/temp", "21.5");
//   auto rows = plant.Range("boiler/", "boiler0").value();   // ordered
//
// Thread rule: a FileStore, its keyspaces and the stores above it may be used from any thread.
// One process writes a store at a time (kBusy names the holder).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "weft/core/bytes.h"
#include "weft/core/status.h"
#include "weft/graph/graph.h"

namespace weft::graph {

struct FileStoreOptions {
  // Every write returns once on disk (fsync). false: a crash of
  // the process loses nothing, a crash of the machine may lose the newest writes (never tear one).
  bool fsync = true;
  // The journal is rewritten with only the live keys when it passes this size and holds more
  // than twice the live bytes.
  uint64_t compact_above_bytes = uint64_t{4} << 20;
};

struct KeyValue {
  std::string key, value;
  bool operator==(const KeyValue&) const = default;
};

// Several writes, applied together by Keyspace::Commit: all of them, or none.
class WriteBatch {
 public:
  void Set(std::string_view key, std::string_view value);
  void Clear(std::string_view key);
  void ClearRange(std::string_view begin, std::string_view end);  // [begin, end)
  size_t size() const { return ops_.size(); }

 private:
  friend class Keyspace;
  struct Op {
    uint8_t kind;
    std::string key, value;  // ClearRange: value is the end
  };
  std::vector<Op> ops_;
};

struct FileStoreStats {
  uint64_t keys = 0;
  uint64_t live_bytes = 0;     // keys and values
  uint64_t journal_bytes = 0;  // on disk
  uint64_t generation = 0;     // compactions so far (the journal's generation)
};

class FileStore;

// The keys of a FileStore under a prefix: keys given and returned are relative to it.
class Keyspace {
 public:
  Result<std::optional<std::string>> Get(std::string_view key) const;
  Status Set(std::string_view key, std::string_view value) const;
  Status Clear(std::string_view key) const;
  Status ClearRange(std::string_view begin, std::string_view end) const;
  // The keys in [begin, end) in order, at most `limit`; an empty `end`: to the keyspace's end.
  Result<std::vector<KeyValue>> Range(std::string_view begin = {}, std::string_view end = {},
                                      size_t limit = SIZE_MAX) const;
  Status Commit(const WriteBatch& batch) const;
  // A keyspace further in.
  Keyspace Prefix(std::string_view more) const;
  const std::string& prefix() const { return prefix_; }
  const std::shared_ptr<FileStore>& store() const { return store_; }

 private:
  friend class FileStore;
  Keyspace(std::shared_ptr<FileStore> store, std::string prefix) : store_(std::move(store)), prefix_(std::move(prefix)) {}
  std::shared_ptr<FileStore> store_;
  std::string prefix_;
};

class FileStore : public std::enable_shared_from_this<FileStore> {
 public:
  // Opens (creating) the store in directory `root`: kBusy if another process writes it,
  // kCorrupt naming what is damaged (a torn last write is cut, as never made).
  static Result<std::shared_ptr<FileStore>> Open(const std::string& root, FileStoreOptions options = {});
  ~FileStore();
  Keyspace Prefix(std::string_view prefix);
  // Rewrites the journal with only the live keys now.
  Status Compact();
  FileStoreStats stats() const;
  const std::string& root() const;

  struct Impl;

 private:
  friend class Keyspace;
  explicit FileStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

struct StoredEvent {
  uint64_t seq = 0;
  int64_t timestamp_ns = 0;  // when it was appended, UNIX ns
  std::string value;          // the schema's bytes
};

// Typed appends on a Weft log of its own (in the store's directory), read back from any
// position; each reader's committed position is kept in the keyspace, so a reader that
// restarts resumes after what it committed. The schema is recorded at the first open; another
// is kSchemaMismatch.
class EventLog {
 public:
  // `name`: 1 to 64 characters from [A-Za-z0-9_-].
  static Result<std::shared_ptr<EventLog>> Open(std::string_view name, const Keyspace& keyspace, Schema schema);
  ~EventLog();
  // Durable when it returns (if the store fsyncs). Values of a fixed-size schema must have its
  // size (kInvalidArgument).
  Result<uint64_t> Append(ByteView value);
  template <typename T>
  Result<uint64_t> Append(const T& value) { return Append(ByteView(reinterpret_cast<const uint8_t*>(&value), sizeof(T))); }
  // Up to `limit` events from `from_seq` (the first is 0).
  Result<std::vector<StoredEvent>> Read(uint64_t from_seq, size_t limit) const;
  // Reader `reader` resumes at `next_seq` (atomic, durable as the store is).
  Status Commit(std::string_view reader, uint64_t next_seq);
  // Where reader `reader` resumes (0 if it never committed).
  Result<uint64_t> Committed(std::string_view reader) const;
  uint64_t next_seq() const;
  const Schema& schema() const;

  struct Impl;

 private:
  explicit EventLog(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// A typed latest value under a name in a keyspace.
class SnapshotStore {
 public:
  static Result<std::shared_ptr<SnapshotStore>> Open(std::string_view name, const Keyspace& keyspace, Schema schema);
  Status Set(ByteView value);
  template <typename T>
  Status Set(const T& value) { return Set(ByteView(reinterpret_cast<const uint8_t*>(&value), sizeof(T))); }
  // The value, or nullopt if none was set; kSchemaMismatch if another schema's value is there.
  Result<std::optional<std::string>> Get() const;
  Status Clear();
  const Schema& schema() const { return schema_; }

 private:
  SnapshotStore(std::string key, Keyspace ks, Schema schema) : key_(std::move(key)), ks_(std::move(ks)), schema_(std::move(schema)) {}
  std::string key_;
  Keyspace ks_;
  Schema schema_;
};

// A route's latest value with its envelope, kept on disk: Remember writes each value the route
// publishes (the latest only); Resume, after a restart, publishes the remembered one on the
// route again (with its envelope; this route's own seq), so Latest and observers have it.
class Memory {
 public:
  static Result<std::shared_ptr<Memory>> Open(const std::string& path, FileStoreOptions options = {});
  // Until the returned subscription is cancelled. Write errors are counted (write_errors).
  Subscription Remember(const Route& route);
  // True if a value was remembered and published; kSchemaMismatch if it was of another schema.
  Result<bool> Resume(const Route& route);
  uint64_t write_errors() const;
  const std::shared_ptr<FileStore>& store() const { return store_; }

 private:
  explicit Memory(std::shared_ptr<FileStore> store) : store_(std::move(store)) {}
  std::shared_ptr<FileStore> store_;
  std::shared_ptr<std::atomic<uint64_t>> write_errors_ = std::make_shared<std::atomic<uint64_t>>(0);
};

}  // namespace weft::graph
