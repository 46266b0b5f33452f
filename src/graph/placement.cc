// Routes across processes on one host, over Weft topics (weft/graph/placement.h).
#include "weft/graph/placement.h"

#include <atomic>
#include <cstdio>
#include <thread>

#include <poll.h>

#include "internal/record.h"
#include "weft/core/mutex.h"
#include "weft/shm/doorbell.h"
#include "weft/shm/topic.h"

namespace weft::graph {

struct ShmPlacement::State {
  static constexpr int64_t kSpinNs = 50'000;
  Route route;
  std::string topic;
  int64_t send_timeout_ms = 1000;
  Mutex send_mu;  // a Publisher is one thread's at a time; observers run on publishers' threads
  std::unique_ptr<shm::Publisher> pub WEFT_GUARDED_BY(send_mu);
  std::unique_ptr<shm::Subscriber> sub;  // the receiving thread's
  int own_index = -1;
  Subscription observing;
  std::thread receiver;
  std::atomic<bool> stopping{false};
  std::atomic<uint64_t> sent{0}, received{0}, send_errors{0}, refused{0};

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
    if (pub->Publish(*loan, size, Deadline::AfterMs(send_timeout_ms)).ok()) {
      ++sent;
    } else {
      ++send_errors;
    }
  }

  // Spins a while for the next value (a busy route's values come close together), then sleeps
  // on the subscriber's doorbell, which only a publisher sending to it rings (a sleep on the
  // topic's shared futex would be woken by every publish, this process's own included).
  void Receive() {
    auto bell = sub->WaitFd();
    while (!stopping.load()) {
      auto s = sub->Take(Deadline::AfterNs(kSpinNs));
      if (!s.ok() && bell.ok() && s.status().code() != Code::kClosed) {
        s = sub->Take(Deadline::Now());  // arms the doorbell if nothing is there
        if (!s.ok() && s.status().code() == Code::kWouldBlock) {
          pollfd p{*bell, POLLIN, 0};
          ::poll(&p, 1, 100);
          if (p.revents & POLLIN) shm::DrainDoorbell(*bell);
          continue;
        }
      }
      if (!s.ok()) {
        if (s.status().code() == Code::kClosed) return;
        continue;  // look at stopping again
      }
      if (s->publisher != own_index) {
        ++(internal::InjectRecord(route, ByteView(s->data.data(), s->data.size()), this) ? received : refused);
      }
      sub->Release(*s).IgnoreError();
    }
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
  s.sub = std::move(*sub);
  auto pub = shm::Publisher::Open(s.topic, topic);
  if (!pub.ok()) return pub.status();
  s.own_index = (*pub)->index();
  (*pub)->ExcludeSubscriber(s.sub->index());  // our own values stay here
  {
    MutexLock l(s.send_mu);
    s.pub = std::move(*pub);
  }
  std::weak_ptr<State> weak = p->s_;
  s.observing = route.Observe([weak](const SampleRef& v) {
    if (auto st = weak.lock()) st->Send(v);
  });
  State* raw = p->s_.get();
  s.receiver = std::thread([raw] { raw->Receive(); });
  return p;
}

ShmPlacement::~ShmPlacement() { Close(); }

void ShmPlacement::Close() {
  if (s_ == nullptr || s_->stopping.exchange(true)) return;
  s_->observing.Cancel();
  s_->sub->Interrupt();
  if (s_->receiver.joinable()) s_->receiver.join();
  MutexLock l(s_->send_mu);
  if (s_->pub != nullptr) s_->pub->Close().IgnoreError();
  s_->pub.reset();
}

PlacementStats ShmPlacement::stats() const {
  return {s_->sent.load(), s_->received.load(), s_->send_errors.load(), s_->refused.load(), 0};
}

const std::string& ShmPlacement::topic() const { return s_->topic; }

}  // namespace weft::graph
