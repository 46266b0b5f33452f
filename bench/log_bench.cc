// `weft bench log`: the durable log beside the floor (raw write() of the same bytes plus fsync),
// SQLite in WAL mode and Redis Streams (XADD; redis-server started here on a free loopback port
// and stopped by pid; rows skipped with a note if it is not installed). Cases (docs/benchmarks.md):
//   append   records/s and bytes/s for 64 B, 1 KB, 64 KB under each durability policy, one
//            appender; 64 B batched; 8 appenders under `always`;
//   durable  latency of one append under `always`, 1 and 8 appenders;
//   tail     from append to a tail in another process holding the record (fsync never);
//   open     time to open a log of a given size (field log_bytes).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "bench_util.h"
#include "redis.h"
#include "suites.h"
#include "weft/core/clock.h"
#include "weft/log/log.h"

namespace weft::bench {
namespace {

using log::Fsync;


const char* PolicyName(Fsync f) {
  switch (f) {
    case Fsync::kNever: return "never";
    case Fsync::kEveryN: return "every_n";
    case Fsync::kInterval: return "interval";
    case Fsync::kAlways: return "always";
  }
  return "?";
}

constexpr uint64_t kEveryN = 1000;
constexpr int64_t kIntervalMs = 100;
constexpr size_t kBatch = 1000;

Row AppendRow(const std::string& transport, const std::string& fsync, size_t size, int appenders, uint64_t n,
              int64_t ns, const std::string& mode = "") {
  Row r = NewRow("log", "append", transport, size, mode);
  r.extra["fsync"] = fsync;
  r.extra["appenders"] = std::to_string(appenders);
  SetThroughput(r, n, size, ns);
  return r;
}

Row LatencyRow(const std::string& transport, int appenders, std::vector<int64_t>& samples) {
  Row r = NewRow("log", "durable", transport, 64, "");
  r.extra["fsync"] = "always";
  r.extra["appenders"] = std::to_string(appenders);
  SetLatency(r, samples);
  return r;
}


// ---- weft ------------------------------------------------------------------------------------

log::LogOptions WeftOpts(Fsync f) {
  log::LogOptions o;
  o.fsync = f;
  o.fsync_every_n = kEveryN;
  o.fsync_interval_ms = kIntervalMs;
  return o;
}

Row AppendWeft(Fsync f, size_t size, int appenders, int64_t budget, bool batch, std::vector<int64_t>* lat) {
  Dir d;
  auto lg = log::Log::Open(d.path + "/log", WeftOpts(f)).value();
  std::vector<uint8_t> payload(size, 0x5A);
  std::mutex lat_mu;
  auto [n, ns] = RunThreads(appenders, budget, [&](int, int64_t stop) {
    uint64_t count = 0;
    std::vector<int64_t> mine;
    std::vector<ByteView> views(batch ? kBatch : 0, ByteView(payload.data(), size));
    for (uint64_t i = 0;; ++i) {
      if ((i & 15) == 0 && MonotonicNs() >= stop) break;
      const int64_t t0 = lat ? MonotonicNs() : 0;
      if (batch) {
        if (!lg->AppendBatch(views).ok()) break;
        count += kBatch;
      } else {
        if (!lg->Append(ByteView(payload.data(), size)).ok()) break;
        ++count;
      }
      if (lat) mine.push_back(MonotonicNs() - t0);
    }
    if (lat) {
      std::lock_guard<std::mutex> g(lat_mu);
      lat->insert(lat->end(), mine.begin(), mine.end());
    }
    return count;
  });
  Row r = AppendRow("weft", PolicyName(f), size, appenders, n, ns, batch ? "batch" : "");
  r.note = "fsyncs: " + std::to_string(lg->Stats().fsyncs);
  return r;
}

// ---- floor: write() of the same bytes (a 32-byte header and the payload) to one file ------------

Row AppendFloor(Fsync f, size_t size, int appenders, int64_t budget, bool batch, std::vector<int64_t>* lat) {
  Dir d;
  const std::string path = d.path + "/floor";
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  std::vector<uint8_t> rec((32 + size + 7) / 8 * 8 * (batch ? kBatch : 1), 0x5A);
  std::atomic<uint64_t> since{0};
  std::atomic<int64_t> last_sync{MonotonicNs()};
  std::mutex lat_mu;
  auto [n, ns] = RunThreads(appenders, budget, [&](int, int64_t stop) {
    uint64_t count = 0;
    std::vector<int64_t> mine;
    for (uint64_t i = 0;; ++i) {
      if ((i & 15) == 0 && MonotonicNs() >= stop) break;
      const int64_t t0 = MonotonicNs();
      if (::write(fd, rec.data(), rec.size()) != static_cast<ssize_t>(rec.size())) break;
      const uint64_t k = batch ? kBatch : 1;
      count += k;
      if (f == Fsync::kAlways) {
        ::fdatasync(fd);
      } else if (f == Fsync::kEveryN && since.fetch_add(k) + k >= kEveryN) {
        since.store(0);
        ::fdatasync(fd);
      } else if (f == Fsync::kInterval && t0 - last_sync.load() >= kIntervalMs * 1'000'000) {
        last_sync.store(t0);
        ::fdatasync(fd);
      }
      if (lat) mine.push_back(MonotonicNs() - t0);
    }
    if (lat) {
      std::lock_guard<std::mutex> g(lat_mu);
      lat->insert(lat->end(), mine.begin(), mine.end());
    }
    return count;
  });
  ::close(fd);
  Row r = AppendRow("floor", PolicyName(f), size, appenders, n, ns, batch ? "batch" : "");
  r.note = "write() of the record bytes to one file, fdatasync per policy";
  return r;
}

// ---- SQLite, WAL mode -----------------------------------------------------------------------

sqlite3* SqliteOpen(const std::string& path, Fsync f) {
  sqlite3* db = nullptr;
  sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr);
  sqlite3_busy_timeout(db, 30'000);
  sqlite3_exec(db, "PRAGMA journal_mode=WAL", nullptr, nullptr, nullptr);
  const char* sync = f == Fsync::kNever ? "PRAGMA synchronous=OFF" : f == Fsync::kInterval ? "PRAGMA synchronous=NORMAL"
                                                                                              : "PRAGMA synchronous=FULL";
  sqlite3_exec(db, sync, nullptr, nullptr, nullptr);
  sqlite3_exec(db, "CREATE TABLE IF NOT EXISTS log(seq INTEGER PRIMARY KEY, ts INTEGER, payload BLOB)", nullptr,
               nullptr, nullptr);
  return db;
}

Row AppendSqlite(Fsync f, size_t size, int appenders, int64_t budget, bool batch, std::vector<int64_t>* lat) {
  Dir d;
  const std::string path = d.path + "/log.db";
  sqlite3_close(SqliteOpen(path, f));
  std::vector<uint8_t> payload(size, 0x5A);
  std::mutex lat_mu;
  auto [n, ns] = RunThreads(appenders, budget, [&](int, int64_t stop) {
    sqlite3* db = SqliteOpen(path, f);
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(db, "INSERT INTO log(ts, payload) VALUES(?, ?)", -1, &st, nullptr);
    uint64_t count = 0, in_txn = 0;
    std::vector<int64_t> mine;
    // every_n: one transaction per kEveryN rows; batch: one per kBatch rows.
    const uint64_t group = batch ? kBatch : f == Fsync::kEveryN ? kEveryN : 1;
    for (uint64_t i = 0;; ++i) {
      if ((i & 15) == 0 && in_txn == 0 && MonotonicNs() >= stop) break;
      const int64_t t0 = MonotonicNs();
      if (group > 1 && in_txn == 0) sqlite3_exec(db, "BEGIN", nullptr, nullptr, nullptr);
      sqlite3_bind_int64(st, 1, t0);
      sqlite3_bind_blob(st, 2, payload.data(), static_cast<int>(size), SQLITE_STATIC);
      if (sqlite3_step(st) != SQLITE_DONE) break;
      sqlite3_reset(st);
      ++count;
      if (group > 1 && ++in_txn == group) {
        sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr);
        in_txn = 0;
      }
      if (lat) mine.push_back(MonotonicNs() - t0);
    }
    if (in_txn != 0) sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr);
    sqlite3_finalize(st);
    sqlite3_close(db);
    if (lat) {
      std::lock_guard<std::mutex> g(lat_mu);
      lat->insert(lat->end(), mine.begin(), mine.end());
    }
    return count;
  });
  Row r = AppendRow("sqlite", PolicyName(f), size, appenders, n, ns, batch ? "batch" : "");
  r.note = std::string("WAL, synchronous=") + (f == Fsync::kNever ? "OFF" : f == Fsync::kInterval ? "NORMAL" : "FULL") +
           (f == Fsync::kEveryN ? ", a transaction per 1000 rows" : "");
  return r;
}

