// nats://host:port[,host:port...]/<name>: the bus on NATS JetStream (docs/scale-out.md). The
// bus is the stream "WEFT_<name>" over the subjects "weft.bus.<name>.<shard>", its shape in the
// stream's description (set by the first opener). An event is a message on its shard's
// subject: its key (if any) then its data, with the header "Weft-Key" giving the key's length
// and "Nats-Msg-Id" its dedup id (weft/bus/dedup.h), which the server drops within the
// stream's duplicate window. A bus group is a durable pull consumer of that name with explicit
// acks; a member pulls from it; an event not acked within claim_idle_ms is delivered again to
// a member. Positions are stream sequence numbers.
#include <nats/nats.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <thread>
#include <vector>

#include "internal/backends.h"
#include "internal/groups.h"
#include "internal/remote.h"
#include "weft/bus/bus.h"
#include "weft/bus/dedup.h"
#include "weft/core/mutex.h"
#include "weft/net/nats.h"

namespace weft::bus::internal {

namespace {

constexpr uint32_t kDefaultMaxEvent = 1u << 20;  // nats-server's default max_payload
constexpr int64_t kSliceMs = 100;                // a blocked fetch checks Interrupt this often
constexpr int kMaxPending = 4096;                // async publishes in flight per publisher
constexpr int64_t kAttemptMs = 2000;             // the longest wait for one attempt's acks

// A JetStream context used by one producing call at a time, with the errors of its
// asynchronous publishes.
struct Publisher {
  jsCtx* js = nullptr;
  std::atomic<int> errors{0};
  Mutex mu;
  std::string last_error WEFT_GUARDED_BY(mu);
  ~Publisher() {
    if (js != nullptr) jsCtx_Destroy(js);
  }
};

void OnPublishError(jsCtx*, jsPubAckErr* pae, void* closure) {
  auto* p = static_cast<Publisher*>(closure);
  p->errors.fetch_add(1, std::memory_order_relaxed);
  MutexLock lock(p->mu);
  p->last_error = std::string(natsStatus_GetText(pae->Err)) + (pae->ErrText != nullptr ? std::string(": ") + pae->ErrText : "");
}

struct NatsCore {
  BusOptions options;
  std::string name, stream, filter;
  std::vector<std::string> subjects;  // per shard
  std::unique_ptr<net::NatsConnection> conn;
  jsCtx* js = nullptr;  // for management calls (thread-safe in nats.c)
  std::unique_ptr<ProducerNonce> nonce;
  std::atomic<uint64_t> dropped_newest{0};

  Mutex pool_mu;
  std::vector<std::unique_ptr<Publisher>> pool WEFT_GUARDED_BY(pool_mu);

  ~NatsCore() {
    {
      MutexLock lock(pool_mu);
      pool.clear();
    }
    if (js != nullptr) jsCtx_Destroy(js);
  }

  std::string Where() const { return "bus '" + options.url + "'"; }
  // Until when a failed round trip is tried again: the caller's deadline, or op_timeout_ms for
  // Deadline::Never. Each attempt has op_timeout_ms of its own, even under Deadline::Now.
  Deadline RetryUntil(Deadline d) const { return d.is_never() ? Deadline::AfterMs(options.remote.op_timeout_ms) : d; }

  jsOptions JsOptions(int64_t wait_ms) const {
    jsOptions o;
    jsOptions_Init(&o);
    o.Wait = std::max<int64_t>(1, wait_ms);
    return o;
  }

  Result<std::unique_ptr<Publisher>> TakePublisher() {
    {
      MutexLock lock(pool_mu);
      if (!pool.empty()) {
        auto p = std::move(pool.back());
        pool.pop_back();
        return p;
      }
    }
    auto p = std::make_unique<Publisher>();
    jsOptions o = JsOptions(options.remote.op_timeout_ms);
    o.PublishAsync.MaxPending = kMaxPending;
    o.PublishAsync.ErrHandler = OnPublishError;
    o.PublishAsync.ErrHandlerClosure = p.get();
    const natsStatus s = natsConnection_JetStream(&p->js, conn->raw(), &o);
    if (s != NATS_OK) return net::NatsStatus(s, 0, Where() + " JetStream context");
    return p;
  }
  void GivePublisher(std::unique_ptr<Publisher> p) {
    MutexLock lock(pool_mu);
    pool.push_back(std::move(p));
  }

