// Lazy payloads: a stream's cheap metadata route beside its bulk payload route. Each payload is
// published on its own route and kept (the newest `keep`), then its metadata is published
// caused by it; observers of the metadata open the payload only when they want it (by the
// metadata's causality id), and every opening is counted: the payload demand of the route.
// A payload nobody opens is never copied or encoded. Guide: docs/graph.md, "Lazy payloads".
//
//   auto lazy = graph::LazyPayload::Create(frame_meta, frame_payload, {.keep = 4}).value();
//   lazy->Publish(meta_bytes, std::move(frame_bytes));
//   frame_meta.Observe([&](const graph::SampleRef& m) {
//     if (wanted(m)) use(lazy->Open(m->envelope()).value());   // counted
//   });
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "weft/graph/graph.h"

namespace weft::graph {

struct LazyOptions {
  size_t keep = 16;  // payloads kept for opening, the newest
};

struct PayloadStats {
  std::string name;
  size_t keep = 0;
  size_t kept = 0;             // now
  uint64_t published = 0;      // payloads seen on the payload route
  uint64_t opened = 0;         // openings: the payload demand
  uint64_t missed = 0;         // openings of a payload no longer kept (kNotFound)
  uint64_t never_opened = 0;   // payloads that left the window unopened
};

class LazyPayload {
 public:
  // Keeps the payloads of `payload` from now on (whoever publishes them: this process, or
  // another through a placement). An edge payload -> meta ("lazy") shows in the topology.
  static Result<std::shared_ptr<LazyPayload>> Create(Route meta, Route payload, LazyOptions options = {},
                                                     std::string name = "");
  ~LazyPayload();
  // The payload on its route, then the metadata caused by it (their publish errors).
  Status Publish(std::string meta, std::string payload, const Meta& m = {});
  // For bindings that publish the payload their own way: runs `publish_payload` (which
  // publishes one value on the payload route, on this thread) and returns the payload as kept,
  // whose envelope the metadata then names as its cause.
  Result<SampleRef> Capture(const std::function<Status()>& publish_payload);
  // The payload a metadata value announced: the kept payload whose id is the metadata's
  // causality; kNotFound if it has left the window (or was never seen). Counted.
  Result<SampleRef> Open(const Envelope& meta) const;
  Result<SampleRef> OpenId(uint64_t payload_id) const;
  PayloadStats stats() const;
  void Close();

 private:
  LazyPayload() = default;
  struct State;
  std::shared_ptr<State> s_;
};

}  // namespace weft::graph
