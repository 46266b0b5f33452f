// redis://host:port/<name>: the bus on Redis Streams (docs/scale-out.md). Shard s is the
// stream "weft:bus:<name>:<s>"; the bus's shape is the string "weft:bus:<name>:meta" (set once,
// by the first opener). An event is an entry with the fields "dedup_id" (its id,
// weft/bus/dedup.h), "k" (its key, if any) and "d" (its data). A bus group is a Redis
// consumer group of that name on every shard stream; a member is a Redis consumer. Positions
// are entry ids packed as (milliseconds << 20) | sequence.
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <deque>
#include <thread>
#include <vector>

#include "internal/backends.h"
#include "internal/groups.h"
#include "internal/remote.h"
#include "weft/bus/bus.h"
#include "weft/bus/dedup.h"
#include "weft/core/mutex.h"
#include "weft/net/redis.h"

namespace weft::bus::internal {

namespace {

using net::RedisConnection;
using net::RedisKind;
using net::RedisReply;
using net::RedisValue;

constexpr uint32_t kSeqBits = kEntrySeqBits;
constexpr uint32_t kDefaultMaxEvent = 1u << 20;
constexpr uint32_t kMostMaxEvent = 512u << 20;  // Redis's largest string
constexpr int64_t kBlockSliceMs = 100;          // a blocked read checks Interrupt this often

uint64_t OffsetOr0(std::string_view id) {
  Result<uint64_t> off = ParseEntryId(id);
  return off.ok() ? *off : 0;
}

bool IsError(const RedisReply& r) { return r.root().kind() == RedisKind::kError; }

// A field's value in an entry's [f1, v1, f2, v2, ...] array.
std::string_view Field(RedisValue fields, std::string_view name) {
  for (size_t i = 0; i + 1 < fields.size(); i += 2) {
    if (fields[i].str() == name) return fields[i + 1].str();
  }
  return {};
}

// A value of XINFO's [name, value, ...] replies.
RedisValue InfoField(RedisValue info, std::string_view name) {
  for (size_t i = 0; i + 1 < info.size(); i += 2) {
    if (info[i].str() == name) return info[i + 1];
  }
  return info[info.size()];  // nil
}

// What a bus handle and its consumers share.
struct RedisCore {
  BusOptions options;
  net::RedisOptions server;
  std::string name;
  std::vector<std::string> keys;  // per shard
  std::unique_ptr<ProducerNonce> nonce;

  Mutex pool_mu;
  std::vector<std::unique_ptr<RedisConnection>> pool WEFT_GUARDED_BY(pool_mu);
  std::atomic<uint64_t> dropped_newest{0};

  std::string Where() const { return "bus '" + options.url + "'"; }
  // Until when a failed round trip is tried again: the caller's deadline, or op_timeout_ms for
  // Deadline::Never. Each attempt has op_timeout_ms of its own, even under Deadline::Now.
  Deadline RetryUntil(Deadline d) const { return d.is_never() ? Deadline::AfterMs(options.remote.op_timeout_ms) : d; }

  // A connection from the pool (or a new one), reconnected if broken, until the deadline:
  // a server that does not answer is tried again with backoff.
  Result<std::unique_ptr<RedisConnection>> Take(Deadline deadline) {
    std::unique_ptr<RedisConnection> c;
    {
      MutexLock lock(pool_mu);
      if (!pool.empty()) {
        c = std::move(pool.back());
        pool.pop_back();
      }
    }
    if (c != nullptr) {
      if (c->broken()) {
        Status s = c->Reconnect(deadline);
        if (!s.ok()) return Status(s.code(), Where() + ": " + s.message());
      }
      return c;
    }
    auto made = RedisConnection::Connect(server, deadline);
    if (!made.ok()) return Status(made.status().code(), Where() + ": " + made.status().message());
    return made;
  }
  void Give(std::unique_ptr<RedisConnection> c) {
    if (c == nullptr || c->broken()) return;
    MutexLock lock(pool_mu);
    pool.push_back(std::move(c));
  }

