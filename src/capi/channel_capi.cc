// The C ABI over weft::shm::Channel. Nothing throws across this boundary.
#include <cstring>
#include <memory>
#include <new>
#include <string>

#include "weft/shm/channel.h"
#include "weft/weft.h"
#include "internal/capi_util.h"

using weft::Code;
using weft::Deadline;
using weft::Status;
using weft::shm::Channel;
using weft::capi::Done;
using weft::capi::Fail;
using weft::capi::FailInvalid;
using weft::capi::ToDeadline;

struct weft_channel {
  std::unique_ptr<Channel> ch;
};

extern "C" {

uint32_t weft_abi_version(void) { return WEFT_ABI_VERSION; }
const char* weft_last_error_message(void) { return weft::capi::LastError().c_str(); }
const char* weft_error_name(int code) { return weft::CodeName(static_cast<Code>(code)); }

// The C values are checked against the one table of codes (weft/core/status_codes.h).
#define WEFT_CHECK_C_CODE(E, n, name, c, ...) \
  static_assert(c == n && static_cast<int>(weft::Code::k##E) == n, "WEFT_E* differs from the status table: " name);
WEFT_STATUS_CODES(WEFT_CHECK_C_CODE)
#undef WEFT_CHECK_C_CODE
static_assert(WEFT_RETRY_NO == static_cast<int>(weft::Retry::kNo) &&
              WEFT_RETRY_WHEN_READY == static_cast<int>(weft::Retry::kWhenReady) &&
              WEFT_RETRY_BACKOFF == static_cast<int>(weft::Retry::kBackoff) &&
              WEFT_RETRY_RECONNECT == static_cast<int>(weft::Retry::kReconnect));

int weft_error_retry(int code) { return static_cast<int>(weft::CodeRetry(static_cast<Code>(code))); }

void weft_channel_options_init(weft_channel_options_t* opt) {
  if (opt == nullptr) return;
  std::memset(opt, 0, sizeof(*opt));
  opt->struct_size = sizeof(*opt);
  weft::shm::ChannelOptions d;
  opt->capacity = d.capacity;
  opt->spin_ns = d.wait.spin_ns;
  opt->role = WEFT_ROLE_PRODUCER;
}

int weft_channel_create(const char* name, const weft_channel_options_t* opt, weft_channel_t** out) {
  weft::capi::Enter();
  if (name == nullptr || out == nullptr) return FailInvalid("name and out must not be NULL");
  *out = nullptr;
  weft::shm::ChannelOptions o;
  if (opt != nullptr) {
    if (opt->struct_size < sizeof(weft_channel_options_t)) return FailInvalid("options struct_size too small");
    if (opt->role > 1) return FailInvalid("role must be WEFT_ROLE_PRODUCER or WEFT_ROLE_CONSUMER");
    if (opt->overflow > 2) return FailInvalid("unknown overflow policy");
    o.capacity = opt->capacity;
    o.max_record = opt->max_record;
    o.overflow = static_cast<weft::shm::Overflow>(opt->overflow);
    o.role = static_cast<weft::shm::Role>(opt->role);
    o.wait.spin_ns = opt->spin_ns;
  }
  auto r = Channel::Create(name, o);
  if (!r.ok()) return Fail(r.status());
  auto* h = new (std::nothrow) weft_channel{std::move(r).value()};
  if (h == nullptr) return FailInvalid("out of memory");
  *out = h;
  return WEFT_OK;
}

int weft_channel_open(const char* name, uint32_t role, weft_channel_t** out) {
  weft::capi::Enter();
  if (name == nullptr || out == nullptr) return FailInvalid("name and out must not be NULL");
  *out = nullptr;
  if (role > 1) return FailInvalid("role must be WEFT_ROLE_PRODUCER or WEFT_ROLE_CONSUMER");
  auto r = Channel::Open(name, static_cast<weft::shm::Role>(role));
  if (!r.ok()) return Fail(r.status());
  auto* h = new (std::nothrow) weft_channel{std::move(r).value()};
  if (h == nullptr) return FailInvalid("out of memory");
  *out = h;
  return WEFT_OK;
}

int weft_channel_close(weft_channel_t* ch) {
  weft::capi::Enter();
  if (ch == nullptr) return WEFT_OK;
  Status s = ch->ch->Close();
  delete ch;
  return Done(s);
}

int weft_channel_unlink(const char* name) {
  weft::capi::Enter();
  if (name == nullptr) return FailInvalid("name must not be NULL");
  return Done(Channel::Unlink(name));
}

int weft_channel_reserve(weft_channel_t* ch, size_t n, int64_t timeout_ns, void** data) {
  weft::capi::Enter();
  if (ch == nullptr || data == nullptr) return FailInvalid("channel and data must not be NULL");
  auto r = ch->ch->Reserve(n, ToDeadline(timeout_ns));
  if (!r.ok()) return Fail(r.status());
  *data = r->data();
  return WEFT_OK;
}

int weft_channel_commit(weft_channel_t* ch, size_t actual) {
  weft::capi::Enter();
  if (ch == nullptr) return FailInvalid("channel must not be NULL");
  return Done(ch->ch->Commit(actual));
}

int weft_channel_commit_batched(weft_channel_t* ch, size_t actual) {
  weft::capi::Enter();
  if (ch == nullptr) return FailInvalid("channel must not be NULL");
  return Done(ch->ch->CommitBatched(actual));
}

int weft_channel_flush(weft_channel_t* ch) {
  weft::capi::Enter();
  if (ch == nullptr) return FailInvalid("channel must not be NULL");
  ch->ch->Flush();
  return WEFT_OK;
}

int weft_channel_write(weft_channel_t* ch, const void* data, size_t n, int64_t timeout_ns) {
  weft::capi::Enter();
  if (ch == nullptr || (data == nullptr && n != 0)) return FailInvalid("channel and data must not be NULL");
  return Done(ch->ch->Write(weft::ByteView(static_cast<const uint8_t*>(data), n), ToDeadline(timeout_ns)));
}

int weft_channel_read(weft_channel_t* ch, int64_t timeout_ns, const void** data, size_t* n) {
  weft::capi::Enter();
  if (ch == nullptr || data == nullptr || n == nullptr) return FailInvalid("arguments must not be NULL");
  auto r = ch->ch->Read(ToDeadline(timeout_ns));
  if (!r.ok()) return Fail(r.status());
  *data = r->data();
  *n = r->size();
  return WEFT_OK;
}

int weft_channel_release(weft_channel_t* ch, size_t count) {
  weft::capi::Enter();
  if (ch == nullptr) return FailInvalid("channel must not be NULL");
  return Done(ch->ch->Release(count));
}

int weft_channel_read_into(weft_channel_t* ch, void* buf, size_t cap, size_t* n, int64_t timeout_ns) {
  weft::capi::Enter();
  if (ch == nullptr || n == nullptr || (buf == nullptr && cap != 0)) return FailInvalid("arguments must not be NULL");
  auto r = ch->ch->Read(ToDeadline(timeout_ns));
  if (!r.ok()) return Fail(r.status());
  *n = r->size();
  if (r->size() > cap) {
    Status s = ch->ch->Unread();
    return Fail(s.ok() ? weft::TooLarge("record of " + std::to_string(r->size()) +
                                        " bytes does not fit a buffer of " + std::to_string(cap))
                       : s);
  }
  if (r->size() != 0) std::memcpy(buf, r->data(), r->size());
  return Done(ch->ch->Release(1));
}

int weft_channel_wait_fd(weft_channel_t* ch, int* fd) {
  weft::capi::Enter();
  if (ch == nullptr || fd == nullptr) return FailInvalid("arguments must not be NULL");
  auto r = ch->ch->WaitFd();
  if (!r.ok()) return Fail(r.status());
  *fd = *r;
  return WEFT_OK;
}

int weft_channel_stats(weft_channel_t* ch, weft_channel_stats_t* out) {
  weft::capi::Enter();
  if (ch == nullptr || out == nullptr) return FailInvalid("arguments must not be NULL");
  if (out->struct_size < sizeof(weft_channel_stats_t)) return FailInvalid("stats struct_size too small");
  weft::shm::ChannelSnapshot s = ch->ch->Stats();
  out->records_in = s.records_in;
  out->bytes_in = s.bytes_in;
  out->records_out = s.records_out;
  out->bytes_out = s.bytes_out;
  out->producer_spins = s.producer_spins;
  out->producer_sleeps = s.producer_sleeps;
  out->producer_wakes = s.producer_wakes;
  out->consumer_spins = s.consumer_spins;
  out->consumer_sleeps = s.consumer_sleeps;
  out->consumer_wakes = s.consumer_wakes;
  out->drops_newest = s.drops_newest;
  out->drops_oldest = s.drops_oldest;
  out->capacity = s.capacity;
  out->max_record = s.max_record;
  out->write_pos = s.write_pos;
  out->read_pos = s.read_pos;
  return WEFT_OK;
}

}  // extern "C"
