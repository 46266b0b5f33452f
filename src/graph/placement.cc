// Routes across processes on one host, over Weft topics (weft/graph/placement.h).
#include "weft/graph/placement.h"

#include <atomic>
#include <cstdio>
#include <thread>

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "internal/record.h"
#include "internal/wiring.h"
#include "weft/core/mutex.h"
#include "weft/shm/doorbell.h"
#include "weft/shm/topic.h"

namespace weft::graph {

namespace {

// The subscriber, apart from the placement: samples read in place hold it (its mapping of the
// topic's pool) until the last of them goes, and give their blocks back through it. Blocks are
// released by the receiving thread (a Subscriber is one thread's at a time), woken by `wake`;
// once that thread is done, by whoever drops the last sample, under the lock.
struct SubHolder {
  std::unique_ptr<shm::Subscriber> sub;
  int wake = -1;  // an eventfd
  Mutex mu;
  std::vector<shm::Sample> to_release WEFT_GUARDED_BY(mu);
  std::atomic<bool> waiting{false};  // to_release is not empty (read without the lock)
  bool receiver_done WEFT_GUARDED_BY(mu) = false;

  ~SubHolder() {
    if (wake >= 0) ::close(wake);
  }
  void GiveBack(const shm::Sample& s) {
    MutexLock l(mu);
    if (receiver_done) {
      sub->Release(s).IgnoreError();
      return;
    }
    to_release.push_back(s);
    waiting.store(true, std::memory_order_release);
    const uint64_t one = 1;
    (void)!::write(wake, &one, sizeof(one));
  }
  // On the receiving thread.
  void ReleaseWaiting(bool last) {
    if (!last && !waiting.load(std::memory_order_acquire)) return;  // the common case: nothing
    std::vector<shm::Sample> batch;
    {
      MutexLock l(mu);
      waiting.store(false, std::memory_order_relaxed);
      batch.swap(to_release);
      if (last) receiver_done = true;
      if (last) {
        for (const shm::Sample& s : batch) sub->Release(s).IgnoreError();
        return;
      }
    }
    for (const shm::Sample& s : batch) sub->Release(s).IgnoreError();
  }
};

}  // namespace

struct ShmPlacement::State {
  static constexpr int64_t kSpinNs = 50'000;
  Route route;
  std::string topic;
  int64_t send_timeout_ms = 1000;
  size_t in_place_from = 0;
  Mutex send_mu;  // a Publisher is one thread's at a time; observers run on publishers' threads
  std::unique_ptr<shm::Publisher> pub WEFT_GUARDED_BY(send_mu);
  std::shared_ptr<SubHolder> holder;  // its subscriber is the receiving thread's
  int own_index = -1;
  Subscription observing;
  std::thread receiver;
  std::atomic<bool> stopping{false};
  std::atomic<uint64_t> sent{0}, received{0}, send_errors{0}, refused{0}, in_place{0};

  // Sends a value published here (not one that came from the topic) to the other processes.
  void Send(const SampleRef& v) {
    if (v->origin() == this) return;
    auto bytes = v->bytes();
    if (!bytes.ok()) {
      ++send_errors;
      return;
    }
    const size_t size = internal::kRecordHeader + bytes->size();
    MutexLock l(send_mu);
    if (pub == nullptr) return;
    auto loan = pub->Loan(size);
    if (!loan.ok()) {
      ++send_errors;
      return;
    }
    internal::EncodeRecordInto(loan->data.data(), v->envelope(), route.schema().id(), *bytes);
    // At once if every subscriber has room (no clock read), else waiting up to the timeout.
    Status st = pub->Publish(*loan, size, Deadline::Now());
    if (!st.ok() && (st.code() == Code::kWouldBlock || st.code() == Code::kTimeout)) {
      st = pub->Publish(*loan, size, Deadline::AfterMs(send_timeout_ms));
    }
    ++(st.ok() ? sent : send_errors);
  }