  // One command on a pooled connection, retried through reconnects until the deadline.
  Result<RedisReply> Call(std::span<const std::string_view> argv, Deadline deadline) {
    const Deadline until = RetryUntil(deadline);
    for (;;) {
      const Deadline attempt = Deadline::AfterMs(options.remote.op_timeout_ms);
      auto c = Take(attempt);
      if (!c.ok()) return c.status();
      Result<RedisReply> r = (*c)->Command(argv, attempt);
      if (r.ok()) {
        Give(std::move(c).value());
        return r;
      }
      if (until.Expired()) return Status(Code::kUnavailable, Where() + ": " + r.status().message());
    }
  }

  // Creates group `g` on every shard (starting at the oldest entry, or after the newest);
  // an existing group stays as it is.
  Status CreateGroup(std::string_view g, Start start, Deadline deadline) {
    for (const std::string& key : keys) {
      std::string_view argv[] = {"XGROUP", "CREATE", key, g, start == Start::kLatest ? "$" : "0", "MKSTREAM"};
      Result<RedisReply> r = Call(argv, deadline);
      if (!r.ok()) return r.status();
      if (IsError(*r) && r->root().str().rfind("BUSYGROUP", 0) != 0) {
        return net::RedisError(r->root().str(), Where() + " XGROUP CREATE " + key + " " + std::string(g));
      }
    }
    return Status::Ok();
  }
};

// ---- consumers -----------------------------------------------------------------------------------

class RedisConsumer final : public RemoteMember {
 public:
  RedisConsumer(std::shared_ptr<RedisCore> core, std::string group, std::string me, const ConsumerOptions& o,
                std::unique_ptr<RedisConnection> conn)
      : core_(std::move(core)), group_(std::move(group)), me_(std::move(me)), options_(o), conn_(std::move(conn)),
        claim_cursor_(core_->keys.size(), "0-0"), acks_(core_->keys.size()) {
    if (core_->options.remote.dedup_capacity > 0) dedup_ = std::make_unique<RedisStreamDedup>(core_->options.remote.dedup_capacity);
    for (uint32_t s = 0; s < core_->keys.size(); ++s) all_.push_back(s);
  }
  ~RedisConsumer() override { Close().IgnoreError(); }

  Result<std::span<const Event>> Poll(size_t limit, Deadline deadline) override {
    if (closed()) return Status(Code::kClosed, "consumer closed");
    if (limit == 0) return std::span<const Event>();
    // The acks of the last batch go out with the next read (one round trip for both).
    if (options_.auto_commit) SendAcks();
    events_.clear();
    held_.clear();
    bell_.Drain();
    if (backlog_.empty()) WEFT_RETURN_IF_ERROR(ClaimIdle(limit));
    Serve(limit);
    if (!events_.empty()) WEFT_RETURN_IF_ERROR(ReadAcks());  // served from the backlog: no read
    while (events_.empty()) {
      if (closed()) return Status(Code::kClosed, "consumer closed");
      const int64_t left_ms = deadline.RemainingNs() / 1'000'000;
      const bool wait = !deadline.is_now() && left_ms > 0;
      WEFT_RETURN_IF_ERROR(Read(limit, wait ? std::min<int64_t>(left_ms, kBlockSliceMs) : -1));
      Serve(limit);
      if (!events_.empty()) break;
      if (!wait || deadline.Expired()) {
        return Status(deadline.is_now() ? Code::kWouldBlock : Code::kTimeout, core_->Where() + ": no event by the deadline");
      }
    }
    return std::span<const Event>(events_);
  }

  Status Commit() override {
    SendAcks();
    return ReadAcks();
  }

  std::vector<uint32_t> shards() const override { return all_; }
  const std::string& group() const override { return group_; }

  Status Close() override {
    if (done_) return Status::Ok();
    done_ = true;
    Status s = Status::Ok();
    if (options_.auto_commit && !conn_->broken()) s = Commit();
    closed_.store(true, std::memory_order_release);
    if (watcher_.joinable()) watcher_.join();
    bell_.Close();
    // A member that leaves with nothing pending is removed from the group (its pending events,
    // if any, stay for another member to claim).
    const bool clean = s.ok() && backlog_.empty() &&
                       std::all_of(acks_.begin(), acks_.end(), [](const auto& a) { return a.empty(); });
    if (clean && options_.auto_commit && !conn_->broken()) {
      const Deadline d = Deadline::AfterMs(core_->options.remote.op_timeout_ms);
      for (const std::string& key : core_->keys) {
        std::string_view argv[] = {"XGROUP", "DELCONSUMER", key, group_, me_};
        conn_->Append(argv);
      }
      for (size_t i = 0; i < core_->keys.size(); ++i) {
        if (!conn_->Read(d).ok()) break;
      }
    }
    return s;
  }

