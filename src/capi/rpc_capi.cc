// The C ABI over weft::rpc at the bytes level. Nothing throws across this boundary.
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "capi_util.h"
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
};

extern "C" {

int weft_rpc_reply_set(weft_rpc_reply_t* reply, const void* data, size_t n) {
  if (reply == nullptr || (data == nullptr && n != 0)) return FailInvalid("reply and data must not be NULL");
  reply->set = true;
  reply->data.assign(static_cast<const char*>(data), n);
  reply->error = Status::Ok();
  return WEFT_OK;
}

int weft_rpc_reply_error(weft_rpc_reply_t* reply, int code, const char* message) {
  if (reply == nullptr) return FailInvalid("reply must not be NULL");
  if (code <= 0 || code > WEFT_ECANCELED) return FailInvalid("code must be a WEFT_E* error");
  reply->set = true;
  reply->error = Status(static_cast<Code>(code), message != nullptr ? message : "");
  return WEFT_OK;
}

int weft_rpc_contract_hash(const char* canonical, char out[33]) {
  if (canonical == nullptr || out == nullptr) return FailInvalid("canonical and out must not be NULL");
  auto c = weft::rpc::Contract::Parse(canonical);
  if (!c.ok()) return Fail(c.status());
  const std::string h = c->Hash();
  std::memcpy(out, h.c_str(), 33);
  return WEFT_OK;
}

int weft_rpc_server_create(const char* id, weft_rpc_server_t** out) {
  if (id == nullptr || out == nullptr) return FailInvalid("id and out must not be NULL");
  *out = nullptr;
  auto s = weft::rpc::Server::Create(id);
  if (!s.ok()) return Fail(s.status());
  auto* h = new (std::nothrow) weft_rpc_server{std::move(s).value()};
  if (h == nullptr) return FailInvalid("out of memory");
  *out = h;
  return WEFT_OK;
}

int weft_rpc_server_register(weft_rpc_server_t* server, const char* name, const char* canonical,
                             weft_rpc_handler_fn fn, void* ctx) {
  if (server == nullptr || name == nullptr || canonical == nullptr || fn == nullptr) {
    return FailInvalid("server, name, canonical and fn must not be NULL");
  }
  auto c = weft::rpc::Contract::Parse(canonical);
  if (!c.ok()) return Fail(c.status());
  weft::rpc::Resource r;
  r.contract = *c;
  for (const auto& m : c->methods) {
    r.handlers[m.name] = [fn, ctx](const weft::rpc::CallArgs& a) -> Result<std::string> {
      std::vector<const void*> ptrs;
      std::vector<size_t> sizes;
      for (ByteView b : a.args) {
        ptrs.push_back(b.data());
        sizes.push_back(b.size());
      }
      weft_rpc_reply reply;
      fn(ctx, a.method, ptrs.data(), sizes.data(), ptrs.size(), &reply);
      if (!reply.set) return Status(Code::kInternal, "the handler set no result");
      if (!reply.error.ok()) return std::move(reply.error);
      return std::move(reply.data);
    };
  }
  return Done(server->server->Register(name, std::move(r)));
}

int weft_rpc_server_start(weft_rpc_server_t* server) {
  if (server == nullptr) return FailInvalid("server must not be NULL");
  return Done(server->server->Start());
}

int weft_rpc_server_close(weft_rpc_server_t* server) {
  if (server == nullptr) return WEFT_OK;
  const int rc = Done(server->server->Shutdown(weft::Deadline::AfterMs(30'000)));
  delete server;
  return rc;
}

int weft_rpc_client_connect(const char* canonical, const char* name, const char* address, int64_t timeout_ns,
                            weft_rpc_client_t** out) {
  if (canonical == nullptr || name == nullptr || address == nullptr || out == nullptr) {
    return FailInvalid("canonical, name, address and out must not be NULL");
  }
  *out = nullptr;
  auto c = weft::rpc::Contract::Parse(canonical);
  if (!c.ok()) return Fail(c.status());
  auto client = weft::rpc::Client::Connect(*c, name, address, ToDeadline(timeout_ns));
  if (!client.ok()) return Fail(client.status());
  auto* h = new (std::nothrow) weft_rpc_client{std::move(client).value()};
  if (h == nullptr) return FailInvalid("out of memory");
  *out = h;
  return WEFT_OK;
}

int weft_rpc_client_call(weft_rpc_client_t* client, const char* method, const void* const* args, const size_t* sizes,
                         size_t nargs, int64_t timeout_ns, void** result, size_t* result_size) {
  if (client == nullptr || method == nullptr || result == nullptr || result_size == nullptr ||
      (nargs != 0 && (args == nullptr || sizes == nullptr))) {
    return FailInvalid("client, method, result, result_size (and args, sizes) must not be NULL");
  }
  *result = nullptr;
  *result_size = 0;
  std::vector<ByteView> views;
  for (size_t i = 0; i < nargs; ++i) views.emplace_back(static_cast<const uint8_t*>(args[i]), sizes[i]);
  auto r = client->client->Call(method, views, ToDeadline(timeout_ns));
  if (!r.ok()) return Fail(r.status());
  void* buf = std::malloc(r->size() > 0 ? r->size() : 1);
  if (buf == nullptr) return FailInvalid("out of memory");
  if (!r->empty()) std::memcpy(buf, r->data(), r->size());
  *result = buf;
  *result_size = r->size();
  return WEFT_OK;
}

int weft_rpc_client_close(weft_rpc_client_t* client) {
  if (client == nullptr) return WEFT_OK;
  const int rc = Done(client->client->Close());
  delete client;
  return rc;
}

void weft_free(void* p) { std::free(p); }

}  // extern "C"
