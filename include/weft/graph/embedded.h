// The embedded profile: the shapes a small device's signals take in the graph, and a check that
// a graph keeps to them. A scalar sensor is a raw route of readings and a logical route made
// from it (smoothed, with a deadband so that small changes cost nothing downstream). A bulk
// sensor publishes a cheap metadata value per capture and keeps the bulk payload behind it, to
// be opened on demand (weft/graph/lazy.h). Guide: docs/graph.md, "Embedded profile".
//
//   auto t = graph::ScalarSensor::Create(*g, {.owner = "board", .family = "env", .stream = "temp"},
//                                        {.smoothing = 0.2, .deadband = 0.05}).value();
//   t->Read(21.37);                          // raw; logical follows when it moves enough
//   auto diag = graph::BulkSensor::Create(*g, {.owner = "bms", .family = "battery", .stream = "dump"}).value();
//   diag->Capture(std::move(bytes), /*kind=*/1);   // metadata out, payload kept
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "weft/graph/graph.h"
#include "weft/graph/lazy.h"

namespace weft::graph {

struct ScalarSensorOptions {
  // The logical value: smoothing * reading + (1 - smoothing) * the previous logical value
  // (1: the reading itself), published when it moved by more than `deadband` since the last
  // one published (0: every time).
  double smoothing = 1.0;
  double deadband = 0.0;
};

// Readings as f64 ("f64", the Python float's schema): raw at <owner>/<family>/<stream>/meta/read/raw,
// logical at .../meta/read/logical, each logical value caused by the reading that made it.
class ScalarSensor {
 public:
  // kInvalidArgument for smoothing outside (0, 1] or a negative deadband; the names' errors.
  static Result<std::shared_ptr<ScalarSensor>> Create(Graph& graph, const RouteName& name, ScalarSensorOptions options = {});
  ~ScalarSensor();
  Route raw() const;
  Route logical() const;
  // Publishes a reading on the raw route (event_ns 0: now). kInvalidArgument for NaN.
  Status Read(double value, int64_t event_ns = 0) const;
  uint64_t suppressed() const;  // readings the deadband kept from the logical route
  void Close();

  struct State;

 private:
  ScalarSensor() = default;
  std::shared_ptr<State> s_;
};

// What a bulk capture's metadata says ("pod weft.bulk.meta.v1 size 24 align 8"). Python:
// Schema.pod("weft.bulk.meta.v1", "<QIIq").
struct BulkMeta {
  uint64_t bytes = 0;        // the payload's size
  uint32_t crc32c = 0;       // of the payload (an opener checks what it got)
  uint32_t kind = 0;         // the device's own word for what was captured
  int64_t captured_ns = 0;   // the capture's event time
};

struct BulkSensorOptions {
  size_t keep = 4;                       // payloads kept for opening, the newest
  size_t max_payload_bytes = 64 << 20;   // larger captures are refused
};

// Metadata at <owner>/<family>/<stream>/meta/read/logical, payloads ("bytes") at
// .../payload/read/bulk.
class BulkSensor {
 public:
  static Result<std::shared_ptr<BulkSensor>> Create(Graph& graph, const RouteName& name, BulkSensorOptions options = {});
  Route meta() const { return meta_; }
  Route payload() const { return payload_; }
  // Publishes the payload (kept) and then its metadata, caused by it. kInvalidArgument for a
  // payload larger than max_payload_bytes (nothing is published).
  Status Capture(std::string payload, uint32_t kind = 0, int64_t event_ns = 0);
  // The payload a metadata value announced; kNotFound once it left the kept window, kCorrupt
  // if it does not match the metadata's size and checksum. Counted (stats().opened).
  Result<SampleRef> Open(const SampleRef& meta) const;
  // The same, from a metadata value's envelope and contents (as a binding holds them).
  Result<SampleRef> Open(const Envelope& meta_envelope, const BulkMeta& meta) const;
  PayloadStats stats() const { return lazy_->stats(); }

 private:
  BulkSensor() = default;
  Route meta_, payload_;
  std::shared_ptr<LazyPayload> lazy_;
  size_t max_payload_ = 0;
};

// What in `graph` breaks the embedded profile, one sentence each: a raw-layer route whose
// values vary in size (a raw signal is fixed-size), and a metadata route (variant "meta")
// whose fixed values are larger than `max_meta_bytes` (bulk belongs behind a payload route).
std::vector<std::string> CheckEmbeddedProfile(const Graph& graph, size_t max_meta_bytes = 64);

}  // namespace weft::graph