 private:
  Status StartWatcher() override {
    auto c = RedisConnection::Connect(conn_->options());
    if (!c.ok()) return c.status();
    watcher_ = std::thread([this, w = std::move(c).value()]() mutable { Watch(std::move(w)); });
    return Status::Ok();
  }

  Status Reconnected(const Status& why) {
    // Replies in flight are lost with the connection; what was delivered and not acked stays
    // pending in the group and is claimed again after claim_idle_ms (at-least-once).
    const Status r = conn_->Reconnect(Deadline::AfterMs(core_->options.remote.op_timeout_ms));
    if (!r.ok()) return Status(Code::kUnavailable, core_->Where() + ": " + why.message());
    return Status(Code::kUnavailable, core_->Where() + ": " + why.message() + " (reconnected; poll again)");
  }

  // Queues XACK of every id delivered (and every duplicate dropped), a command per shard; the
  // replies are read by ReadAcks, before any later reply.
  void SendAcks() {
    std::vector<std::string_view> argv;
    for (uint32_t s = 0; s < acks_.size(); ++s) {
      if (acks_[s].empty()) continue;
      argv.assign({"XACK", core_->keys[s], group_});
      for (const std::string& id : acks_[s]) argv.push_back(id);
      conn_->Append(argv);  // copies the ids
      ++acks_in_flight_;
      acks_[s].clear();
    }
  }
  Status ReadAcks() {
    const Deadline d = Deadline::AfterMs(core_->options.remote.op_timeout_ms);
    for (; acks_in_flight_ > 0; --acks_in_flight_) {
      Result<RedisReply> r = conn_->Read(d);
      if (!r.ok()) {
        acks_in_flight_ = 0;
        return Reconnected(r.status());
      }
      if (IsError(*r)) {
        --acks_in_flight_;
        Status e = net::RedisError(r->root().str(), core_->Where() + " XACK");
        while (acks_in_flight_ > 0 && conn_->Read(d).ok()) --acks_in_flight_;
        acks_in_flight_ = 0;
        return e;
      }
    }
    return Status::Ok();
  }

  // Queues the entries of one stream's reply (delivered to this member by Redis: every one
  // is handed out by a Poll, or acked at once if it is a duplicate).
  Status Take(uint32_t s, RedisValue entries, const std::shared_ptr<RedisReply>& reply) {
    for (size_t i = 0; i < entries.size(); ++i) {
      RedisValue e = entries[i];
      if (e.size() < 2) continue;  // an entry deleted while pending
      std::string_view id = e[0].str();
      Result<uint64_t> off = ParseEntryId(id);
      if (!off.ok()) return off.status();
      RedisValue fields = e[1];
      const std::string_view dedup = Field(fields, "dedup_id");
      if (dedup_ != nullptr && !dedup.empty() && dedup_->Seen(dedup)) {
        acks_[s].emplace_back(id);  // a copy of an event delivered before: acked, not handed out
        continue;
      }
      const std::string_view key = Field(fields, "k"), data = Field(fields, "d");
      Pending p;
      p.ev.position = Position{s, *off};
      p.ev.key = ByteView(reinterpret_cast<const uint8_t*>(key.data()), key.size());
      p.ev.data = ByteView(reinterpret_cast<const uint8_t*>(data.data()), data.size());
      p.ev.timestamp_ns = core_->options.timestamps ? static_cast<int64_t>(*off >> kSeqBits) * 1'000'000 : 0;
      p.id = std::string(id);
      p.reply = reply;
      backlog_.push_back(std::move(p));
    }
    return Status::Ok();
  }

  // Hands out up to `limit` queued events.
  void Serve(size_t limit) {
    while (events_.size() < limit && !backlog_.empty()) {
      Pending& p = backlog_.front();
      events_.push_back(p.ev);
      acks_[p.ev.position.shard].push_back(std::move(p.id));
      if (held_.empty() || held_.back() != p.reply) held_.push_back(std::move(p.reply));
      backlog_.pop_front();
    }
  }

