#include "weft/net/redis.h"

#include <hiredis/hiredis.h>
#include <sys/time.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <thread>
#include <vector>

namespace weft::net {

namespace {

redisContext* Ctx(void* p) { return static_cast<redisContext*>(p); }
const redisReply* Rep(const void* p) { return static_cast<const redisReply*>(p); }

timeval ToTimeval(int64_t ns) {
  // 0 would mean "no timeout" to the socket: the smallest wait instead.
  if (ns <= 0) ns = 1000;
  timeval tv;
  tv.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
  tv.tv_usec = static_cast<suseconds_t>((ns % 1'000'000'000) / 1000);
  if (tv.tv_sec == 0 && tv.tv_usec == 0) tv.tv_usec = 1;
  return tv;
}

bool StartsWith(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

}  // namespace

// ---- urls ----------------------------------------------------------------------------------------

Result<RedisUrl> ParseRedisUrl(std::string_view url) {
  RedisUrl out;
  constexpr std::string_view kScheme = "redis://";
  if (StartsWith(url, "rediss://")) {
    return InvalidArgument("'" + std::string(url) + "': TLS to Redis needs hiredis 1.0 with hiredis_ssl; " +
                           "Debian 12's hiredis 0.14 has none (tunnel it, e.g. through stunnel)");
  }
  if (!StartsWith(url, kScheme)) return InvalidArgument("'" + std::string(url) + "' is not a redis:// url");
  std::string_view rest = url.substr(kScheme.size());
  if (rest.find('?') != std::string_view::npos) {
    return InvalidArgument("'" + std::string(url) + "': a redis:// url takes no query (TLS options included)");
  }
  const size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  if (slash != std::string_view::npos) out.path = std::string(rest.substr(slash + 1));
  const size_t at = authority.rfind('@');
  if (at != std::string_view::npos) {
    std::string_view cred = authority.substr(0, at);
    authority = authority.substr(at + 1);
    const size_t colon = cred.find(':');
    if (colon == std::string_view::npos) {
      out.options.password = std::string(cred);
    } else {
      out.options.user = std::string(cred.substr(0, colon));
      out.options.password = std::string(cred.substr(colon + 1));
    }
  }
  std::string_view host = authority;
  const size_t colon = authority.rfind(':');
  if (colon != std::string_view::npos && authority.find(']') == std::string_view::npos) {
    host = authority.substr(0, colon);
    std::string_view port = authority.substr(colon + 1);
    int p = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
    if (ec != std::errc() || end != port.data() + port.size() || p <= 0 || p > 65535) {
      return InvalidArgument("'" + std::string(url) + "': port '" + std::string(port) + "' is not 1..65535");
    }
    out.options.port = p;
  }
  if (host.empty()) return InvalidArgument("'" + std::string(url) + "' names no host");
  out.options.host = std::string(host);
  return out;
}

// ---- replies -------------------------------------------------------------------------------------

RedisKind RedisValue::kind() const {
  if (r_ == nullptr) return RedisKind::kNil;
  switch (Rep(r_)->type) {
    case REDIS_REPLY_STRING:
      return RedisKind::kString;
    case REDIS_REPLY_ARRAY:
      return RedisKind::kArray;
    case REDIS_REPLY_INTEGER:
      return RedisKind::kInteger;
    case REDIS_REPLY_STATUS:
      return RedisKind::kStatus;
    case REDIS_REPLY_ERROR:
      return RedisKind::kError;
    default:
      return RedisKind::kNil;
  }
}

std::string_view RedisValue::str() const {
  const RedisKind k = kind();
  if (k != RedisKind::kString && k != RedisKind::kStatus && k != RedisKind::kError) return {};
  return {Rep(r_)->str, Rep(r_)->len};
}

int64_t RedisValue::integer() const { return kind() == RedisKind::kInteger ? Rep(r_)->integer : 0; }
size_t RedisValue::size() const { return kind() == RedisKind::kArray ? Rep(r_)->elements : 0; }
RedisValue RedisValue::operator[](size_t i) const {
  return RedisValue(i < size() ? static_cast<const void*>(Rep(r_)->element[i]) : nullptr);
}

RedisReply::RedisReply(void* raw) : raw_(raw) {}
RedisReply::~RedisReply() {
  if (raw_ != nullptr) freeReplyObject(raw_);
}
RedisReply& RedisReply::operator=(RedisReply&& o) noexcept {
  if (this != &o) {
    if (raw_ != nullptr) freeReplyObject(raw_);
    raw_ = o.raw_;
    o.raw_ = nullptr;
  }
  return *this;
}

Status RedisError(std::string_view reply, std::string_view what) {
  Code code = Code::kInternal;
  if (StartsWith(reply, "NOAUTH") || StartsWith(reply, "WRONGPASS") || reply.find("invalid password") != std::string_view::npos ||
      reply.find("AUTH <password> called without any password") != std::string_view::npos) {
    code = Code::kUnauthenticated;
  } else if (StartsWith(reply, "NOPERM")) {
    code = Code::kPermissionDenied;
  } else if (StartsWith(reply, "NOGROUP") || reply.find("no such key") != std::string_view::npos) {
    code = Code::kNotFound;
  } else if (StartsWith(reply, "LOADING") || StartsWith(reply, "BUSY") || StartsWith(reply, "MASTERDOWN") ||
             StartsWith(reply, "TRYAGAIN")) {
    code = Code::kUnavailable;
  } else if (StartsWith(reply, "OOM")) {
    code = Code::kResourceExhausted;
  }
  return Status(code, std::string(what) + ": redis answered '" + std::string(reply) + "'");
}

// ---- connections ---------------------------------------------------------------------------------

RedisConnection::~RedisConnection() {
  if (ctx_ != nullptr) redisFree(Ctx(ctx_));
}

Result<std::unique_ptr<RedisConnection>> RedisConnection::Connect(const RedisOptions& options) {
  std::unique_ptr<RedisConnection> c(new RedisConnection(options));
  WEFT_RETURN_IF_ERROR(c->Open(Deadline::AfterMs(options.connect_timeout_ms)));
  return c;
}

Result<std::unique_ptr<RedisConnection>> RedisConnection::Connect(const RedisOptions& options, Deadline retry_until) {
  std::unique_ptr<RedisConnection> c(new RedisConnection(options));
  WEFT_RETURN_IF_ERROR(c->Reconnect(retry_until));
  return c;
}

Status RedisConnection::Open(Deadline deadline) {
  if (ctx_ != nullptr) redisFree(Ctx(ctx_));
  ctx_ = nullptr;
  broken_ = true;
  queued_ = 0;
  const std::string where = "redis at " + options_.host + ":" + std::to_string(options_.port);
  const int64_t left = std::min<int64_t>(deadline.RemainingNs(), options_.connect_timeout_ms * 1'000'000);
  redisContext* c = redisConnectWithTimeout(options_.host.c_str(), options_.port, ToTimeval(left));
  if (c == nullptr) return Status(Code::kUnavailable, where + ": out of memory for a connection");
  ctx_ = c;
  if (c->err != 0) return Status(Code::kUnavailable, where + ": " + c->errstr);
  redisEnableKeepAlive(c);
  broken_ = false;
  if (!options_.password.empty()) {
    std::vector<std::string_view> auth = {"AUTH"};
    if (!options_.user.empty()) auth.push_back(options_.user);
    auth.push_back(options_.password);
    Result<RedisReply> r = Command(auth, deadline);
    if (!r.ok()) return r.status();
    if (r->root().kind() == RedisKind::kError) {
      broken_ = true;
      Status s = RedisError(r->root().str(), where + " AUTH");
      if (s.code() == Code::kInternal) return Status(Code::kUnauthenticated, s.message());
      return s;
    }
  }
  if (options_.db != 0) {
    const std::string db = std::to_string(options_.db);
    std::string_view select[] = {"SELECT", db};
    Result<RedisReply> r = Command(select, deadline);
    if (!r.ok()) return r.status();
    if (r->root().kind() == RedisKind::kError) {
      broken_ = true;
      return RedisError(r->root().str(), where + " SELECT " + db);
    }
  }
  return Status::Ok();
}

Status RedisConnection::Broken(const std::string& what) {
  broken_ = true;
  const std::string where = "redis at " + options_.host + ":" + std::to_string(options_.port);
  redisContext* c = Ctx(ctx_);
  const int err = errno;
  const bool timed_out = c != nullptr && c->err == REDIS_ERR_IO &&
                         (err == EAGAIN || err == EWOULDBLOCK || std::string_view(c->errstr).find("temporarily") != std::string_view::npos);
  if (timed_out) return Status(Code::kTimeout, where + ": no answer to " + what + " by the deadline");
  return Status(Code::kUnavailable, where + ": " + what + ": " + (c != nullptr && c->errstr[0] ? c->errstr : "connection lost"));
}

bool RedisConnection::broken() const { return broken_ || ctx_ == nullptr || Ctx(ctx_)->err != 0; }

Status RedisConnection::SetTimeout(Deadline deadline) {
  const int64_t left = deadline.RemainingNs();
  timeval tv = left == Deadline::kNever ? timeval{0, 0} : ToTimeval(left);
  if (redisSetTimeout(Ctx(ctx_), tv) != REDIS_OK) return Broken("setting a timeout");
  return Status::Ok();
}

void RedisConnection::Append(std::span<const std::string_view> argv) {
  if (broken()) return;
  constexpr size_t kInline = 16;
  const char* ptrs[kInline];
  size_t lens[kInline];
  std::vector<const char*> many_ptrs;
  std::vector<size_t> many_lens;
  const char** p = ptrs;
  size_t* l = lens;
  if (argv.size() > kInline) {
    many_ptrs.resize(argv.size());
    many_lens.resize(argv.size());
    p = many_ptrs.data();
    l = many_lens.data();
  }
  for (size_t i = 0; i < argv.size(); ++i) {
    p[i] = argv[i].data();
    l[i] = argv[i].size();
  }
  if (redisAppendCommandArgv(Ctx(ctx_), static_cast<int>(argv.size()), p, l) != REDIS_OK) {
    broken_ = true;
    return;
  }
  ++queued_;
}

Status RedisConnection::Flush(Deadline deadline) {
  if (broken()) return Broken("a write");
  WEFT_RETURN_IF_ERROR(SetTimeout(deadline));
  int done = 0;
  while (done == 0) {
    if (redisBufferWrite(Ctx(ctx_), &done) != REDIS_OK) return Broken("a write");
  }
  return Status::Ok();
}

Result<RedisReply> RedisConnection::Read(Deadline deadline) {
  if (broken()) return Broken("a read");
  void* raw = nullptr;
  // A reply already read in costs no system call.
  if (redisGetReplyFromReader(Ctx(ctx_), &raw) != REDIS_OK) return Broken("a read");
  if (raw == nullptr) {
    WEFT_RETURN_IF_ERROR(SetTimeout(deadline));
    if (redisGetReply(Ctx(ctx_), &raw) != REDIS_OK || raw == nullptr) return Broken("a read");
  }
  if (queued_ > 0) --queued_;
  return RedisReply(raw);
}

Result<RedisReply> RedisConnection::Command(std::span<const std::string_view> argv, Deadline deadline) {
  Append(argv);
  return Read(deadline);
}

Status RedisConnection::Reconnect(Deadline deadline) {
  int64_t wait_ms = options_.backoff_initial_ms;
  for (;;) {
    Status s = Open(deadline);
    if (s.ok() || s.code() == Code::kUnauthenticated || s.code() == Code::kPermissionDenied) return s;
    const int64_t left = deadline.RemainingNs();
    if (left <= 0) return s;
    std::this_thread::sleep_for(std::chrono::nanoseconds(std::min<int64_t>(left, wait_ms * 1'000'000)));
    if (deadline.Expired()) return s;
    wait_ms = std::min(wait_ms * 2, options_.backoff_max_ms);
  }
}

}  // namespace weft::net
