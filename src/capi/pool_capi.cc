// The C ABI over weft::shm::Pool. Nothing throws across this boundary.
#include <cstring>
#include <memory>
#include <new>

#include "internal/capi_util.h"
#include "weft/shm/pool.h"
#include "weft/weft.h"

using weft::capi::Done;
using weft::capi::Fail;
using weft::capi::FailInvalid;
using weft::shm::Pool;

struct weft_pool {
  std::unique_ptr<Pool> pool;
};

namespace weft::capi {
std::string& LastError() {
  thread_local std::string last;
  return last;
}
}  // namespace weft::capi

extern "C" {

void weft_pool_options_init(weft_pool_options_t* opt) {
  if (opt == nullptr) return;
  std::memset(opt, 0, sizeof(*opt));
  opt->struct_size = sizeof(*opt);
  weft::shm::PoolOptions d;
  opt->bytes = d.bytes;
  opt->max_arenas = static_cast<uint32_t>(d.max_arenas);
  opt->max_large_blocks = d.max_large_blocks;
  opt->max_block = d.max_block;
}

int weft_pool_open(const char* name, const weft_pool_options_t* create, weft_pool_t** out) {
  weft::capi::Enter();
  if (name == nullptr || out == nullptr) return FailInvalid("name and out must not be NULL");
  *out = nullptr;
  weft::Result<std::unique_ptr<Pool>> r = weft::Status(weft::Code::kInternal, "unset");
  if (create == nullptr) {
    r = Pool::Open(name);
  } else {
    if (create->struct_size < sizeof(weft_pool_options_t)) return FailInvalid("options struct_size too small");
    weft::shm::PoolOptions o;
    o.bytes = create->bytes;
    o.max_arenas = create->max_arenas;
    o.max_large_blocks = create->max_large_blocks;
    o.max_block = create->max_block;
    r = Pool::OpenOrCreate(name, o);
  }
  if (!r.ok()) return Fail(r.status());
  auto* h = new (std::nothrow) weft_pool{std::move(r).value()};
  if (h == nullptr) return FailInvalid("out of memory");
  *out = h;
  return WEFT_OK;
}

int weft_pool_close(weft_pool_t* pool) {
  weft::capi::Enter();
  if (pool == nullptr) return WEFT_OK;
  weft::Status s = pool->pool->Close();
  delete pool;
  return Done(s);
}

int weft_pool_unlink(const char* name) {
  weft::capi::Enter();
  if (name == nullptr) return FailInvalid("name must not be NULL");
  return Done(Pool::Unlink(name));
}

int weft_pool_allocate(weft_pool_t* pool, size_t n, uint64_t* block) {
  weft::capi::Enter();
  if (pool == nullptr || block == nullptr) return FailInvalid("pool and block must not be NULL");
  auto r = pool->pool->Allocate(n);
  if (!r.ok()) return Fail(r.status());
  *block = *r;
  return WEFT_OK;
}

int weft_pool_data(weft_pool_t* pool, uint64_t block, void** data, size_t* size) {
  weft::capi::Enter();
  if (pool == nullptr || data == nullptr || size == nullptr) return FailInvalid("arguments must not be NULL");
  auto r = pool->pool->Data(block);
  if (!r.ok()) return Fail(r.status());
  *data = r->data();
  *size = r->size();
  return WEFT_OK;
}

int weft_pool_hold(weft_pool_t* pool, uint64_t block) {
  weft::capi::Enter();
  if (pool == nullptr) return FailInvalid("pool must not be NULL");
  return Done(pool->pool->Hold(block));
}

int weft_pool_release(weft_pool_t* pool, uint64_t block) {
  weft::capi::Enter();
  if (pool == nullptr) return FailInvalid("pool must not be NULL");
  return Done(pool->pool->Release(block));
}

int weft_pool_recover(weft_pool_t* pool, size_t* recovered) {
  weft::capi::Enter();
  if (pool == nullptr) return FailInvalid("pool must not be NULL");
  const size_t n = pool->pool->RecoverDead();
  if (recovered != nullptr) *recovered = n;
  return WEFT_OK;
}

}  // extern "C"