  // The durable consumer of group `g` (made if absent; an existing one stays as it is).
  Status CreateGroup(const std::string& g, Start start) {
    WEFT_RETURN_IF_ERROR(CheckRemoteName(g, "group name", options.url, false));
    jsOptions o = JsOptions(options.remote.op_timeout_ms);
    jsConsumerInfo* ci = nullptr;
    jsErrCode err = static_cast<jsErrCode>(0);
    natsStatus s = js_GetConsumerInfo(&ci, js, stream.c_str(), g.c_str(), &o, &err);
    if (s == NATS_OK) {
      jsConsumerInfo_Destroy(ci);
      return Status::Ok();
    }
    if (s != NATS_NOT_FOUND) return net::NatsStatus(s, err, Where() + " consumer " + g);
    jsConsumerConfig cc;
    jsConsumerConfig_Init(&cc);
    cc.Durable = g.c_str();
    cc.AckPolicy = js_AckExplicit;
    cc.AckWait = options.remote.claim_idle_ms * 1'000'000;
    cc.DeliverPolicy = start == Start::kLatest ? js_DeliverNew : js_DeliverAll;
    cc.FilterSubject = filter.c_str();
    cc.MaxAckPending = 1 << 20;
    cc.MaxDeliver = -1;
    err = static_cast<jsErrCode>(0);
    s = js_AddConsumer(&ci, js, stream.c_str(), &cc, &o, &err);
    if (s == NATS_OK) jsConsumerInfo_Destroy(ci);
    if (s != NATS_OK && err != JSConsumerNameExistErr) return net::NatsStatus(s, err, Where() + " add consumer " + g);
    return Status::Ok();
  }
};

// ---- consumers -----------------------------------------------------------------------------------

class NatsConsumer final : public RemoteMember {
 public:
  NatsConsumer(std::shared_ptr<NatsCore> core, std::string group, const ConsumerOptions& o, natsSubscription* sub)
      : core_(std::move(core)), group_(std::move(group)), options_(o), sub_(sub) {
    for (uint32_t s = 0; s < core_->subjects.size(); ++s) all_.push_back(s);
  }
  ~NatsConsumer() override { Close().IgnoreError(); }

  Result<std::span<const Event>> Poll(size_t limit, Deadline deadline) override {
    if (closed()) return Status(Code::kClosed, "consumer closed");
    if (limit == 0) return std::span<const Event>();
    if (options_.auto_commit) WEFT_RETURN_IF_ERROR(Commit());
    Release();
    bell_.Drain();
    for (;;) {
      if (closed()) return Status(Code::kClosed, "consumer closed");
      const int64_t left_ms = deadline.RemainingNs() / 1'000'000;
      const bool wait = !deadline.is_now() && left_ms > 0;
      natsMsgList list{};
      natsStatus s;
      const int batch = static_cast<int>(std::min<size_t>(limit, 1 << 16));
      // nats.c's Fetch asks without waiting first, then waits for the rest: fewer round trips
      // than one request that waits. Without a wait, the shortest timeout it takes (a request
      // with NoWait waits for its expiry when there is nothing).
      jsErrCode err = static_cast<jsErrCode>(0);
      s = natsSubscription_Fetch(&list, sub_, batch, wait ? std::min<int64_t>(left_ms, kSliceMs) : 1, &err);
      if (s == NATS_OK && list.Count > 0) {
        WEFT_RETURN_IF_ERROR(Take(list));
        if (!events_.empty()) return std::span<const Event>(events_);
        continue;
      }
      natsMsgList_Destroy(&list);
      if (s != NATS_OK && s != NATS_TIMEOUT && s != NATS_NOT_FOUND) {
        return net::NatsStatus(s, 0, core_->Where() + " fetch for group " + group_);
      }
      if (!wait || deadline.Expired()) {
        return Status(deadline.is_now() ? Code::kWouldBlock : Code::kTimeout, core_->Where() + ": no event by the deadline");
      }
    }
  }

  Status Commit() override {
    // Acks go out in order on the connection; nats.c sends them without waiting for replies
    // (an ack lost with the connection means the event comes again: at-least-once).
    Status out = Status::Ok();
    for (natsMsg* m : delivered_) {
      const natsStatus s = natsMsg_Ack(m, nullptr);
      if (s != NATS_OK && out.ok()) out = net::NatsStatus(s, 0, core_->Where() + " ack");
    }
    delivered_.clear();
    return out;
  }