  // Spins a while for the next value (a busy route's values come close together), then sleeps
  // on the subscriber's doorbell, which only a publisher sending to it rings (a sleep on the
  // topic's shared futex would be woken by every publish, this process's own included), and on
  // the holder's eventfd, which a sample read in place rings when its block is given back.
  void Receive() {
    shm::Subscriber* sub = holder->sub.get();
    auto bell = sub->WaitFd();
    while (!stopping.load()) {
      holder->ReleaseWaiting(false);
      auto s = sub->Take(Deadline::AfterNs(kSpinNs));
      if (!s.ok() && bell.ok() && s.status().code() != Code::kClosed) {
        s = sub->Take(Deadline::Now());  // arms the doorbell if nothing is there
        if (!s.ok() && s.status().code() == Code::kWouldBlock) {
          pollfd p[2] = {{*bell, POLLIN, 0}, {holder->wake, POLLIN, 0}};
          ::poll(p, 2, 100);
          if (p[0].revents & POLLIN) shm::DrainDoorbell(*bell);
          if (p[1].revents & POLLIN) {
            uint64_t n;
            (void)!::read(holder->wake, &n, sizeof(n));
          }
          continue;
        }
      }
      if (!s.ok()) {
        if (s.status().code() == Code::kClosed) break;
        continue;  // look at stopping again
      }
      if (s->publisher == own_index) {
        sub->Release(*s).IgnoreError();
        continue;
      }
      const ByteView record(s->data.data(), s->data.size());
      if (record.size() >= internal::kRecordHeader + in_place_from && InPlace(*s, record)) continue;
      ++(internal::InjectRecord(route, record, this) ? received : refused);
      sub->Release(*s).IgnoreError();
    }
    holder->ReleaseWaiting(true);
  }

  // A large value is published as it lies in the block: its samples hold the block, given back
  // when the last of them goes. False if the record is refused (the caller counts it and
  // releases the block).
  bool InPlace(const shm::Sample& s, ByteView record) {
    auto d = internal::DecodeRecord(record);
    if (!d.ok() || d->schema_id != route.schema().id()) return false;
    std::shared_ptr<SubHolder> h = holder;
    std::shared_ptr<const void> keep(static_cast<const void*>(h.get()), [h, s](const void*) { h->GiveBack(s); });
    if (route.InjectInPlace(d->env, d->value, std::move(keep), this).ok()) {
      ++received;
      ++in_place;
    } else {
      ++refused;  // the block went back with `keep`
    }
    return true;
  }
};

std::string ShmPlacement::TopicFor(const RouteName& name) {
  std::string text = name.ToString(), out = "g.";
  for (size_t i = 0; i < text.size() && i < 60; ++i) out += text[i] == '/' ? '.' : text[i];
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : text) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  char hex[20];
  std::snprintf(hex, sizeof(hex), ".%016llx", static_cast<unsigned long long>(h));
  return out + hex;
}

Result<std::shared_ptr<ShmPlacement>> ShmPlacement::Create(Route route, ShmPlacementOptions o) {
  std::shared_ptr<ShmPlacement> p(new ShmPlacement());
  p->s_ = std::make_shared<State>();
  State& s = *p->s_;
  s.route = route;
  s.topic = o.topic.empty() ? TopicFor(route.name()) : o.topic;
  s.send_timeout_ms = o.send_timeout_ms;
  shm::TopicOptions topic;
  topic.max_publishers = 16;
  topic.max_subscribers = 16;
  topic.queue_depth = o.queue_depth;
  topic.pool.bytes = o.pool_bytes;
  shm::SubscriberOptions so;
  so.on_full = Overflow::kBlock;
  so.spin_ns = -1;  // Take spins to its deadline; the receiver sleeps on the doorbell instead
  auto sub = shm::Subscriber::Open(s.topic, so, topic);
  if (!sub.ok()) return sub.status();
  s.holder = std::make_shared<SubHolder>();
  s.holder->sub = std::move(*sub);
  s.holder->wake = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (s.holder->wake < 0) return ErrnoStatus(errno, "eventfd");
  s.in_place_from = o.in_place_from;
  auto pub = shm::Publisher::Open(s.topic, topic);
  if (!pub.ok()) return pub.status();
  s.own_index = (*pub)->index();
  (*pub)->ExcludeSubscriber(s.holder->sub->index());  // our own values stay here
  {
    MutexLock l(s.send_mu);
    s.pub = std::move(*pub);
  }
  internal::WirePlacement(p->s_, route);
  return p;
}

ShmPlacement::~ShmPlacement() { Close(); }

void ShmPlacement::Close() {
  if (s_ == nullptr || s_->stopping.exchange(true)) return;
  s_->observing.Cancel();
  s_->holder->sub->Interrupt();
  if (s_->receiver.joinable()) s_->receiver.join();
  MutexLock l(s_->send_mu);
  if (s_->pub != nullptr) s_->pub->Close().IgnoreError();
  s_->pub.reset();
}

PlacementStats ShmPlacement::stats() const {
  return {s_->sent.load(), s_->received.load(), s_->send_errors.load(), s_->refused.load(), 0, s_->in_place.load()};
}

const std::string& ShmPlacement::topic() const { return s_->topic; }

}  // namespace weft::graph