  // Takes over events pending on members idle for claim_idle_ms (a member that died), a
  // quarter of that interval apart.
  Status ClaimIdle(size_t limit) {
    const int64_t idle = core_->options.remote.claim_idle_ms;
    const int64_t now = MonotonicNs();
    if (now - last_claim_ns_ < idle * 1'000'000 / 4) return Status::Ok();
    last_claim_ns_ = now;
    const std::string min_idle = std::to_string(idle), count = std::to_string(limit);
    for (uint32_t s = 0; s < core_->keys.size(); ++s) {
      std::string_view argv[] = {"XAUTOCLAIM", core_->keys[s], group_, me_, min_idle, claim_cursor_[s], "COUNT", count};
      conn_->Append(argv);
    }
    const Deadline d = Deadline::AfterMs(core_->options.remote.op_timeout_ms);
    WEFT_RETURN_IF_ERROR(ReadAcks());
    for (uint32_t s = 0; s < core_->keys.size(); ++s) {
      Result<RedisReply> r = conn_->Read(d);
      if (!r.ok()) return Reconnected(r.status());
      if (IsError(*r)) return net::RedisError(r->root().str(), core_->Where() + " XAUTOCLAIM");
      RedisValue v = r->root();
      claim_cursor_[s] = std::string(v[0].str().empty() ? "0-0" : v[0].str());
      if (v[1].size() > 0) {
        auto reply = std::make_shared<RedisReply>(std::move(r).value());
        WEFT_RETURN_IF_ERROR(Take(s, reply->root()[1], reply));
      }
    }
    return Status::Ok();
  }

  // XREADGROUP over every shard: new events for this member (block_ms < 0: do not block).
  Status Read(size_t limit, int64_t block_ms) {
    const std::string count = std::to_string(limit), block = std::to_string(block_ms);
    std::vector<std::string_view> argv = {"XREADGROUP", "GROUP", group_, me_, "COUNT", count};
    if (block_ms >= 0) {
      argv.push_back("BLOCK");
      argv.push_back(block);
    }
    argv.push_back("STREAMS");
    for (const std::string& k : core_->keys) argv.push_back(k);
    for (size_t i = 0; i < core_->keys.size(); ++i) argv.push_back(">");
    const Deadline d = Deadline::AfterMs(core_->options.remote.op_timeout_ms + std::max<int64_t>(block_ms, 0));
    conn_->Append(argv);
    WEFT_RETURN_IF_ERROR(ReadAcks());
    Result<RedisReply> r = conn_->Read(d);
    if (!r.ok()) return Reconnected(r.status());
    if (IsError(*r)) {
      if (r->root().str().rfind("NOGROUP", 0) == 0) {
        // The stream or group was removed under us: make it again, from the start.
        WEFT_RETURN_IF_ERROR(core_->CreateGroup(group_, Start::kOldest, d));
        return Status::Ok();
      }
      return net::RedisError(r->root().str(), core_->Where() + " XREADGROUP");
    }
    auto reply = std::make_shared<RedisReply>(std::move(r).value());
    RedisValue streams = reply->root();
    for (size_t i = 0; i < streams.size(); ++i) {
      RedisValue st = streams[i];
      const std::string_view key = st[0].str();
      for (uint32_t s = 0; s < core_->keys.size(); ++s) {
        if (core_->keys[s] == key) WEFT_RETURN_IF_ERROR(Take(s, st[1], reply));
      }
    }
    return Status::Ok();
  }


