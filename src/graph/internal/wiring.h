// What every placement does with its state: sends what the route publishes (while the state
// lives: an observer call may still run on another thread after Cancel returns) and receives on
// a thread of its own. Internal to graph.
#pragma once

#include <memory>
#include <thread>

#include "weft/graph/graph.h"

namespace weft::graph::internal {

// S has Send(const SampleRef&), Receive(), and the members `observing` (a Subscription) and
// `receiver` (a std::thread).
template <typename S>
void WirePlacement(const std::shared_ptr<S>& state, const Route& route) {
  std::weak_ptr<S> weak = state;
  state->observing = route.Observe([weak](const SampleRef& v) {
    if (auto st = weak.lock()) st->Send(v);
  });
  S* raw = state.get();
  state->receiver = std::thread([raw] { raw->Receive(); });
}

}  // namespace weft::graph::internal
