// The C ABI over weft::bus. Nothing throws across this boundary.
#include <cstddef>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "internal/capi_util.h"
#include "internal/log_options.h"
#include "weft/bus/bus.h"
#include "weft/weft.h"

using weft::ByteView;
using weft::capi::Done;
using weft::capi::Fail;
using weft::capi::FailInvalid;
using weft::capi::ToDeadline;

struct weft_bus {
  std::unique_ptr<weft::bus::Bus> bus;
};

struct weft_bus_consumer {
  std::unique_ptr<weft::bus::Consumer> consumer;
};

extern "C" {

void weft_bus_options_init(weft_bus_options_t* opt) {
  if (opt == nullptr) return;
  std::memset(opt, 0, sizeof(*opt));
  opt->struct_size = sizeof(*opt);
  weft::bus::BusOptions d;
  opt->shard_bytes = d.shard_bytes;
  opt->backpressure = static_cast<uint32_t>(d.backpressure);
  weft_log_options_init(&opt->log);
  opt->linger_events = d.linger_events;
  opt->claim_idle_ms = d.remote.claim_idle_ms;
  opt->op_timeout_ms = d.remote.op_timeout_ms;
  opt->dedup_window_ms = d.remote.dedup_window_ms;
  opt->dedup_capacity = d.remote.dedup_capacity;
  opt->replicas = static_cast<uint32_t>(d.remote.replicas);
}

int weft_bus_open(const char* url, const weft_bus_options_t* opt, weft_bus_t** out) {
  weft::capi::Enter();
  if (url == nullptr || out == nullptr) return FailInvalid("url and out must not be NULL");
  *out = nullptr;
  weft::bus::BusOptions o;
  o.url = url;
  if (opt != nullptr) {
    // The remote fields came later: a struct that ends before them takes their defaults.
    if (opt->struct_size < offsetof(weft_bus_options_t, nonce_path)) return FailInvalid("options struct_size too small");
    if (opt->group_count != 0 && opt->groups == nullptr) return FailInvalid("groups must not be NULL");
    o.shards = opt->shards;
    o.shard_bytes = opt->shard_bytes;
    o.max_event = opt->max_event;
    o.backpressure = static_cast<weft::Overflow>(opt->backpressure);
    o.timestamps = opt->timestamps != 0;
    o.must_match = opt->must_match != 0;
    for (size_t i = 0; i < opt->group_count; ++i) {
      if (opt->groups[i] == nullptr) return FailInvalid("a NULL group name");
      o.groups.emplace_back(opt->groups[i]);
    }
    if (const int rc = weft::capi::ToLogOptions(opt->log, &o.log); rc != 0) return rc;
    o.linger_ns = opt->linger_ns;
    o.linger_events = opt->linger_events;
    if (opt->struct_size >= sizeof(weft_bus_options_t)) {
      if (opt->nonce_path != nullptr) o.remote.nonce_path = opt->nonce_path;
      o.remote.max_len = opt->max_len;
      o.remote.claim_idle_ms = opt->claim_idle_ms;
      o.remote.op_timeout_ms = opt->op_timeout_ms;
      o.remote.dedup_window_ms = opt->dedup_window_ms;
      o.remote.dedup_capacity = opt->dedup_capacity;
      o.remote.replicas = static_cast<int>(opt->replicas);
    }
  }
  auto r = weft::bus::Bus::Open(o);
  if (!r.ok()) return Fail(r.status());
  auto* h = new (std::nothrow) weft_bus{std::move(r).value()};
  if (h == nullptr) return FailInvalid("out of memory");
  *out = h;
  return WEFT_OK;
}

int weft_bus_close(weft_bus_t* bus) {
  weft::capi::Enter();
  delete bus;
  return WEFT_OK;
}

int weft_bus_unlink(const char* url) {
  weft::capi::Enter();
  if (url == nullptr) return FailInvalid("url must not be NULL");
  return Done(weft::bus::Bus::Unlink(url));
}

int weft_bus_ingest(weft_bus_t* bus, const void* key, size_t key_size, const void* data, size_t size,
                    int64_t timeout_ns, uint32_t* shard, uint64_t* offset) {
  weft::capi::Enter();
  if (bus == nullptr || (data == nullptr && size != 0)) return FailInvalid("bus and data must not be NULL");
  const ByteView d(static_cast<const uint8_t*>(data), size);
  auto r = key == nullptr ? bus->bus->Ingest(d, ToDeadline(timeout_ns))
                          : bus->bus->IngestKeyed(ByteView(static_cast<const uint8_t*>(key), key_size), d,
                                                  ToDeadline(timeout_ns));
  if (!r.ok()) return Fail(r.status());
  if (shard != nullptr) *shard = r->shard;
  if (offset != nullptr) *offset = r->offset;
  return WEFT_OK;
}

int weft_bus_ingest_batch(weft_bus_t* bus, const void* const* data, const size_t* sizes, size_t count,
                          int64_t timeout_ns, size_t* ingested) {
  weft::capi::Enter();
  if (bus == nullptr) return FailInvalid("bus must not be NULL");
  std::vector<ByteView> views;
  if (const int rc = weft::capi::ToViews(data, sizes, count, "a NULL event", &views); rc != 0) return rc;
  auto r = bus->bus->IngestBatch(views, ToDeadline(timeout_ns));
  if (!r.ok()) return Fail(r.status());
  if (ingested != nullptr) *ingested = *r;
  return WEFT_OK;
}

int weft_bus_subscribe(weft_bus_t* bus, const char* group, uint32_t auto_commit, weft_bus_consumer_t** out) {
  weft::capi::Enter();
  if (bus == nullptr || group == nullptr || out == nullptr) return FailInvalid("bus, group and out must not be NULL");
  *out = nullptr;
  auto r = bus->bus->Subscribe(group, {.auto_commit = auto_commit != 0});
  if (!r.ok()) return Fail(r.status());
  auto* h = new (std::nothrow) weft_bus_consumer{std::move(r).value()};
  if (h == nullptr) return FailInvalid("out of memory");
  *out = h;
  return WEFT_OK;
}

int weft_bus_poll(weft_bus_consumer_t* consumer, weft_bus_event_t* events, size_t capacity, int64_t timeout_ns,
                  size_t* count) {
  weft::capi::Enter();
  if (consumer == nullptr || events == nullptr || count == nullptr) {
    return FailInvalid("consumer, events and count must not be NULL");
  }
  *count = 0;
  auto r = consumer->consumer->Poll(capacity, ToDeadline(timeout_ns));
  if (!r.ok()) return Fail(r.status());
  for (const weft::bus::Event& e : *r) {
    weft_bus_event_t& x = events[(*count)++];
    std::memset(&x, 0, sizeof(x));
    x.shard = e.position.shard;
    x.offset = e.position.offset;
    x.timestamp_ns = e.timestamp_ns;
    x.key = e.key.empty() ? nullptr : e.key.data();
    x.key_size = e.key.size();
    x.data = e.data.data();
    x.data_size = e.data.size();
  }
  return WEFT_OK;
}

int weft_bus_commit(weft_bus_consumer_t* consumer) {
  weft::capi::Enter();
  if (consumer == nullptr) return FailInvalid("consumer must not be NULL");
  return Done(consumer->consumer->Commit());
}

int weft_bus_flush(weft_bus_t* bus) {
  weft::capi::Enter();
  if (bus == nullptr) return FailInvalid("bus must not be NULL");
  return Done(bus->bus->Flush());
}

int weft_bus_consumer_wait_fd(weft_bus_consumer_t* consumer, int* fd) {
  weft::capi::Enter();
  if (consumer == nullptr || fd == nullptr) return FailInvalid("arguments must not be NULL");
  auto r = consumer->consumer->WaitFd();
  if (!r.ok()) return Fail(r.status());
  *fd = *r;
  return WEFT_OK;
}

void weft_bus_consumer_interrupt(weft_bus_consumer_t* consumer) {
  if (consumer != nullptr) consumer->consumer->Interrupt();
}

int weft_bus_consumer_close(weft_bus_consumer_t* consumer) {
  weft::capi::Enter();
  if (consumer == nullptr) return WEFT_OK;
  const int rc = Done(consumer->consumer->Close());
  delete consumer;
  return rc;
}

}  // extern "C"
