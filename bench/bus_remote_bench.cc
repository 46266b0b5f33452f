// `weft bench bus`, the rows of the remote backends: the bus on Redis Streams and on NATS
// JetStream against each server's own client doing the same work with the same batching (the
// floor rows), on servers started here on loopback ports:
//   ingest   acknowledged events/s, batches of 64, 64 B and 4 KB events: weft IngestBatch
//            beside hiredis pipelining 64 XADDs (the same fields: a dedup id and the data)
//            and redis-benchmark's own XADD figure (-P 64); beside nats.c publishing 64
//            js_PublishAsync with the same Nats-Msg-Id headers, then js_PublishAsyncComplete.
//   consume  events/s read and acked by a group member: weft Poll(1024) + commit beside
//            XREADGROUP COUNT 1024 + XACK, and beside a pull Fetch(1024) + an ack per message.
//   e2e      one event at a time from ingest to a member blocked on another connection,
//            p50/p99, beside the raw clients on the same path (XADD to a reader blocked in
//            XREADGROUP; js_Publish to a pull Fetch) and their request/ack round trip.
#include <hiredis/hiredis.h>
#include <nats/nats.h>

#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bench_util.h"
#include "redis.h"
#include "suites.h"
#include "weft/bus/bus.h"
#include "weft/bus/dedup.h"
#include "weft/core/clock.h"

