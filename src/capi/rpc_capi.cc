// The C ABI over weft::rpc at the bytes level. Nothing throws across this boundary.
#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "internal/capi_util.h"
#include "weft/rpc/rpc.h"
#include "weft/weft.h"

using weft::ByteView;
using weft::Code;
using weft::Result;
using weft::Status;
using weft::capi::Done;
using weft::capi::Fail;
using weft::capi::FailInvalid;
using weft::capi::ToDeadline;

struct weft_rpc_server {
  std::unique_ptr<weft::rpc::Server> server;
};
struct weft_rpc_client {
  std::unique_ptr<weft::rpc::Client> client;
};
struct weft_rpc_reply {
  bool set = false;
  std::string data;
  Status error;
  weft::rpc::CallContext* context = nullptr;
};
struct weft_rpc_cancel {
  weft::rpc::CancelToken token;
};
struct weft_rpc_held {
  weft::rpc::Reply value;           // a result: bytes here, or a hold in shared memory
  std::shared_ptr<weft::rpc::Held> loan;
};
struct weft_rpc_stream {
  std::unique_ptr<weft::rpc::Stream> stream;
};

namespace {
// "a,b,c" (NULL: none), empty items skipped.
std::vector<std::string> SplitCommas(const char* p) {
  std::vector<std::string> out;
  if (p == nullptr) return out;
  const std::string all = p;
  for (size_t start = 0; start <= all.size();) {
    const size_t comma = std::min(all.find(',', start), all.size());
    if (comma > start) out.push_back(all.substr(start, comma - start));
    start = comma + 1;
  }
  return out;
}

// The fields of a weft_rpc_tcp_options_t the caller's struct_size covers, as server options
// (a client uses their tcp part).
weft::rpc::ServerOptions OptionsOf(const weft_rpc_tcp_options_t* o) {
  weft::rpc::ServerOptions s;
  if (o == nullptr) return s;
#define WEFT_HAS(field) (o->struct_size >= offsetof(weft_rpc_tcp_options_t, field) + sizeof(o->field))
  auto str = [](const char* p) { return p == nullptr ? std::string() : std::string(p); };
  weft::rpc::TcpSecurity& t = s.tcp;
  if (WEFT_HAS(listen) && o->listen != nullptr && o->listen[0] != '\0') s.listen.push_back(o->listen);
  if (WEFT_HAS(key_file)) t.key_file = str(o->key_file);
  if (WEFT_HAS(trusted_keys)) t.trusted_keys = SplitCommas(o->trusted_keys);
  if (WEFT_HAS(ca_file)) t.ca_file = str(o->ca_file);
  if (WEFT_HAS(cert_file)) t.cert_file = str(o->cert_file);
  if (WEFT_HAS(plaintext)) t.plaintext = o->plaintext != 0;
  if (WEFT_HAS(registry)) s.registry = str(o->registry);
  if (WEFT_HAS(registry_ttl_ms) && o->registry_ttl_ms != 0) s.registry_ttl_ms = o->registry_ttl_ms;
  if (WEFT_HAS(advertise)) s.advertise = SplitCommas(o->advertise);
  if (WEFT_HAS(no_relay)) s.relay = o->no_relay == 0;
  return s;
}

// ...and as client options.
weft::rpc::ConnectOptions ConnectOf(const weft_rpc_tcp_options_t* o) {
  weft::rpc::ConnectOptions c;
  c.tcp = OptionsOf(o).tcp;
  if (o == nullptr) return c;
  if (WEFT_HAS(retry_attempts) && o->retry_attempts > 1) c.retry.attempts = o->retry_attempts;
  if (WEFT_HAS(hedge_after_ms)) c.hedge_after_ms = o->hedge_after_ms;
  if (WEFT_HAS(breaker_failures)) c.breaker.failures = o->breaker_failures;
  if (WEFT_HAS(breaker_open_ms) && o->breaker_open_ms != 0) c.breaker.open_ms = o->breaker_open_ms;
  return c;
}
#undef WEFT_HAS

int CopyOut(const std::string& s, char* out, size_t cap) {
  if (out == nullptr || s.size() + 1 > cap) return Fail(Status(Code::kOutOfRange, "the buffer is too small"));
  std::memcpy(out, s.c_str(), s.size() + 1);
  return WEFT_OK;
}

std::vector<ByteView> Views(const void* const* args, const size_t* sizes, size_t nargs) {
  std::vector<ByteView> views;
  for (size_t i = 0; i < nargs; ++i) views.emplace_back(static_cast<const uint8_t*>(args[i]), sizes[i]);
  return views;
}
}  // namespace