  // The descriptor's watcher: XREAD (no group, nothing taken) after the newest entries seen,
  // a slice at a time; any new entry makes the descriptor readable.
  void Watch(std::unique_ptr<RedisConnection> c) {
    // After the newest entry of each shard now, named by its id: "$" would be taken anew by
    // each XREAD, and an entry added between two of them would be missed.
    std::vector<std::string> last(core_->keys.size(), "0-0");
    for (const std::string& k : core_->keys) {
      std::string_view info[] = {"XINFO", "STREAM", k};
      c->Append(info);
    }
    for (uint32_t s = 0; s < core_->keys.size(); ++s) {
      Result<RedisReply> r = c->Read(Deadline::AfterMs(core_->options.remote.op_timeout_ms));
      if (r.ok() && !IsError(*r)) last[s] = std::string(InfoField(r->root(), "last-generated-id").str());
      if (last[s].empty()) last[s] = "0-0";
    }
    while (!closed()) {
      std::vector<std::string_view> argv = {"XREAD", "COUNT", "1", "BLOCK", "100", "STREAMS"};
      for (const std::string& k : core_->keys) argv.push_back(k);
      for (const std::string& l : last) argv.push_back(l);
      Result<RedisReply> r = c->Command(argv, Deadline::AfterMs(core_->options.remote.op_timeout_ms + 100));
      if (!r.ok() || IsError(*r)) {
        bell_.Ring();  // let the owner's Poll see the trouble
        if (c->broken() && !c->Reconnect(Deadline::AfterMs(kBlockSliceMs)).ok()) std::this_thread::sleep_for(std::chrono::milliseconds(kBlockSliceMs));
        continue;
      }
      RedisValue streams = r->root();
      if (streams.size() == 0) continue;
      for (size_t i = 0; i < streams.size(); ++i) {
        RedisValue st = streams[i];
        RedisValue entries = st[1];
        if (entries.size() == 0) continue;
        for (uint32_t s = 0; s < core_->keys.size(); ++s) {
          if (core_->keys[s] == st[0].str()) last[s] = std::string(entries[entries.size() - 1][0].str());
        }
      }
      bell_.Ring();
    }
  }

  std::shared_ptr<RedisCore> core_;
  std::string group_, me_;
  ConsumerOptions options_;
  std::unique_ptr<RedisConnection> conn_;
  std::vector<std::string> claim_cursor_;
  std::vector<std::vector<std::string>> acks_;  // per shard: ids delivered and not acked
  size_t acks_in_flight_ = 0;                   // XACKs sent whose replies are not read yet
  std::vector<uint32_t> all_;
  std::unique_ptr<RedisStreamDedup> dedup_;
  struct Pending {
    Event ev;
    std::string id;
    std::shared_ptr<RedisReply> reply;  // the reply the event views
  };
  std::deque<Pending> backlog_;  // delivered to this member by Redis, not handed out yet
  std::vector<Event> events_;
  std::vector<std::shared_ptr<RedisReply>> held_;  // the replies the batch's events view
  int64_t last_claim_ns_ = INT64_MIN / 2;
  bool done_ = false;
  std::thread watcher_;
};

// ---- the bus -------------------------------------------------------------------------------------

class RedisBus final : public Bus {
 public:
  explicit RedisBus(std::shared_ptr<RedisCore> core) : core_(std::move(core)) {}

  Result<Position> Ingest(ByteView data, Deadline deadline) override {
    WEFT_RETURN_IF_ERROR(CheckEventSize(0, data.size(), core_->options.max_event));
    Position p;
    Result<size_t> n = Append(ThreadShard(shards()), 1, [&](size_t) { return std::pair(ByteView(), data); }, deadline, &p);
    if (!n.ok()) return n.status();
    return p;
  }

  Result<Position> IngestKeyed(ByteView key, ByteView data, Deadline deadline) override {
    if (key.size() > UINT16_MAX) return InvalidArgument("a key has at most 65535 bytes");
    WEFT_RETURN_IF_ERROR(CheckEventSize(key.size(), data.size(), core_->options.max_event));
    Position p;
    Result<size_t> n = Append(ShardOf(key), 1, [&](size_t) { return std::pair(key, data); }, deadline, &p);
    if (!n.ok()) return n.status();
    return p;
  }

  Result<size_t> IngestBatch(std::span<const ByteView> events, Deadline deadline) override {
    if (events.empty()) return size_t{0};
    for (const ByteView& e : events) WEFT_RETURN_IF_ERROR(CheckEventSize(0, e.size(), core_->options.max_event));
    return Append(ThreadShard(shards()), events.size(), [&](size_t i) { return std::pair(ByteView(), events[i]); },
                  deadline, nullptr);
  }