// ---- Redis Streams --------------------------------------------------------------------------

Row AppendRedis(RedisServer& srv, Fsync f, size_t size, int appenders, int64_t budget, bool batch,
                std::vector<int64_t>* lat) {
  std::string payload(size, 'Z');
  std::mutex lat_mu;
  auto [n, ns] = RunThreads(appenders, budget, [&](int i, int64_t stop) {
    Resp c(srv.port());
    const std::string key = "s" + std::to_string(i);
    uint64_t count = 0;
    std::vector<int64_t> mine;
    for (uint64_t k = 0;; ++k) {
      if ((k & 15) == 0 && MonotonicNs() >= stop) break;
      const int64_t t0 = MonotonicNs();
      const size_t m = batch ? kBatch : 1;
      for (size_t j = 0; j < m; ++j) c.Append({"XADD", key, "*", "p", payload});
      if (!c.Flush()) break;
      bool ok = true;
      for (size_t j = 0; j < m && ok; ++j) ok = c.Reply();
      if (!ok) break;
      count += m;
      if (lat) mine.push_back(MonotonicNs() - t0);
    }
    if (lat) {
      std::lock_guard<std::mutex> g(lat_mu);
      lat->insert(lat->end(), mine.begin(), mine.end());
    }
    // Leave the server empty for the next row (a large stream would make its AOF rewrites
    // weigh on later rows).
    c.Append({"DEL", key});
    if (c.Flush()) c.Reply();
    return count;
  });
  Row r = AppendRow("redis", PolicyName(f), size, appenders, n, ns, batch ? "batch" : "");
  r.note = std::string("XADD over loopback TCP, appendfsync ") +
           (f == Fsync::kAlways ? "always" : f == Fsync::kInterval ? "everysec" : "no") + (batch ? ", pipelined" : "");
  return r;
}