  std::vector<uint32_t> shards() const override { return all_; }
  const std::string& group() const override { return group_; }

  Status Close() override {
    if (done_) return Status::Ok();
    done_ = true;
    Status s = Status::Ok();
    if (options_.auto_commit) s = Commit();
    // The acks are on their way: see them leave before the member does.
    natsConnection_FlushTimeout(core_->conn->raw(), core_->options.remote.op_timeout_ms);
    closed_.store(true, std::memory_order_release);
    if (watch_ != nullptr) {
      // Drained, no callback of the watcher runs any more: then the descriptor may close.
      if (natsSubscription_Drain(watch_) == NATS_OK) natsSubscription_WaitForDrainCompletion(watch_, 2000);
      natsSubscription_Destroy(watch_);
      watch_ = nullptr;
    }
    Release();
    if (sub_ != nullptr) {
      natsSubscription_Destroy(sub_);  // the durable consumer stays for the group
      sub_ = nullptr;
    }
    bell_.Close();
    return s;
  }

 private:
  Status StartWatcher() override {
    // A plain subscription to the bus's subjects: every publish rings the descriptor (its
    // messages are dropped at once; a slow watcher only loses rings it did not need).
    const natsStatus s = natsConnection_Subscribe(&watch_, core_->conn->raw(), core_->filter.c_str(), OnPublish, this);
    if (s != NATS_OK) return net::NatsStatus(s, 0, core_->Where() + " watch");
    natsSubscription_SetPendingLimits(watch_, 1024, 1 << 20);
    return Status::Ok();
  }

  static void OnPublish(natsConnection*, natsSubscription*, natsMsg* m, void* closure) {
    natsMsg_Destroy(m);
    static_cast<NatsConsumer*>(closure)->bell_.Ring();
  }

  Status Take(natsMsgList& list) {
    lists_.push_back(list);  // kept until the next poll: the events view the messages
    for (int i = 0; i < list.Count; ++i) {
      natsMsg* m = list.Msgs[i];
      const char* subject = natsMsg_GetSubject(m);
      const std::string_view subj = subject != nullptr ? subject : "";
      const size_t dot = subj.rfind('.');
      uint32_t shard = 0;
      auto [p, ec] = std::from_chars(subj.data() + dot + 1, subj.data() + subj.size(), shard);
      if (dot == std::string_view::npos || ec != std::errc() || shard >= core_->subjects.size()) {
        natsMsg_Term(m, nullptr);  // not one of ours: never deliver it again
        continue;
      }
      jsMsgMetaData* meta = nullptr;
      if (natsMsg_GetMetaData(&meta, m) != NATS_OK) return Status(Code::kCorrupt, core_->Where() + ": a message without metadata");
      const uint64_t seq = meta->Sequence.Stream;
      const int64_t ts = meta->Timestamp;
      jsMsgMetaData_Destroy(meta);
      const char* data = natsMsg_GetData(m);
      const size_t len = static_cast<size_t>(natsMsg_GetDataLength(m));
      size_t key = 0;
      const char* klen = nullptr;
      if (natsMsgHeader_Get(m, "Weft-Key", &klen) == NATS_OK && klen != nullptr) {
        auto [e, kec] = std::from_chars(klen, klen + std::strlen(klen), key);
        if (kec != std::errc() || key > len) return Status(Code::kCorrupt, core_->Where() + ": a message with a bad Weft-Key header");
      }
      Event ev;
      ev.position = Position{shard, seq};
      ev.key = ByteView(reinterpret_cast<const uint8_t*>(data), key);
      ev.data = ByteView(reinterpret_cast<const uint8_t*>(data) + key, len - key);
      ev.timestamp_ns = core_->options.timestamps ? ts : 0;
      events_.push_back(ev);
      delivered_.push_back(m);
    }
    return Status::Ok();
  }

  void Release() {
    events_.clear();
    for (natsMsgList& l : lists_) natsMsgList_Destroy(&l);
    lists_.clear();
  }

  std::shared_ptr<NatsCore> core_;
  std::string group_;
  ConsumerOptions options_;
  natsSubscription* sub_;
  natsSubscription* watch_ = nullptr;
  std::vector<uint32_t> all_;
  std::vector<Event> events_;
  std::vector<natsMsgList> lists_;
  std::vector<natsMsg*> delivered_;  // handed out, not acked yet (they live in lists_)
  bool done_ = false;
};

// ---- the bus -------------------------------------------------------------------------------------

class NatsBus final : public Bus {
 public:
  explicit NatsBus(std::shared_ptr<NatsCore> core) : core_(std::move(core)) {}