extern "C" {

int weft_rpc_reply_set(weft_rpc_reply_t* reply, const void* data, size_t n) {
  weft::capi::Enter();
  if (reply == nullptr || (data == nullptr && n != 0)) return FailInvalid("reply and data must not be NULL");
  reply->set = true;
  reply->data.assign(static_cast<const char*>(data), n);
  reply->error = Status::Ok();
  return WEFT_OK;
}

int weft_rpc_reply_error(weft_rpc_reply_t* reply, int code, const char* message) {
  weft::capi::Enter();
  if (reply == nullptr) return FailInvalid("reply must not be NULL");
  if (code <= 0 || code > WEFT_ECANCELED) return FailInvalid("code must be a WEFT_E* error");
  reply->set = true;
  reply->error = Status(static_cast<Code>(code), message != nullptr ? message : "");
  return WEFT_OK;
}

int weft_rpc_contract_hash(const char* canonical, char out[33]) {
  weft::capi::Enter();
  if (canonical == nullptr || out == nullptr) return FailInvalid("canonical and out must not be NULL");
  auto c = weft::rpc::Contract::Parse(canonical);
  if (!c.ok()) return Fail(c.status());
  const std::string h = c->Hash();
  std::memcpy(out, h.c_str(), 33);
  return WEFT_OK;
}

int weft_rpc_server_create(const char* id, weft_rpc_server_t** out) {
  weft::capi::Enter();
  if (id == nullptr || out == nullptr) return FailInvalid("id and out must not be NULL");
  *out = nullptr;
  auto s = weft::rpc::Server::Create(id);
  if (!s.ok()) return Fail(s.status());
  auto* h = new (std::nothrow) weft_rpc_server{std::move(s).value()};
  if (h == nullptr) return FailInvalid("out of memory");
  *out = h;
  return WEFT_OK;
}

int weft_rpc_server_create_tcp(const char* id, const weft_rpc_tcp_options_t* tcp, weft_rpc_server_t** out) {
  weft::capi::Enter();
  if (id == nullptr || out == nullptr) return FailInvalid("id and out must not be NULL");
  *out = nullptr;
  auto s = weft::rpc::Server::Create(id, OptionsOf(tcp));
  if (!s.ok()) return Fail(s.status());
  auto* h = new (std::nothrow) weft_rpc_server{std::move(s).value()};
  if (h == nullptr) return FailInvalid("out of memory");
  *out = h;
  return WEFT_OK;
}

int weft_rpc_server_address(weft_rpc_server_t* server, size_t index, char* out, size_t cap) {
  weft::capi::Enter();
  if (server == nullptr || out == nullptr) return FailInvalid("server and out must not be NULL");
  const std::vector<std::string> all = server->server->addresses();
  if (index >= all.size()) return Fail(Status(Code::kOutOfRange, "the server has " + std::to_string(all.size()) + " addresses"));
  return CopyOut(all[index], out, cap);
}

int weft_rpc_reply_caller(weft_rpc_reply_t* reply, char* out, size_t cap) {
  weft::capi::Enter();
  if (reply == nullptr || reply->context == nullptr) return FailInvalid("not in a handler");
  return CopyOut(reply->context->caller().identity, out, cap);
}

int weft_rpc_server_register(weft_rpc_server_t* server, const char* name, const char* canonical,
                             weft_rpc_handler_fn fn, void* ctx) {
  weft::capi::Enter();
  if (server == nullptr || name == nullptr || canonical == nullptr || fn == nullptr) {
    return FailInvalid("server, name, canonical and fn must not be NULL");
  }
  auto c = weft::rpc::Contract::Parse(canonical);
  if (!c.ok()) return Fail(c.status());
  weft::rpc::Resource r;
  r.contract = *c;
  std::vector<bool> stream_methods;
  for (const auto& m : c->methods) stream_methods.push_back(m.stream);
  for (const auto& m : c->methods) {
    r.handlers[m.name] = [fn, ctx, stream_methods](const weft::rpc::CallArgs& a) -> Result<std::string> {
      std::vector<const void*> ptrs;
      std::vector<size_t> sizes;
      for (ByteView b : a.args) {
        ptrs.push_back(b.data());
        sizes.push_back(b.size());
      }
      weft_rpc_reply reply;
      reply.context = a.context;
      fn(ctx, a.method, ptrs.data(), sizes.data(), ptrs.size(), &reply);
      if (!reply.set && a.context != nullptr && static_cast<size_t>(a.method) < stream_methods.size() &&
          stream_methods[a.method]) {
        return std::string();  // a stream that ended
      }
      if (!reply.set) return Status(Code::kInternal, "the handler set no result");
      if (!reply.error.ok()) return std::move(reply.error);
      return std::move(reply.data);
    };
  }
  return Done(server->server->Register(name, std::move(r)));
}

int weft_rpc_server_start(weft_rpc_server_t* server) {
  weft::capi::Enter();
  if (server == nullptr) return FailInvalid("server must not be NULL");
  return Done(server->server->Start());
}

int weft_rpc_server_close(weft_rpc_server_t* server) {
  weft::capi::Enter();
  if (server == nullptr) return WEFT_OK;
  const int rc = Done(server->server->Shutdown(weft::Deadline::AfterMs(30'000)));
  delete server;
  return rc;
}

int weft_rpc_client_connect(const char* canonical, const char* name, const char* address, int64_t timeout_ns,
                            weft_rpc_client_t** out) {
  return weft_rpc_client_connect_tcp(canonical, name, address, timeout_ns, nullptr, out);
}

int weft_rpc_client_connect_tcp(const char* canonical, const char* name, const char* address, int64_t timeout_ns,
                                const weft_rpc_tcp_options_t* tcp, weft_rpc_client_t** out) {
  weft::capi::Enter();
  if (canonical == nullptr || name == nullptr || address == nullptr || out == nullptr) {
    return FailInvalid("canonical, name, address and out must not be NULL");
  }
  *out = nullptr;
  auto c = weft::rpc::Contract::Parse(canonical);
  if (!c.ok()) return Fail(c.status());
  auto client = weft::rpc::Client::Connect(*c, name, address, ToDeadline(timeout_ns), ConnectOf(tcp));
  if (!client.ok()) return Fail(client.status());
  auto* h = new (std::nothrow) weft_rpc_client{std::move(client).value()};
  if (h == nullptr) return FailInvalid("out of memory");
  *out = h;
  return WEFT_OK;
}

int weft_rpc_client_call(weft_rpc_client_t* client, const char* method, const void* const* args, const size_t* sizes,
                         size_t nargs, int64_t timeout_ns, void** result, size_t* result_size) {
  weft::capi::Enter();
  if (client == nullptr || method == nullptr || result == nullptr || result_size == nullptr ||
      (nargs != 0 && (args == nullptr || sizes == nullptr))) {
    return FailInvalid("client, method, result, result_size (and args, sizes) must not be NULL");
  }
  *result = nullptr;
  *result_size = 0;
  auto r = client->client->Call(method, Views(args, sizes, nargs), ToDeadline(timeout_ns));
  if (!r.ok()) return Fail(r.status());
  void* buf = std::malloc(r->size() > 0 ? r->size() : 1);
  if (buf == nullptr) return FailInvalid("out of memory");
  if (!r->empty()) std::memcpy(buf, r->data(), r->size());
  *result = buf;
  *result_size = r->size();
  return WEFT_OK;
}

int weft_rpc_client_close(weft_rpc_client_t* client) {
  weft::capi::Enter();
  if (client == nullptr) return WEFT_OK;
  const int rc = Done(client->client->Close());
  delete client;
  return rc;
}

void weft_free(void* p) { std::free(p); }

int weft_rpc_reply_cancelled(weft_rpc_reply_t* reply) {
  weft::capi::Enter();
  return reply != nullptr && reply->context != nullptr && reply->context->Cancelled() ? 1 : 0;
}

int weft_rpc_reply_yield(weft_rpc_reply_t* reply, const void* data, size_t n) {
  weft::capi::Enter();
  if (reply == nullptr || reply->context == nullptr || (data == nullptr && n != 0)) {
    return FailInvalid("reply (of a running call) and data must not be NULL");
  }
  return Done(reply->context->Yield(ByteView(static_cast<const uint8_t*>(data), n)));
}

int weft_rpc_cancel_new(weft_rpc_cancel_t** out) {
  weft::capi::Enter();
  if (out == nullptr) return FailInvalid("out must not be NULL");
  *out = new (std::nothrow) weft_rpc_cancel_t;
  return *out != nullptr ? WEFT_OK : FailInvalid("out of memory");
}

void weft_rpc_cancel(weft_rpc_cancel_t* token) {
  if (token != nullptr) token->token.Cancel();
}

void weft_rpc_cancel_free(weft_rpc_cancel_t* token) { delete token; }

void* weft_rpc_held_data(const weft_rpc_held_t* held, size_t* size) {
  if (held == nullptr) {
    if (size != nullptr) *size = 0;
    return nullptr;
  }
  if (held->loan != nullptr) {
    if (size != nullptr) *size = held->loan->size();
    return held->loan->mutable_bytes().data();
  }
  const ByteView b = held->value.bytes();
  if (size != nullptr) *size = b.size();
  return const_cast<uint8_t*>(b.data());
}

int weft_rpc_held_in_shared_memory(const weft_rpc_held_t* held) {
  weft::capi::Enter();
  return held != nullptr && (held->loan != nullptr || held->value.in_shared_memory()) ? 1 : 0;
}

void weft_rpc_held_free(weft_rpc_held_t* held) { delete held; }

int weft_rpc_client_loan(weft_rpc_client_t* client, size_t n, weft_rpc_held_t** out) {
  weft::capi::Enter();
  if (client == nullptr || out == nullptr) return FailInvalid("client and out must not be NULL");
  *out = nullptr;
  auto loan = client->client->Loan(n);
  if (!loan.ok()) return Fail(loan.status());
  auto* h = new (std::nothrow) weft_rpc_held;
  if (h == nullptr) return FailInvalid("out of memory");
  h->loan = std::move(loan).value();
  *out = h;
  return WEFT_OK;
}

int weft_rpc_client_call_held(weft_rpc_client_t* client, const char* method, const void* const* args,
                              const size_t* sizes, size_t nargs, int64_t timeout_ns, const weft_rpc_cancel_t* cancel,
                              weft_rpc_held_t** out) {
  weft::capi::Enter();
  if (client == nullptr || method == nullptr || out == nullptr || (nargs != 0 && (args == nullptr || sizes == nullptr))) {
    return FailInvalid("client, method, out (and args, sizes) must not be NULL");
  }
  *out = nullptr;
  weft::rpc::CallOptions o;
  o.deadline = ToDeadline(timeout_ns);
  o.hold = true;
  o.cancel = cancel != nullptr ? &cancel->token : nullptr;
  auto r = client->client->Invoke(method, Views(args, sizes, nargs), o);
  if (!r.ok()) return Fail(r.status());
  auto* h = new (std::nothrow) weft_rpc_held;
  if (h == nullptr) return FailInvalid("out of memory");
  h->value = std::move(r).value();
  *out = h;
  return WEFT_OK;
}

int weft_rpc_client_stream(weft_rpc_client_t* client, const char* method, const void* const* args, const size_t* sizes,
                           size_t nargs, int64_t timeout_ns, weft_rpc_stream_t** out) {
  weft::capi::Enter();
  if (client == nullptr || method == nullptr || out == nullptr || (nargs != 0 && (args == nullptr || sizes == nullptr))) {
    return FailInvalid("client, method, out (and args, sizes) must not be NULL");
  }
  *out = nullptr;
  weft::rpc::CallOptions o;
  o.deadline = ToDeadline(timeout_ns);
  auto s = client->client->OpenStream(method, Views(args, sizes, nargs), o);
  if (!s.ok()) return Fail(s.status());
  auto* h = new (std::nothrow) weft_rpc_stream{std::move(s).value()};
  if (h == nullptr) return FailInvalid("out of memory");
  *out = h;
  return WEFT_OK;
}

int weft_rpc_stream_next(weft_rpc_stream_t* stream, int64_t timeout_ns, void** chunk, size_t* size) {
  weft::capi::Enter();
  if (stream == nullptr || chunk == nullptr || size == nullptr) return FailInvalid("stream, chunk and size must not be NULL");
  *chunk = nullptr;
  *size = 0;
  auto r = stream->stream->Next(ToDeadline(timeout_ns));
  if (!r.ok()) return Fail(r.status());
  if (!r->has_value()) return WEFT_OK;
  const ByteView b = (*r)->bytes();
  void* buf = std::malloc(b.size() > 0 ? b.size() : 1);
  if (buf == nullptr) return FailInvalid("out of memory");
  if (!b.empty()) std::memcpy(buf, b.data(), b.size());
  *chunk = buf;
  *size = b.size();
  return WEFT_OK;
}

void weft_rpc_stream_cancel(weft_rpc_stream_t* stream) {
  if (stream != nullptr) stream->stream->Cancel();
}

void weft_rpc_stream_free(weft_rpc_stream_t* stream) { delete stream; }

}  // extern "C"