// ---- tail: append in this process, a tail in another holds the record --------------------------

struct TailCtl {
  alignas(64) std::atomic<uint64_t> ready;
  alignas(64) std::atomic<uint64_t> done;
  int64_t samples[1];
};

Row TailWeft(const std::string& mode, int warm, int n) {
  Dir d;
  auto lg = log::Log::Open(d.path + "/log", WeftOpts(Fsync::kNever)).value();
  const size_t bytes = sizeof(TailCtl) + (warm + n) * sizeof(int64_t);
  auto* c = static_cast<TailCtl*>(SharedAlloc(bytes));
  pid_t child = Fork([&] {
    auto reader = log::Log::Open(d.path + "/log", {.read_only = true});
    if (!reader.ok()) return 1;
    auto tail = (*reader)->TailFrom(0, {.spin_ns = mode == "spin" ? -1 : 0}).value();
    c->ready.store(1);
    for (int i = 0; i < warm + n; ++i) {
      auto r = tail->Next(Deadline::AfterMs(10'000));
      if (!r.ok() || r->payload.size() < 8) return 2;
      int64_t t0;
      std::memcpy(&t0, r->payload.data(), 8);
      c->samples[i] = MonotonicNs() - t0;
      c->done.store(i + 1, std::memory_order_release);
    }
    return 0;
  });
  WaitAtLeast(c->ready, 1);
  uint8_t payload[64] = {};
  for (int i = 0; i < warm + n; ++i) {
    WaitAtLeast(c->done, i);
    if (mode == "parked") SpinFor(50'000);
    const int64_t t0 = MonotonicNs();
    std::memcpy(payload, &t0, 8);
    if (!lg->Append(ByteView(payload, 64)).ok()) break;
  }
  Join(child);
  std::vector<int64_t> samples(c->samples + warm, c->samples + warm + n);
  SharedFree(c, bytes);
  Row r = NewRow("log", "tail", "weft", 64, mode);
  r.extra["fsync"] = "never";
  SetLatency(r, samples);
  return r;
}

Row TailRedis(RedisServer& srv, int warm, int n) {
  const size_t bytes = sizeof(TailCtl) + (warm + n) * sizeof(int64_t);
  auto* c = static_cast<TailCtl*>(SharedAlloc(bytes));
  pid_t child = Fork([&] {
    Resp r(srv.port());
    std::string last = "0-0";  // the stream starts empty: nothing is missed
    c->ready.store(1);
    for (int i = 0; i < warm + n; ++i) {
      std::vector<std::string> got;
      r.Append({"XREAD", "BLOCK", "0", "STREAMS", "tail", last});
      if (!r.Flush() || !r.Reply(&got) || got.size() < 4 || got[3].size() < 8) return 2;
      // Reply: [[stream, [[id, [field, value]]]]]
      int64_t t0;
      std::memcpy(&t0, got[3].data(), 8);
      c->samples[i] = MonotonicNs() - t0;
      last = got[1];
      c->done.store(i + 1, std::memory_order_release);
    }
    return 0;
  });
  Resp w(srv.port());
  WaitAtLeast(c->ready, 1);
  std::string payload(64, 'Z');
  for (int i = 0; i < warm + n; ++i) {
    WaitAtLeast(c->done, i);
    SpinFor(50'000);
    const int64_t t0 = MonotonicNs();
    std::memcpy(payload.data(), &t0, 8);
    w.Append({"XADD", "tail", "*", "p", payload});
    if (!w.Flush() || !w.Reply()) break;
  }
  Join(child);
  std::vector<int64_t> samples(c->samples + warm, c->samples + warm + n);
  SharedFree(c, bytes);
  Row r = NewRow("log", "tail", "redis", 64, "parked");
  r.extra["fsync"] = "never";
  r.note = "XADD, then XREAD BLOCK in another process (appendfsync no)";
  SetLatency(r, samples);
  return r;
}

// ---- open -------------------------------------------------------------------------------------

Row OpenRow(const std::string& transport, uint64_t log_bytes, const std::string& note, std::vector<int64_t>& times) {
  Row r = NewRow("log", "open", transport, 64 << 10, "");
  r.extra["log_bytes"] = std::to_string(log_bytes);
  r.note = note;
  SetLatency(r, times);
  return r;
}

Row OpenWeft(uint64_t log_bytes, int samples) {
  Dir d;
  {
    auto lg = log::Log::Open(d.path + "/log", WeftOpts(Fsync::kNever)).value();
    std::vector<uint8_t> payload(64 << 10, 0x5A);
    for (uint64_t written = 0; written < log_bytes; written += payload.size()) {
      if (!lg->Append(ByteView(payload.data(), payload.size())).ok()) break;
    }
  }
  std::vector<int64_t> times;
  for (int i = 0; i < samples; ++i) {
    const int64_t t0 = MonotonicNs();
    auto lg = log::Log::Open(d.path + "/log", WeftOpts(Fsync::kNever));
    times.push_back(MonotonicNs() - t0);
    if (!lg.ok()) break;
  }
  return OpenRow("weft", log_bytes, "writer open with recovery of the newest segment; warm page cache", times);
}

// The floor: open a file of `log_bytes` and find its end (what any log must do at least).
Row OpenFloor(uint64_t log_bytes, int samples) {
  Dir d;
  const std::string path = d.path + "/floor";
  {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    ::posix_fallocate(fd, 0, static_cast<off_t>(log_bytes));
    ::close(fd);
  }
  std::vector<int64_t> times;
  for (int i = 0; i < samples; ++i) {
    const int64_t t0 = MonotonicNs();
    const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    const off_t end = ::lseek(fd, 0, SEEK_END);
    times.push_back(MonotonicNs() - t0);
    ::close(fd);
    if (end <= 0) break;
  }
  return OpenRow("floor", log_bytes, "open() one file and seek to its end", times);
}

// Redis: restart with an append-only file of `log_bytes` of XADDs; time until it answers.
Row OpenRedis(uint64_t log_bytes, int samples) {
  Dir d;
  {
    RedisServer srv("no", d.path);
    if (!srv.up()) return Row{};
    Resp c(srv.port());
    std::string payload(64 << 10, 'Z');
    for (uint64_t written = 0; written < log_bytes; written += payload.size()) {
      c.Append({"XADD", "log", "*", "p", payload});
      if (!c.Flush() || !c.Reply()) break;
    }
  }  // SIGTERM: the AOF is flushed on the way out
  std::vector<int64_t> times;
  for (int i = 0; i < samples; ++i) {
    RedisServer srv("no", d.path);
    if (!srv.up()) break;
    times.push_back(srv.started_ns());
  }
  return OpenRow("redis", log_bytes, "restart until PING answers: the whole AOF is replayed into memory", times);
}

Row OpenSqlite(uint64_t log_bytes, int samples) {
  Dir d;
  const std::string path = d.path + "/log.db";
  {
    sqlite3* db = SqliteOpen(path, Fsync::kNever);
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(db, "INSERT INTO log(ts, payload) VALUES(?, ?)", -1, &st, nullptr);
    std::vector<uint8_t> payload(64 << 10, 0x5A);
    sqlite3_exec(db, "BEGIN", nullptr, nullptr, nullptr);
    for (uint64_t written = 0; written < log_bytes; written += payload.size()) {
      sqlite3_bind_int64(st, 1, 0);
      sqlite3_bind_blob(st, 2, payload.data(), static_cast<int>(payload.size()), SQLITE_STATIC);
      sqlite3_step(st);
      sqlite3_reset(st);
    }
    sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr);
    sqlite3_finalize(st);
    sqlite3_close(db);
  }
  std::vector<int64_t> times;
  for (int i = 0; i < samples; ++i) {
    const int64_t t0 = MonotonicNs();
    sqlite3* db = SqliteOpen(path, Fsync::kNever);
    sqlite3_exec(db, "SELECT max(seq) FROM log", nullptr, nullptr, nullptr);  // find the tail
    times.push_back(MonotonicNs() - t0);
    sqlite3_close(db);
  }
  return OpenRow("sqlite", log_bytes, "open, WAL mode, and find the last row; warm page cache", times);
}

}  // namespace

void RunLogSuite(const Options& opt) {
  auto want = [&](const char* c) { return opt.only.empty() || opt.only == c; };
  const int64_t budget = opt.quick ? 150'000'000 : 500'000'000;
  std::vector<Row> rows;
  const Fsync policies[] = {Fsync::kNever, Fsync::kEveryN, Fsync::kInterval, Fsync::kAlways};
  RedisServer redis_always("always"), redis_everysec("everysec"), redis_no("no");
  auto redis_for = [&](Fsync f) -> RedisServer* {
    RedisServer* s = f == Fsync::kAlways ? &redis_always : f == Fsync::kInterval ? &redis_everysec
                     : f == Fsync::kNever ? &redis_no : nullptr;
    return s != nullptr && s->up() ? s : nullptr;
  };
  const bool have_redis = redis_always.up();
  if (want("append")) {
    for (Fsync f : policies) {
      for (size_t size : {size_t{64}, size_t{1024}, size_t{64} << 10}) {
        rows.push_back(AppendWeft(f, size, 1, budget, false, nullptr));
        rows.push_back(AppendFloor(f, size, 1, budget, false, nullptr));
        rows.push_back(AppendSqlite(f, size, 1, budget, false, nullptr));
        if (RedisServer* s = redis_for(f)) rows.push_back(AppendRedis(*s, f, size, 1, budget, false, nullptr));
      }
    }
    rows.push_back(AppendWeft(Fsync::kNever, 64, 1, budget, true, nullptr));
    rows.push_back(AppendFloor(Fsync::kNever, 64, 1, budget, true, nullptr));
    rows.push_back(AppendSqlite(Fsync::kNever, 64, 1, budget, true, nullptr));
    if (RedisServer* s = redis_for(Fsync::kNever)) rows.push_back(AppendRedis(*s, Fsync::kNever, 64, 1, budget, true, nullptr));
    rows.push_back(AppendWeft(Fsync::kAlways, 64, 8, budget, false, nullptr));
    rows.push_back(AppendFloor(Fsync::kAlways, 64, 8, budget, false, nullptr));
    rows.push_back(AppendSqlite(Fsync::kAlways, 64, 8, budget, false, nullptr));
    if (have_redis) rows.push_back(AppendRedis(redis_always, Fsync::kAlways, 64, 8, budget, false, nullptr));
  }
  if (want("durable")) {
    for (int appenders : {1, 8}) {
      std::vector<int64_t> w, f, s, r;
      AppendWeft(Fsync::kAlways, 64, appenders, budget, false, &w);
      rows.push_back(LatencyRow("weft", appenders, w));
      AppendFloor(Fsync::kAlways, 64, appenders, budget, false, &f);
      rows.push_back(LatencyRow("floor", appenders, f));
      rows.back().note = "write() + fdatasync per record";
      AppendSqlite(Fsync::kAlways, 64, appenders, budget, false, &s);
      rows.push_back(LatencyRow("sqlite", appenders, s));
      rows.back().note = "WAL, synchronous=FULL";
      if (have_redis) {
        AppendRedis(redis_always, Fsync::kAlways, 64, appenders, budget, false, &r);
        rows.push_back(LatencyRow("redis", appenders, r));
        rows.back().note = "XADD, appendfsync always";
      }
    }
  }
  if (want("tail")) {
    Results res;
    for (int round = 0; round < (opt.quick ? 1 : 3); ++round) {
      for (const std::string mode : {"spin", "parked"}) {
        res.Add(TailWeft(mode, 500, opt.quick ? 2000 : 10'000));
        Row floor = OneWayFloor("log", "tail", 64, mode, 500, opt.quick ? 2000 : 10'000);
        floor.extra["fsync"] = "never";
        res.Add(floor);
      }
      RedisServer fresh("no");  // its own server, idle but for this row
      if (fresh.up()) res.Add(TailRedis(fresh, 200, opt.quick ? 1000 : 5000));
    }
    for (Row& r : res.Medians()) rows.push_back(r);
  }
  if (want("open")) {
    const uint64_t small = opt.quick ? (uint64_t{128} << 20) : (uint64_t{1} << 30);
    rows.push_back(OpenWeft(small, 5));
    rows.push_back(OpenFloor(small, 5));
    rows.push_back(OpenSqlite(small, 5));
    if (have_redis) rows.push_back(OpenRedis(small, opt.quick ? 2 : 3));
    if (!opt.quick) rows.push_back(OpenWeft(uint64_t{4} << 30, 5));
  }
  if (!have_redis && opt.only.empty()) {
    Row r = NewRow("log", "append", "redis", 0, "");
    r.note = "skipped: redis-server is not installed";
    rows.push_back(r);
  }
  Emit("log", rows, opt);
}

}  // namespace weft::bench
