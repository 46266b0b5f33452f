// Lazy payloads (weft/graph/lazy.h).
#include "weft/graph/lazy.h"

#include <deque>

#include "weft/core/mutex.h"
#include "weft/graph/inspect.h"

namespace weft::graph {

namespace {
// The payload this thread is publishing through LazyPayload::Publish, as the keeping observer
// saw it (it runs on the publisher's thread): the metadata's exact cause.
thread_local const void* t_publishing = nullptr;
thread_local SampleRef t_published;
}  // namespace

struct LazyPayload::State {
  Route meta, payload;
  std::string name;
  size_t keep = 0;
  Subscription keeping;
  uint64_t edge = 0;
  mutable Mutex mu;
  std::deque<std::pair<SampleRef, bool>> window WEFT_GUARDED_BY(mu);  // (payload, opened)
  uint64_t published WEFT_GUARDED_BY(mu) = 0;
  mutable uint64_t opened WEFT_GUARDED_BY(mu) = 0;
  mutable uint64_t missed WEFT_GUARDED_BY(mu) = 0;
  uint64_t never_opened WEFT_GUARDED_BY(mu) = 0;
};

Result<std::shared_ptr<LazyPayload>> LazyPayload::Create(Route meta, Route payload, LazyOptions o, std::string name) {
  if (o.keep == 0) return InvalidArgument("a lazy payload keeps at least one payload");
  std::shared_ptr<LazyPayload> l(new LazyPayload());
  l->s_ = std::make_shared<State>();
  State& s = *l->s_;
  s.meta = meta;
  s.payload = payload;
  s.keep = o.keep;
  s.name = name.empty() ? "lazy " + meta.name().ToString() : std::move(name);
  std::weak_ptr<State> weak = l->s_;
  s.keeping = payload.Observe([weak](const SampleRef& v) {
    auto st = weak.lock();
    if (st == nullptr) return;
    if (t_publishing == st.get()) t_published = v;
    SampleRef evicted;  // dropped after the lock (it may hold a block, or a binding's object)
    MutexLock lock(st->mu);
    ++st->published;
    st->window.emplace_back(v, false);
    if (st->window.size() > st->keep) {
      if (!st->window.front().second) ++st->never_opened;
      evicted = std::move(st->window.front().first);
      st->window.pop_front();
    }
  });
  s.edge = payload.AddEdge(meta, "lazy", s.name);
  return l;
}

LazyPayload::~LazyPayload() { Close(); }

void LazyPayload::Close() {
  if (s_ == nullptr || !s_->keeping.active()) return;
  s_->keeping.Cancel();
  s_->payload.RemoveEdge(s_->edge);
  std::deque<std::pair<SampleRef, bool>> gone;
  MutexLock l(s_->mu);
  gone.swap(s_->window);
}

Result<SampleRef> LazyPayload::Capture(const std::function<Status()>& publish_payload) {
  t_publishing = s_.get();
  Status st = publish_payload();
  t_publishing = nullptr;
  SampleRef p = std::move(t_published);
  t_published = nullptr;
  WEFT_RETURN_IF_ERROR(st);
  if (p == nullptr) {
    return Status(Code::kClosed, "no payload of " + s_->payload.name().ToString() + " was kept (closed, or not published)");
  }
  return p;
}

Status LazyPayload::Publish(std::string meta, std::string payload, const Meta& m) {
  auto p = Capture([&] { return s_->payload.Publish(std::move(payload), m); });
  if (!p.ok()) return p.status();
  Meta caused = m;
  caused.cause = &(*p)->envelope();
  return s_->meta.Publish(std::move(meta), caused);
}

Result<SampleRef> LazyPayload::Open(const Envelope& meta) const { return OpenId(meta.causality); }

Result<SampleRef> LazyPayload::OpenId(uint64_t id) const {
  MutexLock l(s_->mu);
  for (auto it = s_->window.rbegin(); it != s_->window.rend(); ++it) {
    if (it->first->envelope().id == id) {
      ++s_->opened;
      it->second = true;
      return it->first;
    }
  }
  ++s_->missed;
  return NotFound("payload " + std::to_string(id) + " of " + s_->payload.name().ToString() + " is not kept (the newest " +
                  std::to_string(s_->keep) + " are)");
}

PayloadStats LazyPayload::stats() const {
  MutexLock l(s_->mu);
  return {s_->name, s_->keep, s_->window.size(), s_->published, s_->opened, s_->missed, s_->never_opened};
}

}  // namespace weft::graph
