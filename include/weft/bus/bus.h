// The event bus: events (opaque bytes with an optional key) spread over N shards, read by
// consumer groups. A key always lands on the same shard, and order is kept per shard (only per
// shard); events without a key stay on one shard per producing thread, so one thread's events
// keep their order. Every group sees every event; within a group each shard is read by one
// member at a time, and shards move to the other members when one leaves or dies, resuming
// from the last committed position (at-least-once). Backpressure is the bus's overflow policy
// (weft/core/overflow.h), counted exactly. Guide: docs/bus.md; format: docs/formats/bus.md.
//
// Thread rule: a Bus may be used from any number of threads (ingest, subscribe, stats); a
// Consumer by one thread at a time, except Interrupt.
//
//   auto bus = weft::bus::Bus::Open({.shards = 4});
//   (*bus)->Ingest(weft::AsBytes("hello"));
//   auto c = (*bus)->Subscribe("workers");
//   auto batch = (*c)->Poll(64, weft::Deadline::AfterMs(100));
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "weft/core/bytes.h"
#include "weft/core/clock.h"
#include "weft/core/overflow.h"
#include "weft/core/status.h"
#include "weft/core/wait.h"
#include "weft/log/log.h"

namespace weft::bus {

inline constexpr uint64_t kNoOffset = UINT64_MAX;
inline constexpr uint64_t kPendingOffset = UINT64_MAX - 1;

// Where an event is: its shard and its offset there. Offsets only grow within a shard and name
// one event for ever (compare them, resume from them). On memory: and shm: they are byte
// positions in the shard's ring; on log: the record's sequence number in the shard's log.
// Depths and lags in the stats are in the same unit.
struct Position {
  uint32_t shard = 0;
  uint64_t offset = kNoOffset;
  // True for an event that drop_newest discarded (it has no position).
  bool dropped() const { return offset == kNoOffset; }
  // True for an event gathered under linger, not published yet (its position comes later).
  bool pending() const { return offset == kPendingOffset; }
};

// The remote backends: "redis://[[user]:password@]host:port/<name>" (Redis Streams, a stream
// key per shard) and "nats://[credentials@]host:port[,host:port...]/<name>[?creds=&nkey=&seed=
// &tls=&ca=&cert=&key=]" (NATS JetStream, a subject per shard of one stream). Guide and mapping:
// docs/scale-out.md.
struct RemoteOptions {
  // Effectively-once: the producer's nonce file (weft/bus/dedup.h), created on first use.
  // Empty: a nonce of this process only (ids are unique, but a restarted producer's retries
  // are new events).
  std::string nonce_path;
  // Each shard's stream keeps at most this many events (0: no limit); with a limit the
  // policy must be drop_oldest: the server trims the oldest, counted per shard. The other
  // policies apply while the server is away: block retries until the deadline (then
  // kUnavailable), fail tries once (kUnavailable), drop_newest drops what the server did not
  // acknowledge by the deadline, counted.
  uint64_t max_len = 0;
  // redis: consumers: how many event ids each member remembers to drop duplicates (0: none).
  uint32_t dedup_capacity = 65536;
  // nats: the stream's duplicate window (the server drops a message whose id it saw this
  // recently; a retry later than this is a new event) and its replicas (1, or 3 or 5 on a
  // cluster). Both are set by the opener that creates the stream.
  int64_t dedup_window_ms = 120'000;
  int replicas = 1;
  // A pending event (delivered, not committed) idle this long is taken over by another
  // member: the liveness interval of a member that died.
  int64_t claim_idle_ms = 30'000;
  // The bound on any one server round trip when the caller's deadline is Never, and on
  // connecting (kUnavailable after it).
  int64_t op_timeout_ms = 5'000;
};

struct BusOptions {
  // Where the bus lives: "memory:" (the threads of this process), "shm:<name>" (the
  // processes of this host, in shared memory /dev/shm/weft.<name>), "log:<directory>"
  // (durable: one Weft log per shard, committed positions in files; survives restarts) or
  // "redis://host:port/<name>" (Redis Streams; see RemoteOptions). A
  // shm: or log: bus is created by the first to open it, with the options below; later opens
  // take the bus as it is. log: needs backpressure kDropOldest: its shards are bounded by
  // retention, never full, so no producer waits or is refused.
  std::string url = "memory:";
  uint32_t shards = 0;                   // 0: one per CPU; at most 256
  uint64_t shard_bytes = uint64_t{1} << 22;  // each shard's ring: a power of two, at least 4 KiB
  uint32_t max_event = 0;                // the largest key + data (0: shard_bytes / 4, the most)
  Overflow backpressure = Overflow::kBlock;
  bool timestamps = false;               // stamp each event with the wall clock at ingest
  // Groups that exist from the start, so that events ingested before anyone subscribes wait
  // for them (a group created later starts at the oldest event still held, or at the end).
  std::vector<std::string> groups;
  // For a shm: bus that exists: refuse (kInvalidArgument) unless its shards, shard_bytes,
  // max_event, backpressure and timestamps are the ones given here.
  bool must_match = false;
  // For shm: and log:, create the bus if it does not exist (false: kNotFound).
  bool create = true;
  // Linger: 0 publishes each Ingest at once. Above 0, an Ingest without a key is gathered
  // with the calling thread's others and published as one batch (one claim, one wake) once
  // `linger_events` are gathered, or at the first Ingest that finds the oldest gathered event
  // older than linger_ns, or at Flush; it returns a pending() position. A gathered event is in
  // the bus only once published: Flush from each producing thread before it stops or before
  // the bus closes (a thread's gathered events are also published when it exits).
  int64_t linger_ns = 0;
  uint32_t linger_events = 64;
  // log: each shard's log: fsync policy (kAlways: an ingest returns once on disk, concurrent
  // ingests share fsyncs), segment size and retention (a group that falls behind retention
  // loses what it removed, counted as its drops). read_only and create are ignored.
  log::LogOptions log;
  // redis:// (docs/scale-out.md).
  RemoteOptions remote;
};

struct Event {
  Position position;
  ByteView key;           // empty if the event has none
  ByteView data;          // in the shard's ring: valid until the consumer's next Poll, Commit or Close
  int64_t timestamp_ns = 0;  // 0 unless the bus stamps events
};

enum class Start : uint8_t {
  kOldest,  // a new group starts at the oldest event the bus still holds
  kLatest,  // a new group starts after the last event ingested
};

struct ConsumerOptions {
  // Each Poll commits what the previous one delivered; false: call Commit yourself.
  bool auto_commit = true;
  Start start = Start::kOldest;  // for a group this consumer creates
  WaitPolicy wait{};
};

struct ShardStats {
  uint64_t ingested = 0;        // events published to the shard
  uint64_t dropped_newest = 0;  // events refused by drop_newest or fail
  uint64_t dropped_oldest = 0;  // events taken from groups that had not read them (drop_oldest)
  uint64_t lost_events = 0;     // events of producers that died between claiming and publishing them
  uint64_t tail = 0;            // the next offset
  uint64_t oldest = 0;          // offsets below are gone
  uint64_t depth_bytes = 0;     // tail - oldest
};

struct GroupShardStats {
  uint64_t committed = 0;   // the group resumes here
  uint64_t next = 0;        // the next offset to deliver
  uint64_t lag_bytes = 0;   // tail - committed
  uint64_t delivered = 0;   // events delivered to the group's members
  uint64_t dropped = 0;     // events this group lost to drop_oldest
  int32_t owner = -1;       // the member reading the shard, or -1
};

// A process holding a slot of a shm: bus (a group member or a producing thread).
struct Participant {
  uint32_t slot = 0;
  int32_t pid = 0;
  bool alive = false;
};

struct GroupStats {
  std::string name;
  uint32_t members = 0;             // live members
  std::vector<Participant> holders;  // every held member slot (shm: shows the dead too)
  uint64_t delivered = 0;
  uint64_t dropped = 0;
  uint64_t lag_bytes = 0;
  std::vector<GroupShardStats> shards;
};

struct BusStats {
  uint32_t shards = 0;
  uint64_t ingested = 0;
  uint64_t dropped_newest = 0;
  uint64_t dropped_oldest = 0;
  uint64_t lost_events = 0;
  std::vector<ShardStats> per_shard;
  std::vector<GroupStats> groups;
  std::vector<Participant> producers;  // shm: producer slots held
};

// One member of a consumer group.
class Consumer {
 public:
  virtual ~Consumer() = default;
  // Up to `limit` events from this member's shards, waiting until there is at least one or
  // the deadline passes (kWouldBlock for Deadline::Now(), else kTimeout). The events view the
  // shard rings and stay valid until the next Poll, Commit or Close. With auto_commit, this
  // call first commits what the previous one delivered.
  virtual Result<std::span<const Event>> Poll(size_t limit, Deadline deadline) = 0;
  // Commits everything delivered so far: after a restart or a rebalance the group resumes
  // after it. Ends the validity of the last batch.
  virtual Status Commit() = 0;
  // The shards this member reads now (they change when members join or leave).
  virtual std::vector<uint32_t> shards() const = 0;
  virtual const std::string& group() const = 0;
  // A descriptor that turns readable when Poll may find something (events in this member's
  // shards, or a change of membership), for poll(2), epoll or an event loop: after a Poll with
  // Deadline::Now() answered kWouldBlock, wait for it to be readable, then Poll again. It
  // starts readable. Owned by the consumer (closed by Close).
  virtual Result<int> WaitFd() = 0;
  // From any thread: the current Poll, and every later one, end with kClosed.
  virtual void Interrupt() = 0;
  // Commits (with auto_commit) and leaves the group; its shards move to the other members.
  virtual Status Close() = 0;
};

// True for the url of a bus on a server (redis://, nats://, tls://): its calls make round
// trips, and its stats count events.
bool IsRemoteUrl(std::string_view url);

class Bus {
 public:
  virtual ~Bus() = default;
  static Result<std::unique_ptr<Bus>> Open(const BusOptions& options);
  // Removes a shm: bus's name (kNotFound if there is none); open handles keep working. For a
  // log: bus, removes its control segment: the directory stays, and the next open makes a new
  // one from the files (remove the directory to remove the bus). For redis:// and nats://,
  // removes the bus from the server with its events and groups (its keys; its stream).
  static Status Unlink(std::string_view url);