  Result<Position> Ingest(ByteView data, Deadline deadline) override {
    WEFT_RETURN_IF_ERROR(CheckEventSize(0, data.size(), core_->options.max_event));
    return PublishOne(ThreadShard(shards()), ByteView(), data, deadline);
  }

  Result<Position> IngestKeyed(ByteView key, ByteView data, Deadline deadline) override {
    if (key.size() > UINT16_MAX) return InvalidArgument("a key has at most 65535 bytes");
    WEFT_RETURN_IF_ERROR(CheckEventSize(key.size(), data.size(), core_->options.max_event));
    return PublishOne(ShardOf(key), key, data, deadline);
  }

  Result<size_t> IngestBatch(std::span<const ByteView> events, Deadline deadline) override;

  Result<std::unique_ptr<Consumer>> Subscribe(std::string_view group, const ConsumerOptions& options) override {
    const std::string g(group);
    WEFT_RETURN_IF_ERROR(core_->CreateGroup(g, options.start));
    jsOptions o = core_->JsOptions(core_->options.remote.op_timeout_ms);
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = core_->stream.c_str();
    so.Consumer = g.c_str();
    natsSubscription* sub = nullptr;
    jsErrCode err = static_cast<jsErrCode>(0);
    const natsStatus s = js_PullSubscribe(&sub, core_->js, core_->filter.c_str(), g.c_str(), &o, &so, &err);
    if (s != NATS_OK) return net::NatsStatus(s, err, core_->Where() + " subscribe to group " + g);
    return std::unique_ptr<Consumer>(new NatsConsumer(core_, g, options, sub));
  }

  BusStats Stats() const override;
  uint32_t shards() const override { return static_cast<uint32_t>(core_->subjects.size()); }
  const BusOptions& options() const override { return core_->options; }

 private:
  // One message: its key then its data, with its dedup id and the key's length.
  Result<natsMsg*> Message(uint32_t s, ByteView key, ByteView data, const std::string& id) {
    natsMsg* m = nullptr;
    std::string body;
    const char* bytes = reinterpret_cast<const char*>(data.data());
    size_t len = data.size();
    if (!key.empty()) {
      body.assign(reinterpret_cast<const char*>(key.data()), key.size());
      body.append(reinterpret_cast<const char*>(data.data()), data.size());
      bytes = body.data();
      len = body.size();
    }
    natsStatus st = natsMsg_Create(&m, core_->subjects[s].c_str(), nullptr, bytes, static_cast<int>(len));
    if (st == NATS_OK) st = natsMsgHeader_Set(m, "Nats-Msg-Id", id.c_str());
    if (st == NATS_OK && !key.empty()) st = natsMsgHeader_Set(m, "Weft-Key", std::to_string(key.size()).c_str());
    if (st != NATS_OK) {
      natsMsg_Destroy(m);
      return net::NatsStatus(st, 0, core_->Where() + " message");
    }
    return m;
  }

  // Publishes one event and waits for its ack (the stream sequence is its position); retried
  // with the same id (the server drops a copy) until the deadline.
  Result<Position> PublishOne(uint32_t s, ByteView key, ByteView data, Deadline deadline) {
    NatsCore& c = *core_;
    const uint64_t first = c.nonce->Reserve(1);
    const std::string id = EventId(c.nonce->nonce(), s, first, 0);
    const Deadline d = c.RetryUntil(deadline);
    Status last = Status::Ok();
    do {
      Result<natsMsg*> m = Message(s, key, data, id);
      if (!m.ok()) {
        c.nonce->Failed(first, 1);
        return m.status();
      }
      jsPubOptions po;
      jsPubOptions_Init(&po);
      po.MaxWait = std::min<int64_t>(c.options.remote.op_timeout_ms, kAttemptMs);
      jsPubAck* pa = nullptr;
      jsErrCode err = static_cast<jsErrCode>(0);
      const natsStatus st = js_PublishMsg(&pa, c.js, *m, &po, &err);
      natsMsg_Destroy(*m);
      if (st == NATS_OK) {
        const uint64_t seq = pa->Sequence;
        jsPubAck_Destroy(pa);
        WEFT_RETURN_IF_ERROR(c.nonce->Acknowledged(first, 1));
        return Position{s, seq};
      }
      last = net::NatsStatus(st, err, c.Where() + " publish");
      if (last.code() != Code::kUnavailable && last.code() != Code::kTimeout && st != NATS_NO_RESPONDERS) break;
      if (c.options.backpressure == Overflow::kFail) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(std::min<int64_t>(20, d.RemainingNs() / 1'000'000 + 1)));
    } while (!d.Expired());
    c.nonce->Failed(first, 1);
    if (c.options.backpressure == Overflow::kDropNewest && (last.code() == Code::kUnavailable || last.code() == Code::kTimeout)) {
      c.dropped_newest.fetch_add(1, std::memory_order_relaxed);
      return Position{s, kNoOffset};
    }
    if (last.code() == Code::kTimeout) return Status(Code::kUnavailable, last.message());
    return last;
  }

