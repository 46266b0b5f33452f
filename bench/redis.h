// Redis for the benchmarks: a hiredis connection that pipelines commands, and redis-server
// started on a free loopback port with an append-only file (stopped by pid). Used by the log
// and bus suites (Redis Streams, XADD).
#pragma once

#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "bench_util.h"
#include "support/servers.h"

namespace weft::bench {

// A Redis connection (hiredis): commands queued with Append, sent by Flush, replies read in
// order by Reply.
class Resp {
 public:
  explicit Resp(int port) : c_(redisConnect("127.0.0.1", port)) {}
  ~Resp() {
    if (c_ != nullptr) redisFree(c_);
  }
  Resp(const Resp&) = delete;
  Resp& operator=(const Resp&) = delete;
  bool ok() const { return c_ != nullptr && c_->err == 0; }
  void Append(const std::vector<std::string_view>& args) {
    if (!ok()) return;
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    for (auto a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    redisAppendCommandArgv(c_, static_cast<int>(args.size()), argv.data(), lens.data());
  }
  bool Flush() {
    int done = 0;
    while (ok() && done == 0) {
      if (redisBufferWrite(c_, &done) != REDIS_OK) return false;
    }
    return ok();
  }
  // Reads one reply; false on an error reply or a broken connection. Bulk strings are appended
  // to *bulks in order (nested arrays flattened).
  bool Reply(std::vector<std::string>* bulks = nullptr) {
    if (!ok()) return false;
    void* raw = nullptr;
    if (redisGetReply(c_, &raw) != REDIS_OK || raw == nullptr) return false;
    auto* r = static_cast<redisReply*>(raw);
    const bool good = r->type != REDIS_REPLY_ERROR;
    if (good && bulks != nullptr) Collect(r, bulks);
    freeReplyObject(r);
    return good;
  }

 private:
  static void Collect(const redisReply* r, std::vector<std::string>* out) {
    if (r->type == REDIS_REPLY_STRING) out->emplace_back(r->str, r->len);
    if (r->type == REDIS_REPLY_ARRAY) {
      for (size_t i = 0; i < r->elements; ++i) Collect(r->element[i], out);
    }
  }
  redisContext* c_;
};

// redis-server on a free loopback port with an append-only file (tests/support/servers.h);
// stopped by pid. up() is false when redis-server is not installed (rows are then skipped with
// a note).
class RedisServer {
 public:
  // `dir`: where its append-only file lives (default: a fresh directory of its own).
  explicit RedisServer(const std::string& appendfsync, const std::string& dir = "") {
    const int64_t t0 = NowNs();
    srv_ = std::make_unique<testing::RedisServer>(
        std::vector<std::string>{"--appendonly", "yes", "--appendfsync", appendfsync}, dir);
    // Listening is not ready: it answers LOADING while it reads its AOF. Up once PING answers.
    for (int i = 0; srv_->up() && i < 60'000; ++i) {
      Resp c(srv_->port());
      c.Append({"PING"});
      if (c.Flush() && c.Reply()) break;
      ::usleep(1'000);
    }
    started_ns_ = NowNs() - t0;
  }
  bool up() const { return srv_->up(); }
  int port() const { return srv_->port(); }
  // Nanoseconds from start until it answered PING (for the open case: includes loading its
  // AOF).
  int64_t started_ns() const { return started_ns_; }

 private:
  std::unique_ptr<testing::RedisServer> srv_;
  int64_t started_ns_ = 0;
};

}  // namespace weft::bench