  // Ingests one event (to this thread's shard). Under block, waits for space up to the
  // deadline (kTimeout); under fail, kResourceExhausted at once; under drop_newest, a full
  // shard discards the event and returns a dropped() position. Every discard is counted.
  virtual Result<Position> Ingest(ByteView data, Deadline deadline = Deadline::Never()) = 0;
  // An event with a key: it lands on shard crc32c(key) % shards.
  virtual Result<Position> IngestKeyed(ByteView key, ByteView data, Deadline deadline = Deadline::Never()) = 0;
  // Several events to this thread's shard, in order, in one claim of space. Returns how many
  // were ingested, always a prefix of `events`: all of them, or the ones that fit when the
  // shard is full (like write(2)). The rest: under drop_newest discarded and counted; under
  // block the call waits for space until the deadline; under fail they are left to the caller.
  // An error only when none was ingested (kTimeout under block, kResourceExhausted under fail).
  virtual Result<size_t> IngestBatch(std::span<const ByteView> events, Deadline deadline = Deadline::Never()) = 0;

  // Joins group `group` (created if absent) as a new member.
  virtual Result<std::unique_ptr<Consumer>> Subscribe(std::string_view group, const ConsumerOptions& options = {}) = 0;

  // Publishes the calling thread's gathered events (linger) now; Ok at once without linger.
  // The error of the batch publish, if any (the events are then dropped or left as the
  // policy says, counted).
  virtual Status Flush() { return Status::Ok(); }

  virtual BusStats Stats() const = 0;
  virtual uint32_t shards() const = 0;
  virtual const BusOptions& options() const = 0;
  // The shard an event with this key lands on.
  uint32_t ShardOf(ByteView key) const;
};

}  // namespace weft::bus
