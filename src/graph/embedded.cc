// Scalar and bulk sensors and the embedded profile's check (weft/graph/embedded.h).
#include "weft/graph/embedded.h"

#include <atomic>
#include <cmath>
#include <cstring>

#include "weft/core/clock.h"
#include "weft/core/crc32c.h"
#include "weft/core/mutex.h"

namespace weft::graph {

namespace {

// The size of every value of a schema, or 0 if they vary: a Pod's, or a Python scalar's.
size_t FixedSizeOf(const Schema& s) {
  if (s.fixed_size() != 0) return s.fixed_size();
  if (s.text() == "f64" || s.text() == "i64") return 8;
  if (s.text() == "bool") return 1;
  return 0;
}

RouteName With(RouteName n, const char* variant, const char* layer) {
  n.variant = variant;
  n.layer = layer;
  return n;
}

}  // namespace

// ---- ScalarSensor ----

struct ScalarSensor::State {
  ScalarSensorOptions o;
  Route raw, logical;
  uint64_t edge = 0;
  Subscription sub;
  Mutex mu;
  bool has_last WEFT_GUARDED_BY(mu) = false;
  double smoothed WEFT_GUARDED_BY(mu) = 0;   // the filter's state
  double published WEFT_GUARDED_BY(mu) = 0;  // the last logical value published
  bool has_published WEFT_GUARDED_BY(mu) = false;
  std::atomic<uint64_t> suppressed{0};

  void OnRaw(const SampleRef& s) {
    auto b = s->bytes();
    if (!b.ok() || b->size() != sizeof(double)) return;
    double v;
    std::memcpy(&v, b->data(), sizeof(v));
    double out;
    {
      MutexLock l(mu);
      smoothed = has_last ? o.smoothing * v + (1 - o.smoothing) * smoothed : v;
      has_last = true;
      if (has_published && std::fabs(smoothed - published) <= o.deadband && o.deadband > 0) {
        suppressed.fetch_add(1, std::memory_order_relaxed);
        return;
      }
      published = smoothed;
      has_published = true;
      out = smoothed;
    }
    logical.Publish(std::string(reinterpret_cast<const char*>(&out), sizeof(out)), {.cause = &s->envelope()})
        .IgnoreError();
  }
};

Result<std::shared_ptr<ScalarSensor>> ScalarSensor::Create(Graph& graph, const RouteName& name, ScalarSensorOptions o) {
  if (!(o.smoothing > 0 && o.smoothing <= 1)) return InvalidArgument("a scalar sensor's smoothing is in (0, 1]");
  if (!(o.deadband >= 0) || !std::isfinite(o.deadband)) return InvalidArgument("a scalar sensor's deadband is 0 or more");
  auto f64 = Schema::FromText("f64");
  if (!f64.ok()) return f64.status();
  auto raw = graph.Declare(With(name, "meta", "raw"), *f64);
  if (!raw.ok()) return raw.status();
  auto logical = graph.Declare(With(name, "meta", "logical"), *f64);
  if (!logical.ok()) return logical.status();
  std::shared_ptr<ScalarSensor> sensor(new ScalarSensor());
  auto s = std::make_shared<State>();
  s->o = o;
  s->raw = *raw;
  s->logical = *logical;
  s->edge = s->raw.AddEdge(s->logical, "sensor", o.smoothing < 1 ? "smoothed" : "logical");
  std::weak_ptr<State> weak = s;
  s->sub = s->raw.Observe([weak](const SampleRef& v) {
    if (auto st = weak.lock()) st->OnRaw(v);
  });
  sensor->s_ = std::move(s);
  return sensor;
}

ScalarSensor::~ScalarSensor() { Close(); }
Route ScalarSensor::raw() const { return s_->raw; }
Route ScalarSensor::logical() const { return s_->logical; }
uint64_t ScalarSensor::suppressed() const { return s_->suppressed.load(); }

Status ScalarSensor::Read(double value, int64_t event_ns) const {
  if (std::isnan(value)) return InvalidArgument("a reading of " + s_->raw.name().ToString() + " is NaN");
  return s_->raw.Publish(std::string(reinterpret_cast<const char*>(&value), sizeof(value)), {.event_ns = event_ns});
}

void ScalarSensor::Close() {
  if (!s_->sub.active()) return;
  s_->sub.Cancel();
  s_->raw.RemoveEdge(s_->edge);
}

// ---- BulkSensor ----

Result<std::shared_ptr<BulkSensor>> BulkSensor::Create(Graph& graph, const RouteName& name, BulkSensorOptions o) {
  if (o.keep == 0) return InvalidArgument("a bulk sensor keeps at least one payload");
  auto meta = graph.Declare(With(name, "meta", "logical"), Schema::Pod<BulkMeta>("weft.bulk.meta.v1"));
  if (!meta.ok()) return meta.status();
  auto payload = graph.Declare(With(name, "payload", "bulk"), Schema::Bytes());
  if (!payload.ok()) return payload.status();
  auto lazy = LazyPayload::Create(*meta, *payload, {.keep = o.keep});
  if (!lazy.ok()) return lazy.status();
  std::shared_ptr<BulkSensor> b(new BulkSensor());
  b->meta_ = *meta;
  b->payload_ = *payload;
  b->lazy_ = std::move(*lazy);
  b->max_payload_ = o.max_payload_bytes;
  return b;
}

Status BulkSensor::Capture(std::string payload, uint32_t kind, int64_t event_ns) {
  if (payload.size() > max_payload_) {
    return InvalidArgument("a capture of " + std::to_string(payload.size()) + " bytes on " + payload_.name().ToString() +
                           " is over its limit of " + std::to_string(max_payload_));
  }
  if (event_ns == 0) event_ns = WallNs();
  BulkMeta m;
  m.bytes = payload.size();
  m.crc32c = Crc32c(0, payload.data(), payload.size());
  m.kind = kind;
  m.captured_ns = event_ns;
  return lazy_->Publish(std::string(reinterpret_cast<const char*>(&m), sizeof(m)), std::move(payload),
                        {.event_ns = event_ns});
}

Result<SampleRef> BulkSensor::Open(const SampleRef& meta) const {
  if (meta == nullptr) return InvalidArgument("opening no metadata");
  return Open(meta->envelope(), meta->as<BulkMeta>());
}

Result<SampleRef> BulkSensor::Open(const Envelope& meta_envelope, const BulkMeta& m) const {
  auto p = lazy_->Open(meta_envelope);
  if (!p.ok()) return p.status();
  auto b = (*p)->bytes();
  if (!b.ok()) return b.status();
  if (b->size() != m.bytes || Crc32c(0, b->data(), b->size()) != m.crc32c) {
    return Corrupt("the payload of " + payload_.name().ToString() + " does not match its metadata");
  }
  return p;
}

// ---- the profile ----

std::vector<std::string> CheckEmbeddedProfile(const Graph& graph, size_t max_meta_bytes) {
  std::vector<std::string> problems;
  for (const Route& r : graph.Routes()) {
    const RouteName& n = r.name();
    const size_t fixed = FixedSizeOf(r.schema());
    if (n.layer == "raw" && fixed == 0) {
      problems.push_back("raw route " + n.ToString() + " carries '" + r.schema().text() +
                         "', whose values vary in size: a raw signal has a fixed-size schema");
    }
    if (n.variant == "meta" && fixed > max_meta_bytes) {
      problems.push_back("metadata route " + n.ToString() + " carries " + std::to_string(fixed) +
                         "-byte values, over the profile's " + std::to_string(max_meta_bytes) +
                         ": put the bulk behind a payload route");
    }
  }
  return problems;
}

}  // namespace weft::graph