  Result<std::unique_ptr<Consumer>> Subscribe(std::string_view group, const ConsumerOptions& options) override {
    WEFT_RETURN_IF_ERROR(ValidateGroupName(group));
    const Deadline d = Deadline::AfterMs(core_->options.remote.op_timeout_ms);
    WEFT_RETURN_IF_ERROR(core_->CreateGroup(group, options.start, d));
    auto c = core_->Take(d);
    if (!c.ok()) return c.status();
    char host[64] = {};
    ::gethostname(host, sizeof(host) - 1);
    char me[160];
    std::snprintf(me, sizeof(me), "%s.%d.%08" PRIx64, host, static_cast<int>(::getpid()), RandomMember());
    return std::unique_ptr<Consumer>(new RedisConsumer(core_, std::string(group), me, options, std::move(c).value()));
  }

  BusStats Stats() const override;
  uint32_t shards() const override { return static_cast<uint32_t>(core_->keys.size()); }
  const BusOptions& options() const override { return core_->options; }

 private:
  static uint64_t RandomMember() {
    static std::atomic<uint64_t> n{0};
    return (static_cast<uint64_t>(MonotonicNs()) * 0x9E3779B97F4A7C15ull) ^ n.fetch_add(1);
  }

  // XADDs `n` events (`at(i)`: key and data) to shard s, pipelined on one connection, each
  // with its dedup id; returns once Redis acknowledged every one. A broken connection is
  // reconnected and the whole batch sent again with the same ids (the copies are dropped by
  // the consumers' dedup), until the deadline: then kUnavailable, or under drop_newest the
  // batch is discarded and counted.
  template <typename At>
  Result<size_t> Append(uint32_t s, size_t n, At at, Deadline deadline, Position* first_position) {
    RedisCore& c = *core_;
    const RemoteOptions& ro = c.options.remote;
    const uint64_t first = c.nonce->Reserve(n);
    const Deadline until = c.RetryUntil(deadline);
    const bool trim = ro.max_len != 0;
    const std::string max_len = std::to_string(ro.max_len);
    std::vector<std::string> ids(n);
    for (size_t i = 0; i < n; ++i) ids[i] = EventId(c.nonce->nonce(), s, first, static_cast<uint32_t>(i));
    Status last = Status::Ok();
    for (bool fail_fast = c.options.backpressure == Overflow::kFail;;) {
      const Deadline d = Deadline::AfterMs(ro.op_timeout_ms);  // this attempt's
      auto conn = c.Take(d);
      if (conn.ok()) {
        std::vector<std::string_view> argv;
        for (size_t i = 0; i < n; ++i) {
          auto [key, data] = at(i);
          argv.assign({"XADD", c.keys[s]});
          if (trim) {
            argv.push_back("MAXLEN");
            argv.push_back(max_len);
          }
          argv.push_back("*");
          argv.push_back("dedup_id");
          argv.push_back(ids[i]);
          if (!key.empty()) {
            argv.push_back("k");
            argv.push_back(std::string_view(reinterpret_cast<const char*>(key.data()), key.size()));
          }
          argv.push_back("d");
          argv.push_back(std::string_view(reinterpret_cast<const char*>(data.data()), data.size()));
          (*conn)->Append(argv);
        }
        Status st = Status::Ok();
        for (size_t i = 0; i < n && st.ok(); ++i) {
          Result<RedisReply> r = (*conn)->Read(d);
          if (!r.ok()) {
            st = r.status();
          } else if (IsError(*r)) {
            // The server refused (out of memory, a key of another type): not a connection
            // fault; the events from here on are not in the stream.
            Status e = net::RedisError(r->root().str(), c.Where() + " XADD " + c.keys[s]);
            for (++i; i < n; ++i) (void)(*conn)->Read(d);
            c.Give(std::move(conn).value());
            c.nonce->Failed(first, n);
            return e;
          } else if (i == 0 && first_position != nullptr) {
            Result<uint64_t> off = ParseEntryId(r->root().str());
            if (!off.ok()) st = off.status();
            else *first_position = Position{s, *off};
          }
        }
        if (st.ok()) {
          c.Give(std::move(conn).value());
          WEFT_RETURN_IF_ERROR(c.nonce->Acknowledged(first, n));
          return n;
        }
        last = st;
      } else {
        last = conn.status();
        if (last.code() == Code::kUnauthenticated || last.code() == Code::kPermissionDenied) {
          c.nonce->Failed(first, n);
          return last;
        }
      }
      if (fail_fast || until.Expired()) break;
    }
    c.nonce->Failed(first, n);
    if (c.options.backpressure == Overflow::kDropNewest) {
      c.dropped_newest.fetch_add(n, std::memory_order_relaxed);
      if (first_position != nullptr) *first_position = Position{s, kNoOffset};
      return n;
    }
    return Status(Code::kUnavailable, c.Where() + ": the batch was not acknowledged by the deadline: " + last.message());
  }