  std::shared_ptr<NatsCore> core_;
};

// Publishes the batch asynchronously (nats.c keeps up to kMaxPending in flight), then waits
// for every ack. Any failure or a missing ack sends the whole batch again with the same ids
// (the server drops what it already has), until the deadline.
Result<size_t> NatsBus::IngestBatch(std::span<const ByteView> events, Deadline deadline) {
  if (events.empty()) return size_t{0};
  for (const ByteView& e : events) WEFT_RETURN_IF_ERROR(CheckEventSize(0, e.size(), core_->options.max_event));
  NatsCore& c = *core_;
  const uint32_t s = ThreadShard(shards());
  const size_t n = events.size();
  const uint64_t first = c.nonce->Reserve(n);
  const Deadline d = c.RetryUntil(deadline);
  auto taken = c.TakePublisher();
  if (!taken.ok()) {
    c.nonce->Failed(first, n);
    return taken.status();
  }
  std::unique_ptr<Publisher> pub = std::move(taken).value();
  std::string id;
  Status last = Status::Ok();
  do {
    pub->errors.store(0, std::memory_order_relaxed);
    // Acks that do not come within an attempt (a server that died with them) are not waited
    // for longer: the batch goes again.
    const int64_t attempt_ms = std::min<int64_t>(c.options.remote.op_timeout_ms, kAttemptMs);
    natsStatus st = NATS_OK;
    for (size_t i = 0; i < n && st == NATS_OK; ++i) {
      id = EventId(c.nonce->nonce(), s, first, static_cast<uint32_t>(i));
      jsPubOptions po;
      jsPubOptions_Init(&po);
      po.MsgId = id.c_str();
      po.MaxWait = attempt_ms;
      st = js_PublishAsync(pub->js, c.subjects[s].c_str(), events[i].data(), static_cast<int>(events[i].size()), &po);
    }
    if (st == NATS_OK) {
      jsPubOptions po;
      jsPubOptions_Init(&po);
      po.MaxWait = attempt_ms;
      st = js_PublishAsyncComplete(pub->js, &po);
    }
    if (st == NATS_OK && pub->errors.load(std::memory_order_relaxed) == 0) {
      c.GivePublisher(std::move(pub));
      WEFT_RETURN_IF_ERROR(c.nonce->Acknowledged(first, n));
      return n;
    }
    // What is still in flight is dropped here and sent again.
    natsMsgList pending{};
    if (js_PublishAsyncGetPendingList(&pending, pub->js) == NATS_OK) natsMsgList_Destroy(&pending);
    if (st != NATS_OK) {
      last = net::NatsStatus(st, 0, c.Where() + " publish");
    } else {
      MutexLock lock(pub->mu);
      last = Status(Code::kUnavailable, c.Where() + " publish: " + pub->last_error);
    }
    if (c.options.backpressure == Overflow::kFail) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(std::min<int64_t>(20, d.RemainingNs() / 1'000'000 + 1)));
  } while (!d.Expired());
  c.GivePublisher(std::move(pub));
  c.nonce->Failed(first, n);
  if (c.options.backpressure == Overflow::kDropNewest) {
    c.dropped_newest.fetch_add(n, std::memory_order_relaxed);
    return n;
  }
  return Status(Code::kUnavailable, c.Where() + ": the batch was not acknowledged by the deadline: " + last.message());
}

