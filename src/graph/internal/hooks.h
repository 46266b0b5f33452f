// How the graph lets a binding's own lock (Python's GIL) go while a thread waits inside it
// (SetWaitHooks, weft/graph/flow.h).
#pragma once

#include <atomic>

namespace weft::graph::internal {

extern std::atomic<void* (*)()> g_release_hook;
extern std::atomic<void (*)(void*)> g_reacquire_hook;

}  // namespace weft::graph::internal