  std::shared_ptr<RedisCore> core_;
};

BusStats RedisBus::Stats() const {
  RedisCore& c = *core_;
  BusStats out;
  out.shards = shards();
  out.dropped_newest = c.dropped_newest.load(std::memory_order_relaxed);
  const Deadline d = Deadline::AfterMs(c.options.remote.op_timeout_ms);
  std::vector<GroupStats> groups;
  for (uint32_t s = 0; s < shards(); ++s) {
    ShardStats ss;
    std::string_view info[] = {"XINFO", "STREAM", c.keys[s]};
    Result<RedisReply> r = c.Call(info, d);
    uint64_t trimmed = 0;
    if (r.ok() && !IsError(*r)) {
      RedisValue v = r->root();
      const uint64_t length = static_cast<uint64_t>(InfoField(v, "length").integer());
      const uint64_t added = static_cast<uint64_t>(InfoField(v, "entries-added").integer());
      ss.ingested = added;
      ss.depth_bytes = length;  // events, on redis:
      trimmed = added > length ? added - length : 0;
      ss.dropped_oldest = c.options.remote.max_len != 0 ? trimmed : 0;
      ss.tail = OffsetOr0(InfoField(v, "last-generated-id").str()) + 1;
      RedisValue firsts = InfoField(v, "first-entry");
      ss.oldest = firsts.size() > 0 ? OffsetOr0(firsts[0].str()) : ss.tail;
    }
    std::string_view ginfo[] = {"XINFO", "GROUPS", c.keys[s]};
    Result<RedisReply> g = c.Call(ginfo, d);
    if (g.ok() && !IsError(*g)) {
      RedisValue list = g->root();
      for (size_t i = 0; i < list.size(); ++i) {
        RedisValue gi = list[i];
        const std::string name(InfoField(gi, "name").str());
        auto it = std::find_if(groups.begin(), groups.end(), [&](const GroupStats& x) { return x.name == name; });
        if (it == groups.end()) {
          groups.push_back(GroupStats{});
          it = groups.end() - 1;
          it->name = name;
          it->shards.resize(shards());
        }
        GroupShardStats& gs = it->shards[s];
        const uint64_t read = static_cast<uint64_t>(std::max<int64_t>(0, InfoField(gi, "entries-read").integer()));
        const uint64_t pending = static_cast<uint64_t>(InfoField(gi, "pending").integer());
        gs.next = OffsetOr0(InfoField(gi, "last-delivered-id").str()) + 1;
        gs.delivered = read;
        gs.lag_bytes = ss.ingested > read ? ss.ingested - read : 0;  // events, on redis:
        gs.committed = gs.next;
        if (pending > 0) gs.lag_bytes += pending;
        it->members = std::max<uint32_t>(it->members, static_cast<uint32_t>(InfoField(gi, "consumers").integer()));
        it->delivered += gs.delivered;
        it->lag_bytes += gs.lag_bytes;
      }
    }
    out.ingested += ss.ingested;
    out.dropped_oldest += ss.dropped_oldest;
    out.per_shard.push_back(ss);
  }
  out.groups = std::move(groups);
  return out;
}

}  // namespace

Status UnlinkRedisBus(std::string_view url_text) {
  Result<net::RedisUrl> url = net::ParseRedisUrl(url_text);
  if (!url.ok()) return url.status();
  WEFT_RETURN_IF_ERROR(CheckRemoteName(url->path, "bus name", url_text, true));
  auto c = RedisConnection::Connect(url->options);
  if (!c.ok()) return c.status();
  const Deadline d = Deadline::AfterMs(url->options.connect_timeout_ms * 2);
  const std::string meta_key = "weft:bus:" + url->path + ":meta";
  std::string_view get[] = {"GET", meta_key};
  Result<RedisReply> r = (*c)->Command(get, d);
  if (!r.ok()) return r.status();
  if (IsError(*r)) return net::RedisError(r->root().str(), "bus '" + std::string(url_text) + "' GET " + meta_key);
  if (r->root().is_nil()) return Status(Code::kNotFound, "no bus at '" + std::string(url_text) + "'");
  Result<RemoteShape> shape = ParseShape(r->root().str(), kMostMaxEvent, "bus '" + std::string(url_text) + "': " + meta_key);
  if (!shape.ok()) return shape.status();
  std::vector<std::string> keys = {meta_key};
  for (uint32_t s = 0; s < shape->shards; ++s) keys.push_back("weft:bus:" + url->path + ":" + std::to_string(s));
  std::vector<std::string_view> del = {"DEL"};
  for (const std::string& k : keys) del.push_back(k);
  r = (*c)->Command(del, d);
  if (!r.ok()) return r.status();
  if (IsError(*r)) return net::RedisError(r->root().str(), "bus '" + std::string(url_text) + "' DEL");
  return Status::Ok();
}

Result<std::unique_ptr<Bus>> OpenRedisBus(BusOptions o) {
  Result<net::RedisUrl> url = net::ParseRedisUrl(o.url);
  if (!url.ok()) return url.status();
  WEFT_RETURN_IF_ERROR(CheckRemoteName(url->path, "bus name", o.url, true));
  const RemoteOptions& ro = o.remote;
  if (ro.op_timeout_ms <= 0 || ro.claim_idle_ms <= 0) return InvalidArgument("op_timeout_ms and claim_idle_ms must be positive");
  if (ro.max_len != 0 && o.backpressure != Overflow::kDropOldest) {
    return InvalidArgument(std::string("bus '") + o.url + "': a redis: stream bounded by max_len keeps its newest events " +
                           "(XADD MAXLEN), so backpressure must be drop_oldest (the drops are counted per group), not " +
                           OverflowName(o.backpressure));
  }
  if (o.max_event == 0) o.max_event = kDefaultMaxEvent;
  if (o.max_event > kMostMaxEvent) return InvalidArgument("max_event above Redis's largest string (512 MiB)");

  auto core = std::make_shared<RedisCore>();
  core->server = url->options;
  core->server.connect_timeout_ms = std::min<int64_t>(core->server.connect_timeout_ms, ro.op_timeout_ms);
  core->name = url->path;
  core->options = o;
  if (ro.nonce_path.empty()) {
    core->nonce = ProducerNonce::Ephemeral();
  } else {
    auto n = ProducerNonce::Open(ro.nonce_path);
    if (!n.ok()) return n.status();
    core->nonce = std::move(n).value();
  }
  // The bus's shape: set by the first opener, adopted by the others.
  const Deadline d = Deadline::AfterMs(ro.op_timeout_ms);
  const std::string meta_key = "weft:bus:" + core->name + ":meta";
  const std::string mine = FormatShape({o.shards, o.max_event, o.timestamps});
  std::string_view set[] = {"SET", meta_key, mine, "NX"};
  std::string_view get[] = {"GET", meta_key};
  if (o.create) {
    Result<RedisReply> r = core->Call(set, d);
    if (!r.ok()) return r.status();
    if (IsError(*r)) return net::RedisError(r->root().str(), core->Where() + " SET " + meta_key);
  }
  Result<RedisReply> r = core->Call(get, d);
  if (!r.ok()) return r.status();
  if (IsError(*r)) return net::RedisError(r->root().str(), core->Where() + " GET " + meta_key);
  if (r->root().is_nil()) return Status(Code::kNotFound, "no bus at '" + o.url + "' (" + meta_key + " is absent)");
  Result<RemoteShape> shape = ParseShape(r->root().str(), kMostMaxEvent, core->Where() + ": " + meta_key);
  if (!shape.ok()) return shape.status();
  WEFT_RETURN_IF_ERROR(AdoptShape(*shape, &core->options));
  const uint32_t shards = shape->shards;
  for (uint32_t s = 0; s < shards; ++s) core->keys.push_back("weft:bus:" + core->name + ":" + std::to_string(s));
  for (const std::string& g : o.groups) WEFT_RETURN_IF_ERROR(core->CreateGroup(g, Start::kOldest, d));
  return std::unique_ptr<Bus>(new RedisBus(core));
}

}  // namespace weft::bus::internal
