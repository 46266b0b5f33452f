// The C ABI over weft::shm topics. Nothing throws across this boundary.
#include <cstring>
#include <memory>
#include <new>

#include "internal/capi_util.h"
#include "weft/shm/topic.h"
#include "weft/weft.h"

using weft::capi::Done;
using weft::capi::Fail;
using weft::capi::FailInvalid;
using weft::capi::ToDeadline;
using weft::shm::Publisher;
using weft::shm::Subscriber;

struct weft_publisher {
  std::unique_ptr<Publisher> pub;
};
struct weft_subscriber {
  std::unique_ptr<Subscriber> sub;
};

namespace {

weft::shm::TopicOptions ToOptions(const weft_topic_options_t* o) {
  weft::shm::TopicOptions t;
  if (o != nullptr) {
    t.queue_depth = o->queue_depth;
    t.history = o->history;
    t.pool.bytes = o->pool_bytes;
  }
  return t;
}

}  // namespace

extern "C" {

void weft_topic_options_init(weft_topic_options_t* opt) {
  if (opt == nullptr) return;
  std::memset(opt, 0, sizeof(*opt));
  opt->struct_size = sizeof(*opt);
  weft::shm::TopicOptions d;
  opt->queue_depth = d.queue_depth;
  opt->history = d.history;
  opt->pool_bytes = d.pool.bytes;
}

int weft_topic_unlink(const char* topic) {
  weft::capi::Enter();
  if (topic == nullptr) return FailInvalid("topic must not be NULL");
  return Done(weft::shm::UnlinkTopic(topic));
}

int weft_publisher_open(const char* topic, const weft_topic_options_t* create, weft_publisher_t** out) {
  weft::capi::Enter();
  if (topic == nullptr || out == nullptr) return FailInvalid("topic and out must not be NULL");
  *out = nullptr;
  if (create != nullptr && create->struct_size < sizeof(weft_topic_options_t)) return FailInvalid("options struct_size too small");
  auto r = Publisher::Open(topic, ToOptions(create));
  if (!r.ok()) return Fail(r.status());
  auto* h = new (std::nothrow) weft_publisher{std::move(r).value()};
  if (h == nullptr) return FailInvalid("out of memory");
  *out = h;
  return WEFT_OK;
}

int weft_publisher_close(weft_publisher_t* pub) {
  weft::capi::Enter();
  if (pub == nullptr) return WEFT_OK;
  weft::Status s = pub->pub->Close();
  delete pub;
  return Done(s);
}

int weft_publisher_loan(weft_publisher_t* pub, size_t n, uint64_t* block, void** data) {
  weft::capi::Enter();
  if (pub == nullptr || block == nullptr || data == nullptr) return FailInvalid("arguments must not be NULL");
  auto r = pub->pub->Loan(n);
  if (!r.ok()) return Fail(r.status());
  *block = r->block;
  *data = r->data.data();
  return WEFT_OK;
}

int weft_publisher_publish(weft_publisher_t* pub, uint64_t block, size_t size, int64_t timeout_ns) {
  weft::capi::Enter();
  if (pub == nullptr) return FailInvalid("publisher must not be NULL");
  return Done(pub->pub->Publish(block, size, ToDeadline(timeout_ns)));
}

int weft_publisher_discard(weft_publisher_t* pub, uint64_t block) {
  weft::capi::Enter();
  if (pub == nullptr) return FailInvalid("publisher must not be NULL");
  weft::shm::Sample s;
  s.block = block;
  return Done(pub->pub->Discard(s));
}

int weft_subscriber_open(const char* topic, uint32_t on_full, uint32_t history,
                         const weft_topic_options_t* create, weft_subscriber_t** out) {
  weft::capi::Enter();
  // WEFT_ON_FULL_* numbers drop-oldest and drop-newest the other way round from WEFT_OVERFLOW_*.
  static_assert(int{WEFT_ON_FULL_DROP_OLDEST} == int{WEFT_OVERFLOW_DROP_NEWEST} &&
                int{WEFT_ON_FULL_DROP_NEWEST} == int{WEFT_OVERFLOW_DROP_OLDEST});
  if (on_full > 2) {
    if (out != nullptr) *out = nullptr;
    return FailInvalid("on_full must be WEFT_ON_FULL_BLOCK, _DROP_OLDEST or _DROP_NEWEST");
  }
  const uint32_t overflow = on_full == WEFT_ON_FULL_BLOCK        ? WEFT_OVERFLOW_BLOCK
                            : on_full == WEFT_ON_FULL_DROP_OLDEST ? WEFT_OVERFLOW_DROP_OLDEST
                                                                  : WEFT_OVERFLOW_DROP_NEWEST;
  return weft_subscribe(topic, overflow, history, create, out);
}

int weft_subscribe(const char* topic, uint32_t overflow, uint32_t history, const weft_topic_options_t* create,
                   weft_subscriber_t** out) {
  weft::capi::Enter();
  if (topic == nullptr || out == nullptr) return FailInvalid("topic and out must not be NULL");
  *out = nullptr;
  static_assert(WEFT_OVERFLOW_FAIL == static_cast<int>(weft::Overflow::kFail) &&
                WEFT_OVERFLOW_DROP_OLDEST == static_cast<int>(weft::Overflow::kDropOldest) &&
                WEFT_OVERFLOW_DROP_NEWEST == static_cast<int>(weft::Overflow::kDropNewest));
  if (overflow >= weft::kOverflowCount) return FailInvalid("overflow must be one of WEFT_OVERFLOW_*");
  if (create != nullptr && create->struct_size < sizeof(weft_topic_options_t)) return FailInvalid("options struct_size too small");
  weft::shm::SubscriberOptions o;
  o.on_full = static_cast<weft::Overflow>(overflow);
  o.history = history;
  auto r = Subscriber::Open(topic, o, ToOptions(create));
  if (!r.ok()) return Fail(r.status());
  auto* h = new (std::nothrow) weft_subscriber{std::move(r).value()};
  if (h == nullptr) return FailInvalid("out of memory");
  *out = h;
  return WEFT_OK;
}

int weft_subscriber_close(weft_subscriber_t* sub) {
  weft::capi::Enter();
  if (sub == nullptr) return WEFT_OK;
  weft::Status s = sub->sub->Close();
  delete sub;
  return Done(s);
}

int weft_subscriber_take(weft_subscriber_t* sub, int64_t timeout_ns, weft_sample_t* sample) {
  weft::capi::Enter();
  if (sub == nullptr || sample == nullptr) return FailInvalid("arguments must not be NULL");
  auto r = sub->sub->Take(ToDeadline(timeout_ns));
  if (!r.ok()) return Fail(r.status());
  sample->block = r->block;
  sample->data = r->data.data();
  sample->size = r->data.size();
  sample->seq = r->seq;
  sample->publisher = r->publisher;
  return WEFT_OK;
}

int weft_subscriber_release(weft_subscriber_t* sub, uint64_t block) {
  weft::capi::Enter();
  if (sub == nullptr) return FailInvalid("subscriber must not be NULL");
  weft::shm::Sample s;
  s.block = block;
  return Done(sub->sub->Release(s));
}

int weft_subscriber_wait_fd(weft_subscriber_t* sub, int* fd) {
  weft::capi::Enter();
  if (sub == nullptr || fd == nullptr) return FailInvalid("arguments must not be NULL");
  auto r = sub->sub->WaitFd();
  if (!r.ok()) return Fail(r.status());
  *fd = *r;
  return WEFT_OK;
}

}  // extern "C"