BusStats NatsBus::Stats() const {
  NatsCore& c = *core_;
  BusStats out;
  out.shards = shards();
  out.dropped_newest = c.dropped_newest.load(std::memory_order_relaxed);
  out.per_shard.resize(shards());
  jsOptions o = c.JsOptions(c.options.remote.op_timeout_ms);
  o.Stream.Info.SubjectsFilter = c.filter.c_str();
  jsStreamInfo* si = nullptr;
  jsErrCode err = static_cast<jsErrCode>(0);
  if (js_GetStreamInfo(&si, c.js, c.stream.c_str(), &o, &err) == NATS_OK) {
    out.ingested = si->State.LastSeq;  // sequences count every message the stream took
    if (si->State.Subjects != nullptr) {
      for (int i = 0; i < si->State.Subjects->Count; ++i) {
        const jsStreamStateSubject& sub = si->State.Subjects->List[i];
        for (uint32_t s = 0; s < shards(); ++s) {
          if (c.subjects[s] == sub.Subject) out.per_shard[s].depth_bytes = sub.Msgs;  // events, on nats:
        }
      }
    }
    for (ShardStats& ss : out.per_shard) {
      ss.tail = si->State.LastSeq + 1;
      ss.oldest = si->State.FirstSeq;
    }
    const uint64_t held = si->State.Msgs;
    out.dropped_oldest = c.options.remote.max_len != 0 && out.ingested > held ? out.ingested - held : 0;
    jsStreamInfo_Destroy(si);
  }
  jsConsumerNamesList* names = nullptr;
  if (js_ConsumerNames(&names, c.js, c.stream.c_str(), &o, &err) == NATS_OK) {
    for (int i = 0; i < names->Count; ++i) {
      jsConsumerInfo* ci = nullptr;
      if (js_GetConsumerInfo(&ci, c.js, c.stream.c_str(), names->List[i], &o, &err) != NATS_OK) continue;
      GroupStats g;
      g.name = names->List[i];
      g.members = static_cast<uint32_t>(ci->NumWaiting);  // members pulling now
      g.delivered = ci->Delivered.Stream;
      g.lag_bytes = ci->NumPending + static_cast<uint64_t>(ci->NumAckPending);  // events, on nats:
      GroupShardStats gs;
      gs.committed = ci->AckFloor.Stream + 1;
      gs.next = ci->Delivered.Stream + 1;
      gs.lag_bytes = g.lag_bytes;
      gs.delivered = g.delivered;
      g.shards.assign(shards(), gs);  // one consumer serves every shard of the group
      out.groups.push_back(std::move(g));
      jsConsumerInfo_Destroy(ci);
    }
    jsConsumerNamesList_Destroy(names);
  }
  return out;
}

}  // namespace

Status UnlinkNatsBus(std::string_view url_text) {
  Result<net::NatsUrl> url = net::ParseNatsUrl(url_text);
  if (!url.ok()) return url.status();
  WEFT_RETURN_IF_ERROR(CheckRemoteName(url->path, "bus name", url_text, false));
  auto conn = net::NatsConnection::Connect(url->options);
  if (!conn.ok()) return conn.status();
  jsCtx* js = nullptr;
  natsStatus s = natsConnection_JetStream(&js, (*conn)->raw(), nullptr);
  if (s != NATS_OK) return net::NatsStatus(s, 0, "bus '" + std::string(url_text) + "' JetStream context");
  const std::string stream = "WEFT_" + url->path;
  jsErrCode err = static_cast<jsErrCode>(0);
  s = js_DeleteStream(js, stream.c_str(), nullptr, &err);
  jsCtx_Destroy(js);
  if (s != NATS_OK) return net::NatsStatus(s, err, "bus '" + std::string(url_text) + "' delete stream " + stream);
  return Status::Ok();
}