namespace weft::bench {
namespace {

constexpr size_t kBatch = 64;
volatile uint64_t g_remote_sink = 0;

Row RemoteRow(const std::string& case_name, const std::string& transport, const std::string& backend, size_t size) {
  Row r = NewRow("bus", case_name, transport, size, "");
  r.extra["backend"] = backend;
  r.extra["lang"] = "cpp";
  r.extra["batch"] = "true";
  r.extra["producers"] = "1";
  r.extra["consumers"] = case_name == "ingest" ? "0" : "1";
  return r;
}

bus::BusOptions RemoteOptions(const std::string& url) {
  bus::BusOptions o;
  o.url = url;
  o.shards = 1;
  o.max_event = 1 << 20;
  o.remote.op_timeout_ms = 10'000;
  return o;
}

std::vector<std::string> Events(size_t n, size_t size) {
  std::vector<std::string> v;
  for (size_t i = 0; i < n; ++i) v.emplace_back(size, static_cast<char>('a' + i % 26));
  return v;
}

// weft IngestBatch of kBatch until `n` events were acknowledged.
Row IngestWeft(const std::string& url, const std::string& backend, size_t size, uint64_t n) {
  Row r = RemoteRow("ingest", "weft", backend, size);
  auto b = bus::Bus::Open(RemoteOptions(url));
  if (!b.ok()) {
    r.note = "not run: " + b.status().ToString();
    return r;
  }
  const std::vector<std::string> ev = Events(kBatch, size);
  std::vector<ByteView> views;
  for (const std::string& e : ev) views.push_back(AsBytes(e));
  const int64_t t0 = NowNs();
  uint64_t done = 0;
  while (done < n) {
    auto k = (*b)->IngestBatch(views);
    if (!k.ok()) {
      r.note = "INCOMPLETE: " + k.status().ToString();
      break;
    }
    done += *k;
  }
  SetThroughput(r, done, size, NowNs() - t0);
  if (r.note.empty()) r.note = "IngestBatch of 64, each acknowledged by the server";
  b->reset();
  bus::Bus::Unlink(url).IgnoreError();  // the server keeps no more than the row needs
  return r;
}

// hiredis: kBatch XADDs pipelined with the fields weft writes (a dedup id, the data), then
// their kBatch replies; argument arrays on the stack, as a tight client has them.
Row IngestHiredis(int port, size_t size, uint64_t n) {
  Row r = RemoteRow("ingest", "floor", "redis", size);
  redisContext* c = redisConnect("127.0.0.1", port);
  if (c == nullptr || c->err != 0) {
    if (c != nullptr) redisFree(c);
    r.note = "not run: no connection";
    return r;
  }
  const std::vector<std::string> ev = Events(kBatch, size);
  const uint64_t nonce = 0x1234abcd5678ef90ull;
  const int64_t t0 = NowNs();
  uint64_t done = 0;
  bool ok = true;
  char ids[kBatch][64];
  while (done < n && ok) {
    for (size_t i = 0; i < kBatch; ++i) {
      const int len = std::snprintf(ids[i], sizeof(ids[i]), "%016" PRIx64 ":0:%" PRIu64 ":%zu", nonce, done, i);
      const char* argv[] = {"XADD", "floor:0", "*", "dedup_id", ids[i], "d", ev[i].data()};
      const size_t lens[] = {4, 7, 1, 8, static_cast<size_t>(len), 1, size};
      redisAppendCommandArgv(c, 7, argv, lens);
    }
    for (size_t i = 0; i < kBatch && ok; ++i) {
      void* reply = nullptr;
      ok = redisGetReply(c, &reply) == REDIS_OK && reply != nullptr &&
           static_cast<redisReply*>(reply)->type != REDIS_REPLY_ERROR;
      if (reply != nullptr) freeReplyObject(reply);
    }
    done += kBatch;
  }
  SetThroughput(r, done, size, NowNs() - t0);
  redisFree(c);
  r.note = "hiredis: 64 XADDs pipelined (the same fields), then their replies";
  if (!ok) r.note += "; INCOMPLETE";
  return r;
}

// redis-benchmark's own figure for XADD with 64 commands pipelined.
Row IngestRedisBenchmark(int port, size_t size, uint64_t n) {
  Row r = RemoteRow("ingest", "redis-benchmark", "redis", size);
  const std::string cmd = "redis-benchmark -h 127.0.0.1 -p " + std::to_string(port) + " -n " + std::to_string(n) +
                          " -P 64 --csv XADD rb:0 '*' d " + std::string(size, 'x') + " 2>/dev/null";
  FILE* p = ::popen(cmd.c_str(), "r");
  double rps = 0;
  char line[8192];
  while (p != nullptr && std::fgets(line, sizeof(line), p) != nullptr) {
    const char* q = std::strstr(line, "\",\"");
    if (std::strncmp(line, "\"XADD", 5) == 0 && q != nullptr) rps = std::atof(q + 3);
  }
  if (p != nullptr) ::pclose(p);
  if (rps <= 0) {
    r.note = "not run: redis-benchmark (redis-tools) gave no figure";
    return r;
  }
  SetThroughput(r, n, size, static_cast<int64_t>(static_cast<double>(n) / rps * 1e9));
  r.note = "redis-benchmark -P 64 XADD (its own client and count)";
  return r;
}

// nats.c: kBatch js_PublishAsync with a Nats-Msg-Id each, then js_PublishAsyncComplete.
struct Nats {
  natsConnection* nc = nullptr;
  jsCtx* js = nullptr;
  explicit Nats(int port) {
    const std::string url = "nats://127.0.0.1:" + std::to_string(port);
    if (natsConnection_ConnectTo(&nc, url.c_str()) != NATS_OK) return;
    jsOptions o;
    jsOptions_Init(&o);
    o.PublishAsync.MaxPending = 4096;
    natsConnection_JetStream(&js, nc, &o);
  }
  ~Nats() {
    if (js != nullptr) jsCtx_Destroy(js);
    if (nc != nullptr) natsConnection_Destroy(nc);
  }
  bool ok() const { return js != nullptr; }
  // The stream the floor rows use, made like weft's (file storage, a duplicate window).
  bool Stream(const std::string& name, const std::string& subject) {
    jsStreamConfig cfg;
    jsStreamConfig_Init(&cfg);
    const char* subjects[] = {subject.c_str()};
    cfg.Name = name.c_str();
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    cfg.Storage = js_FileStorage;
    cfg.Duplicates = int64_t{120'000} * 1'000'000;
    jsStreamInfo* si = nullptr;
    jsErrCode err;
    if (js_AddStream(&si, js, &cfg, nullptr, &err) != NATS_OK) return false;
    jsStreamInfo_Destroy(si);
    return true;
  }
};

Row IngestNatsFloor(int port, size_t size, uint64_t n) {
  Row r = RemoteRow("ingest", "floor", "nats", size);
  Nats c(port);
  const std::string subject = "floor.ingest." + std::to_string(size);
  if (!c.ok() || !c.Stream("FLOOR_INGEST_" + std::to_string(size), subject)) {
    r.note = "not run: no JetStream";
    return r;
  }
  const std::vector<std::string> ev = Events(kBatch, size);
  const int64_t t0 = NowNs();
  uint64_t done = 0;
  bool ok = true;
  while (done < n && ok) {
    for (size_t i = 0; i < kBatch && ok; ++i) {
      const std::string id = bus::EventId(0x1234abcd5678ef90ull, 0, done, static_cast<uint32_t>(i));
      jsPubOptions po;
      jsPubOptions_Init(&po);
      po.MsgId = id.c_str();
      ok = js_PublishAsync(c.js, subject.c_str(), ev[i].data(), static_cast<int>(size), &po) == NATS_OK;
    }
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = 10'000;
    ok = ok && js_PublishAsyncComplete(c.js, &po) == NATS_OK;
    done += kBatch;
  }
  SetThroughput(r, done, size, NowNs() - t0);
  r.note = "nats.c: 64 js_PublishAsync (a Nats-Msg-Id each), then js_PublishAsyncComplete";
  if (!ok) r.note += "; INCOMPLETE";
  return r;
}

// ---- consume -------------------------------------------------------------------------------------

// Fills a new bus `url` with n events, then times a member reading them all (touching every
// byte) and committing each batch.
Row ConsumeWeft(const std::string& url, const std::string& backend, size_t size, uint64_t n) {
  Row r = RemoteRow("consume", "weft", backend, size);
  bus::BusOptions o = RemoteOptions(url);
  o.groups = {"c"};
  auto b = bus::Bus::Open(o);
  if (!b.ok()) {
    r.note = "not run: " + b.status().ToString();
    return r;
  }
  const std::vector<std::string> ev = Events(kBatch, size);
  std::vector<ByteView> views;
  for (const std::string& e : ev) views.push_back(AsBytes(e));
  for (uint64_t done = 0; done < n; done += kBatch) {
    if (!(*b)->IngestBatch(views).ok()) break;
  }
  auto c = (*b)->Subscribe("c");
  if (!c.ok()) {
    r.note = "not run: " + c.status().ToString();
    return r;
  }
  const int64_t t0 = NowNs();
  uint64_t got = 0, sum = 0;
  while (got < n) {
    auto batch = (*c)->Poll(1024, Deadline::AfterMs(5000));
    if (!batch.ok()) break;
    for (const bus::Event& e : *batch) sum += TouchSum(e.data.data(), e.data.size());
    got += batch->size();
  }
  (void)(*c)->Commit();
  const int64_t t1 = NowNs();
  g_remote_sink = sum;
  SetThroughput(r, got, size, t1 - t0);
  r.note = "Poll(1024), each poll acking the one before";
  if (got < n) r.note += "; INCOMPLETE";
  c->reset();
  b->reset();
  bus::Bus::Unlink(url).IgnoreError();
  return r;
}

Row ConsumeHiredis(int port, size_t size, uint64_t n) {
  Row r = RemoteRow("consume", "floor", "redis", size);
  Resp c(port);
  const std::string key = "floor:consume:" + std::to_string(size);
  const std::vector<std::string> ev = Events(kBatch, size);
  for (uint64_t done = 0; done < n; done += kBatch) {  // the entries weft writes: a dedup id, the data
    std::string ids[kBatch];
    for (size_t i = 0; i < kBatch; ++i) {
      ids[i] = bus::EventId(0x1234abcd5678ef90ull, 0, done, static_cast<uint32_t>(i));
      c.Append({"XADD", key, "*", "dedup_id", ids[i], "d", ev[i]});
    }
    c.Flush();
    for (size_t i = 0; i < kBatch; ++i) c.Reply();
  }
  c.Append({"XGROUP", "CREATE", key, "c", "0"});
  c.Flush();
  c.Reply();
  const int64_t t0 = NowNs();
  uint64_t got = 0, sum = 0;
  std::vector<std::string> bulks;
  while (got < n) {
    bulks.clear();
    c.Append({"XREADGROUP", "GROUP", "c", "m", "COUNT", "1024", "STREAMS", key, ">"});
    if (!c.Flush() || !c.Reply(&bulks)) break;
    // bulks: key, then per entry: id, "dedup_id", x, "d", data.
    std::vector<std::string_view> ack = {"XACK", key, "c"};
    size_t k = 0;
    for (size_t i = 1; i + 4 < bulks.size(); i += 5) {
      ack.push_back(bulks[i]);
      sum += TouchSum(bulks[i + 4].data(), bulks[i + 4].size());
      ++k;
    }
    if (k == 0) break;
    c.Append(ack);
    if (!c.Flush() || !c.Reply()) break;
    got += k;
  }
  const int64_t t1 = NowNs();
  g_remote_sink = sum;
  SetThroughput(r, got, size, t1 - t0);
  r.note = "hiredis: XREADGROUP COUNT 1024, then XACK of its ids";
  if (got < n) r.note += "; INCOMPLETE";
  return r;
}

Row ConsumeNatsFloor(int port, size_t size, uint64_t n) {
  Row r = RemoteRow("consume", "floor", "nats", size);
  Nats c(port);
  static int calls = 0;  // a stream of its own each time, as weft's rows have
  const std::string tag = std::to_string(size) + "_" + std::to_string(calls++);
  const std::string stream = "FLOOR_CONSUME_" + tag, subject = "floor.consume." + tag;
  if (!c.ok() || !c.Stream(stream, subject)) {
    r.note = "not run: no JetStream";
    return r;
  }
  const std::vector<std::string> ev = Events(kBatch, size);
  for (uint64_t done = 0; done < n; done += kBatch) {  // the messages weft sends: a Nats-Msg-Id each
    for (size_t i = 0; i < kBatch; ++i) {
      const std::string id = bus::EventId(0x1234abcd5678ef90ull, 0, done, static_cast<uint32_t>(i));
      jsPubOptions po;
      jsPubOptions_Init(&po);
      po.MsgId = id.c_str();
      js_PublishAsync(c.js, subject.c_str(), ev[i].data(), static_cast<int>(size), &po);
    }
    js_PublishAsyncComplete(c.js, nullptr);
  }
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = stream.c_str();
  so.Config.AckPolicy = js_AckExplicit;
  so.Config.MaxAckPending = 1 << 20;
  natsSubscription* sub = nullptr;
  jsErrCode err;
  if (js_PullSubscribe(&sub, c.js, subject.c_str(), "c", nullptr, &so, &err) != NATS_OK) {
    r.note = "not run: pull subscribe";
    return r;
  }
  const int64_t t0 = NowNs();
  uint64_t got = 0, sum = 0;
  while (got < n) {
    natsMsgList list{};
    if (natsSubscription_Fetch(&list, sub, 1024, 5000, &err) != NATS_OK) break;
    for (int i = 0; i < list.Count; ++i) {
      sum += TouchSum(natsMsg_GetData(list.Msgs[i]), static_cast<size_t>(natsMsg_GetDataLength(list.Msgs[i])));
      natsMsg_Ack(list.Msgs[i], nullptr);
    }
    got += static_cast<uint64_t>(list.Count);
    natsMsgList_Destroy(&list);
  }
  natsConnection_Flush(c.nc);
  const int64_t t1 = NowNs();
  natsSubscription_Destroy(sub);
  js_DeleteStream(c.js, stream.c_str(), nullptr, &err);
  g_remote_sink = sum;
  SetThroughput(r, got, size, t1 - t0);
  r.note = "nats.c: pull Fetch(1024), then an ack per message";
  if (got < n) r.note += "; INCOMPLETE";
  return r;
}

// ---- e2e -----------------------------------------------------------------------------------------

// One event at a time, each carrying its send time, to a member blocked in Poll on another
// connection; arrival minus send per event.
Row E2EWeft(const std::string& url, const std::string& backend, int n) {
  Row r = NewRow("bus", "e2e", "weft", 64, "");
  r.extra["backend"] = backend;
  bus::BusOptions o = RemoteOptions(url);
  o.groups = {"e"};
  auto b = bus::Bus::Open(o);
  if (!b.ok()) {
    r.note = "not run: " + b.status().ToString();
    return r;
  }
  auto c = (*b)->Subscribe("e");
  if (!c.ok()) {
    r.note = "not run: " + c.status().ToString();
    return r;
  }
  std::vector<int64_t> samples;
  std::atomic<bool> ready{false};
  std::thread consumer([&] {
    ready = true;
    int got = 0;
    while (got < n) {
      auto batch = (*c)->Poll(64, Deadline::AfterMs(5000));
      if (!batch.ok()) break;
      for (const bus::Event& e : *batch) {
        int64_t sent = 0;
        std::memcpy(&sent, e.data.data(), sizeof(sent));
        samples.push_back(NowNs() - sent);
        ++got;
      }
    }
  });
  while (!ready) std::this_thread::yield();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the member is blocked in its read
  std::string ev(64, 'e');
  for (int i = 0; i < n; ++i) {
    const int64_t now = NowNs();
    std::memcpy(ev.data(), &now, sizeof(now));
    if (!(*b)->Ingest(AsBytes(ev)).ok()) break;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  consumer.join();
  SetLatency(r, samples);
  r.note = "Ingest (acknowledged) to a member blocked in Poll on its own connection, one event every 0.2 ms after the last ack";
  if (static_cast<int>(samples.size()) < n) r.note += "; INCOMPLETE";
  return r;
}

// The raw clients on the same path: a producer sending one event at a time and waiting for
// its ack, a consumer on its own connection blocked in its read. Two floor rows: the e2e
// latency (path e2e) and the producer's request/ack round trip under that load (path
// round-trip).
std::vector<Row> RawE2E(const std::string& backend, int n, const std::function<int64_t(const std::string&)>& send,
                        const std::function<bool(std::vector<int64_t>*, int)>& receive, const std::string& how) {
  std::vector<int64_t> e2e, rtt;
  std::atomic<bool> ready{false};
  std::thread consumer([&] {
    ready = true;
    receive(&e2e, n);
  });
  while (!ready) std::this_thread::yield();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  std::string ev(64, 'e');
  for (int i = 0; i < n; ++i) {
    const int64_t now = NowNs();
    std::memcpy(ev.data(), &now, sizeof(now));
    const int64_t took = send(ev);
    if (took < 0) break;
    rtt.push_back(took);
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  consumer.join();
  std::vector<Row> rows;
  for (const char* path : {"e2e", "round-trip"}) {
    Row r = NewRow("bus", "e2e", "floor", 64, "");
    r.extra["backend"] = backend;
    r.extra["path"] = path;
    SetLatency(r, std::string(path) == "e2e" ? e2e : rtt);
    r.note = std::string(path) == "e2e" ? how + ": send to the blocked reader" : how + ": the producer's request/ack round trip";
    rows.push_back(r);
  }
  return rows;
}

std::vector<Row> RawE2ERedis(int port, int n) {
  redisContext* p = redisConnect("127.0.0.1", port);
  auto send = [&](const std::string& ev) -> int64_t {
    const int64_t t0 = NowNs();
    auto* r = static_cast<redisReply*>(redisCommand(p, "XADD floor:e2e * d %b", ev.data(), ev.size()));
    if (r == nullptr) return -1;
    freeReplyObject(r);
    return NowNs() - t0;
  };
  auto receive = [&](std::vector<int64_t>* out, int want) {
    redisContext* c = redisConnect("127.0.0.1", port);
    freeReplyObject(redisCommand(c, "XGROUP CREATE floor:e2e g $ MKSTREAM"));
    while (static_cast<int>(out->size()) < want) {
      auto* r = static_cast<redisReply*>(redisCommand(c, "XREADGROUP GROUP g m COUNT 64 BLOCK 1000 STREAMS floor:e2e >"));
      if (r == nullptr) break;
      if (r->type == REDIS_REPLY_ARRAY && r->elements == 1) {
        const redisReply* entries = r->element[0]->element[1];
        for (size_t i = 0; i < entries->elements; ++i) {
          int64_t sent = 0;
          std::memcpy(&sent, entries->element[i]->element[1]->element[1]->str, sizeof(sent));
          out->push_back(NowNs() - sent);
          freeReplyObject(redisCommand(c, "XACK floor:e2e g %s", entries->element[i]->element[0]->str));
        }
      }
      freeReplyObject(r);
    }
    redisFree(c);
    return true;
  };
  auto rows = RawE2E("redis", n, send, receive, "hiredis XADD, XREADGROUP BLOCK");
  redisFree(p);
  return rows;
}

std::vector<Row> RawE2ENats(int port, int n) {
  Nats c(port);
  if (!c.ok() || !c.Stream("FLOOR_E2E", "floor.e2e")) return {};
  auto send = [&](const std::string& ev) -> int64_t {
    const int64_t t0 = NowNs();
    jsPubAck* pa = nullptr;
    jsErrCode err;
    if (js_Publish(&pa, c.js, "floor.e2e", ev.data(), static_cast<int>(ev.size()), nullptr, &err) != NATS_OK) return -1;
    jsPubAck_Destroy(pa);
    return NowNs() - t0;
  };
  natsSubscription* sub = nullptr;
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = "FLOOR_E2E";
  so.Config.AckPolicy = js_AckExplicit;
  so.Config.DeliverPolicy = js_DeliverNew;
  jsErrCode err;
  if (js_PullSubscribe(&sub, c.js, "floor.e2e", "e2e", nullptr, &so, &err) != NATS_OK) return {};
  auto receive = [&](std::vector<int64_t>* out, int want) {
    while (static_cast<int>(out->size()) < want) {
      natsMsgList list{};
      const natsStatus s = natsSubscription_Fetch(&list, sub, 64, 1000, &err);
      if (s != NATS_OK && s != NATS_TIMEOUT) break;
      for (int i = 0; i < list.Count; ++i) {
        int64_t sent = 0;
        std::memcpy(&sent, natsMsg_GetData(list.Msgs[i]), sizeof(sent));
        out->push_back(NowNs() - sent);
        natsMsg_Ack(list.Msgs[i], nullptr);
      }
      natsMsgList_Destroy(&list);
    }
    return true;
  };
  auto rows = RawE2E("nats", n, send, receive, "nats.c js_Publish, pull Fetch");
  natsSubscription_Destroy(sub);
  return rows;
}

}  // namespace

void AddRemoteBusRows(Results& res, bool quick, const std::function<bool(const char*)>& want) {
  const int rounds = quick ? 1 : 3;
  const uint64_t n = quick ? 20'000 : 100'000;
  const int samples = quick ? 2000 : 10'000;  // at least 10,000 in a full run (docs/benchmarks.md)
  testing::RedisServer redis;
  testing::NatsServer nats;
  int bus_no = 0;
  auto url = [&](const std::string& scheme, int port) {
    return scheme + "://127.0.0.1:" + std::to_string(port) + "/bench" + std::to_string(bus_no++);
  };
  for (int round = 0; round < rounds; ++round) {
    // Weft and its floor take turns going first: a row can pay for the writeback of the row
    // before it.
    auto in_turn = [&](const std::function<Row()>& weft, const std::function<Row()>& floor) {
      if (round % 2 == 0) res.Add(weft());
      res.Add(floor());
      if (round % 2 == 1) res.Add(weft());
    };
    for (const char* c : {"ingest", "consume"}) {
      if (!want(c)) continue;
      const bool ingest = std::string(c) == "ingest";
      for (size_t size : {size_t{64}, size_t{4096}}) {
        const uint64_t count = size == 64 ? n : n / 4;
        if (redis.up()) {
          const int port = redis.port();
          auto weft = [&] {
            return ingest ? IngestWeft(url("redis", port), "redis", size, count) : ConsumeWeft(url("redis", port), "redis", size, count);
          };
          in_turn(weft, [&] { return ingest ? IngestHiredis(port, size, count) : ConsumeHiredis(port, size, count); });
          if (ingest) res.Add(IngestRedisBenchmark(port, size, count));
        }
        if (nats.up()) {
          const int port = nats.port();
          auto weft = [&] {
            return ingest ? IngestWeft(url("nats", port), "nats", size, count) : ConsumeWeft(url("nats", port), "nats", size, count);
          };
          in_turn(weft, [&] { return ingest ? IngestNatsFloor(port, size, count) : ConsumeNatsFloor(port, size, count); });
        }
      }
    }
    if (want("e2e")) {
      if (redis.up()) {
        res.Add(E2EWeft(url("redis", redis.port()), "redis", samples));
        for (const Row& r : RawE2ERedis(redis.port(), samples)) res.Add(r);
      }
      if (nats.up()) {
        res.Add(E2EWeft(url("nats", nats.port()), "nats", samples));
        for (const Row& r : RawE2ENats(nats.port(), samples)) res.Add(r);
      }
    }
  }
}

}  // namespace weft::bench
