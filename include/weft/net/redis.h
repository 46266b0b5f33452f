// Connections to a Redis server through hiredis (Debian's libhiredis): commands pipelined in
// one write, replies read in order and seen in place (no copy), connect and I/O bounded by
// deadlines, AUTH with a user and password, reconnection with backoff. Debian's hiredis (0.14)
// has no TLS: a redis:// url with rediss:// or tls=... is refused with a clear error.
//
//   auto c = weft::net::RedisConnection::Connect(*weft::net::ParseRedisUrl("redis://127.0.0.1:6379"));
//   std::string_view argv[] = {"XADD", "s", "*", "f", "v"};
//   (*c)->Append(argv);
//   auto reply = (*c)->Read(weft::Deadline::AfterMs(1000));   // reply->root().str() is the id
//
// Thread rule: a connection is used by one thread at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "weft/core/clock.h"
#include "weft/core/status.h"

namespace weft::net {

struct RedisOptions {
  std::string host = "127.0.0.1";
  int port = 6379;
  std::string user;      // AUTH user password (Redis 6 ACLs); empty: AUTH password alone
  std::string password;  // empty: no AUTH
  int db = 0;            // SELECT db when not 0
  int64_t connect_timeout_ms = 2000;
  // Reconnection after a broken connection: waits of backoff_initial_ms, doubling up to
  // backoff_max_ms, until the caller's deadline.
  int64_t backoff_initial_ms = 10;
  int64_t backoff_max_ms = 1000;
};

// Parses "redis://[[user]:password@]host[:port][/db-or-path]" into options and the path after
// the authority ("" when none); the query string is refused. kInvalidArgument names what is
// wrong.
struct RedisUrl {
  RedisOptions options;
  std::string path;  // after the first '/' following host:port
};
Result<RedisUrl> ParseRedisUrl(std::string_view url);

// One kind of reply element.
enum class RedisKind : uint8_t { kNil, kString, kInteger, kArray, kStatus, kError };

// A view of one element of a reply (valid while its RedisReply lives).
class RedisValue {
 public:
  RedisKind kind() const;
  std::string_view str() const;  // kString, kStatus, kError
  int64_t integer() const;       // kInteger
  size_t size() const;           // kArray: the number of elements
  RedisValue operator[](size_t i) const;
  bool is_nil() const { return kind() == RedisKind::kNil; }

 private:
  friend class RedisReply;
  explicit RedisValue(const void* r) : r_(r) {}
  const void* r_;
};

// An owned reply.
class RedisReply {
 public:
  RedisReply() = default;
  explicit RedisReply(void* raw);
  ~RedisReply();
  RedisReply(RedisReply&& o) noexcept : raw_(o.raw_) { o.raw_ = nullptr; }
  RedisReply& operator=(RedisReply&& o) noexcept;
  RedisReply(const RedisReply&) = delete;
  RedisReply& operator=(const RedisReply&) = delete;
  RedisValue root() const { return RedisValue(raw_); }

 private:
  void* raw_ = nullptr;
};

class RedisConnection {
 public:
  ~RedisConnection();
  RedisConnection(const RedisConnection&) = delete;
  RedisConnection& operator=(const RedisConnection&) = delete;

  // Connects (and authenticates) within options.connect_timeout_ms: kUnavailable when nothing
  // answers, kUnauthenticated for refused credentials.
  static Result<std::unique_ptr<RedisConnection>> Connect(const RedisOptions& options);
  // The same, tried again with backoff while nothing answers, until `retry_until`.
  static Result<std::unique_ptr<RedisConnection>> Connect(const RedisOptions& options, Deadline retry_until);

  // Queues one command (arguments as given, binary-safe); sent by the next Read or Flush.
  void Append(std::span<const std::string_view> argv);
  // Sends everything queued.
  Status Flush(Deadline deadline);
  // The next reply, in the order the commands were queued. An error reply is a reply (kind
  // kError), not a failure; a failure is a broken connection (kUnavailable: the connection must
  // be reconnected, and the replies of commands queued before are lost) or the deadline
  // (kTimeout; the connection is then broken too, as replies would come out of order).
  Result<RedisReply> Read(Deadline deadline);
  // Append, then Read: one round trip.
  Result<RedisReply> Command(std::span<const std::string_view> argv, Deadline deadline);

  // Reconnects a broken connection, with backoff, until the deadline (kUnavailable then).
  Status Reconnect(Deadline deadline);
  bool broken() const;
  const RedisOptions& options() const { return options_; }

 private:
  explicit RedisConnection(const RedisOptions& options) : options_(options) {}
  Status Open(Deadline deadline);
  Status SetTimeout(Deadline deadline);
  Status Broken(const std::string& what);

  RedisOptions options_;
  void* ctx_ = nullptr;  // redisContext
  bool broken_ = false;
  size_t queued_ = 0;  // commands appended and not yet answered
};

// The status a Redis error reply stands for ("NOAUTH ..." and "WRONGPASS ..." are
// kUnauthenticated, "NOPERM" kPermissionDenied, "NOGROUP"/"ERR no such key" kNotFound, others
// kInternal), prefixed with `what`.
Status RedisError(std::string_view reply, std::string_view what);

}  // namespace weft::net