Result<std::unique_ptr<Bus>> OpenNatsBus(BusOptions o) {
  Result<net::NatsUrl> url = net::ParseNatsUrl(o.url);
  if (!url.ok()) return url.status();
  WEFT_RETURN_IF_ERROR(CheckRemoteName(url->path, "bus name", o.url, false));
  const RemoteOptions& ro = o.remote;
  if (ro.op_timeout_ms <= 0 || ro.claim_idle_ms <= 0) return InvalidArgument("op_timeout_ms and claim_idle_ms must be positive");
  if (ro.dedup_window_ms <= 0) return InvalidArgument("dedup_window_ms must be positive");
  if (ro.replicas < 1 || ro.replicas > 5) return InvalidArgument("replicas: 1 to 5 (JetStream's limit)");
  if (ro.max_len != 0 && o.backpressure != Overflow::kDropOldest) {
    return InvalidArgument(std::string("bus '") + o.url + "': a nats: stream bounded by max_len keeps its newest events " +
                           "per shard (MaxMsgsPerSubject, discard old), so backpressure must be drop_oldest, not " +
                           OverflowName(o.backpressure));
  }
  if (o.max_event == 0) o.max_event = kDefaultMaxEvent;
  for (const std::string& g : o.groups) WEFT_RETURN_IF_ERROR(CheckRemoteName(g, "group name", o.url, false));

  auto core = std::make_shared<NatsCore>();
  core->name = url->path;
  core->stream = "WEFT_" + core->name;
  core->filter = "weft.bus." + core->name + ".*";
  core->options = o;
  if (ro.nonce_path.empty()) {
    core->nonce = ProducerNonce::Ephemeral();
  } else {
    auto n = ProducerNonce::Open(ro.nonce_path);
    if (!n.ok()) return n.status();
    core->nonce = std::move(n).value();
  }
  net::NatsOptions no = url->options;
  no.connect_timeout_ms = std::min<int64_t>(no.connect_timeout_ms, ro.op_timeout_ms);
  auto conn = net::NatsConnection::Connect(no);
  if (!conn.ok()) return Status(conn.status().code(), core->Where() + ": " + conn.status().message());
  core->conn = std::move(conn).value();
  jsOptions jo = core->JsOptions(ro.op_timeout_ms);
  natsStatus s = natsConnection_JetStream(&core->js, core->conn->raw(), &jo);
  if (s != NATS_OK) return net::NatsStatus(s, 0, core->Where() + " JetStream context");

  // The stream: made by the first opener with this shape; later opens adopt its shape.
  jsStreamInfo* si = nullptr;
  jsErrCode err = static_cast<jsErrCode>(0);
  s = js_GetStreamInfo(&si, core->js, core->stream.c_str(), &jo, &err);
  if (s == NATS_NOT_FOUND || err == JSStreamNotFoundErr) {
    if (!o.create) return Status(Code::kNotFound, "no bus at '" + o.url + "' (no stream " + core->stream + ")");
    const std::string desc = FormatShape({o.shards, o.max_event, o.timestamps});
    const char* subjects[] = {core->filter.c_str()};
    jsStreamConfig cfg;
    jsStreamConfig_Init(&cfg);
    cfg.Name = core->stream.c_str();
    cfg.Description = desc.c_str();
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    cfg.Storage = js_FileStorage;
    cfg.Replicas = ro.replicas;
    cfg.Duplicates = ro.dedup_window_ms * 1'000'000;
    cfg.MaxMsgsPerSubject = ro.max_len != 0 ? static_cast<int64_t>(ro.max_len) : -1;
    cfg.Discard = js_DiscardOld;
    cfg.MaxMsgSize = static_cast<int32_t>(std::min<uint64_t>(INT32_MAX, uint64_t{o.max_event} + 65536));
    err = static_cast<jsErrCode>(0);
    s = js_AddStream(&si, core->js, &cfg, &jo, &err);
    if (s != NATS_OK && err != JSStreamNameExistErr) return net::NatsStatus(s, err, core->Where() + " add stream " + core->stream);
    if (s != NATS_OK) {
      err = static_cast<jsErrCode>(0);
      s = js_GetStreamInfo(&si, core->js, core->stream.c_str(), &jo, &err);
    }
  }
  if (s != NATS_OK) return net::NatsStatus(s, err, core->Where() + " stream " + core->stream);
  const std::string desc = si->Config != nullptr && si->Config->Description != nullptr ? si->Config->Description : "";
  jsStreamInfo_Destroy(si);
  Result<RemoteShape> shape = ParseShape(desc, UINT32_MAX, core->Where() + ": stream " + core->stream + "'s description");
  if (!shape.ok()) return shape.status();
  WEFT_RETURN_IF_ERROR(AdoptShape(*shape, &core->options));
  const uint32_t shards = shape->shards;
  for (uint32_t i = 0; i < shards; ++i) core->subjects.push_back("weft.bus." + core->name + "." + std::to_string(i));
  for (const std::string& g : o.groups) WEFT_RETURN_IF_ERROR(core->CreateGroup(g, Start::kOldest));
  return std::unique_ptr<Bus>(new NatsBus(core));
}

}  // namespace weft::bus::internal
