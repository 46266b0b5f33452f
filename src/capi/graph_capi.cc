// The C ABI over weft::graph: routes at the bytes level. Nothing throws across this boundary.
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <new>

#include "internal/capi_util.h"
#include "weft/core/mutex.h"
#include "weft/graph/graph.h"
#include "weft/weft.h"

using weft::capi::Done;
using weft::capi::Fail;
using weft::capi::FailInvalid;

struct weft_graph {
  std::shared_ptr<weft::graph::Graph> g;
};

struct weft_route {
  weft::graph::Route route;
  weft::Mutex mu;
  std::map<uint64_t, weft::graph::Subscription> subs WEFT_GUARDED_BY(mu);
  uint64_t next WEFT_GUARDED_BY(mu) = 1;
};

namespace {

void Fill(const weft::graph::Envelope& e, weft_envelope_t* out) {
  out->seq = e.seq;
  out->id = e.id;
  out->producer = e.producer;
  out->event_ns = e.event_ns;
  out->ingest_ns = e.ingest_ns;
  out->trace = e.trace;
  out->causality = e.causality;
  out->correlation = e.correlation;
}

}  // namespace

extern "C" {

int weft_graph_create(weft_graph_t** out) {
  weft::capi::Enter();
  if (out == nullptr) return FailInvalid("out must not be NULL");
  auto* g = new (std::nothrow) weft_graph();
  if (g == nullptr) return Fail(weft::Status(weft::Code::kResourceExhausted, "out of memory"));
  g->g = weft::graph::Graph::Create();
  *out = g;
  return 0;
}

void weft_graph_destroy(weft_graph_t* g) { delete g; }

int weft_graph_declare(weft_graph_t* g, const char* name, const char* schema, weft_route_t** out) {
  weft::capi::Enter();
  if (g == nullptr || name == nullptr || schema == nullptr || out == nullptr) {
    return FailInvalid("graph, name, schema and out must not be NULL");
  }
  auto n = weft::graph::RouteName::Parse(name);
  if (!n.ok()) return Fail(n.status());
  auto s = weft::graph::Schema::FromText(schema);
  if (!s.ok()) return Fail(s.status());
  auto r = g->g->Declare(*n, *s);
  if (!r.ok()) return Fail(r.status());
  auto* h = new (std::nothrow) weft_route();
  if (h == nullptr) return Fail(weft::Status(weft::Code::kResourceExhausted, "out of memory"));
  h->route = *r;
  *out = h;
  return 0;
}

void weft_route_free(weft_route_t* r) { delete r; }

int weft_route_publish(weft_route_t* r, const void* data, size_t n, uint64_t producer, uint64_t correlation) {
  weft::capi::Enter();
  if (r == nullptr || (data == nullptr && n != 0)) return FailInvalid("route and data must not be NULL");
  weft::graph::Meta m;
  m.producer = producer;
  m.correlation = correlation;
  return Done(r->route.Publish(std::string(static_cast<const char*>(data), n), m));
}

int weft_route_latest(weft_route_t* r, void* buf, size_t cap, size_t* n, weft_envelope_t* env) {
  weft::capi::Enter();
  if (r == nullptr || n == nullptr || (buf == nullptr && cap != 0)) return FailInvalid("route, buf and n must not be NULL");
  weft::graph::SampleRef s = r->route.Latest();
  if (s == nullptr) return Fail(weft::NotFound("route " + r->route.name().ToString() + " has no value yet"));
  auto b = s->bytes();
  if (!b.ok()) return Fail(b.status());
  *n = b->size();
  if (env != nullptr) Fill(s->envelope(), env);
  if (b->size() > cap) return Fail(weft::TooLarge("a value of " + std::to_string(b->size()) + " bytes, a buffer of " + std::to_string(cap)));
  if (!b->empty()) std::memcpy(buf, b->data(), b->size());
  return 0;
}

int weft_route_observe(weft_route_t* r, weft_observer_fn fn, void* ctx, uint64_t* token) {
  weft::capi::Enter();
  if (r == nullptr || fn == nullptr || token == nullptr) return FailInvalid("route, fn and token must not be NULL");
  weft::graph::Subscription sub = r->route.Observe([fn, ctx](const weft::graph::SampleRef& s) {
    auto b = s->bytes();
    if (!b.ok()) return;  // a value another language could not encode: nothing to hand over
    weft_envelope_t e;
    Fill(s->envelope(), &e);
    fn(ctx, b->data(), b->size(), &e);
  });
  weft::MutexLock l(r->mu);
  *token = r->next++;
  r->subs.emplace(*token, std::move(sub));
  return 0;
}

int weft_route_unobserve(weft_route_t* r, uint64_t token) {
  weft::capi::Enter();
  if (r == nullptr) return FailInvalid("route must not be NULL");
  weft::graph::Subscription sub;
  {
    weft::MutexLock l(r->mu);
    auto it = r->subs.find(token);
    if (it == r->subs.end()) return Fail(weft::NotFound("no observation " + std::to_string(token) + " on this route"));
    sub = std::move(it->second);
    r->subs.erase(it);
  }
  sub.Cancel();  // outside the handle's lock: it may wait for a call in flight
  return 0;
}

}  // extern "C"
