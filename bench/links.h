// Baseline transports for the benchmarks: Unix sockets, pipes, TCP loopback and ZeroMQ, each
// as a Link that sends and receives whole messages. A LinkPair is made before fork; each side
// then builds its own end.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace weft::bench {

class Link {
 public:
  virtual ~Link() = default;
  // Sends n bytes as one message. False on error.
  virtual bool Send(const void* data, size_t n) = 0;
  // Receives exactly n bytes (one message). False on error.
  virtual bool Recv(void* data, size_t n) = 0;
};

struct LinkPair {
  std::function<std::unique_ptr<Link>()> parent;  // call in the parent after fork
  std::function<std::unique_ptr<Link>()> child;   // call in the child after fork
  std::function<void()> cleanup;                   // call in the parent when done
};

// transport: "uds", "pipe", "tcp", "zmq" (PAIR) or "zmq-push" (PUSH in the child, PULL in the
// parent: one way). spin: receivers busy-poll instead of blocking.
LinkPair MakeLinkPair(const std::string& transport, bool spin);

// A counter's round trips over a link: the parent sends `msg` bytes carrying an i64 at
// `value_at`, the child adds it to its counter and sends the message back. The parent's times,
// after `warm` unmeasured ones: the least an RPC of those bytes over that link pays.
std::vector<int64_t> CounterRoundTrips(const std::string& transport, bool spin, size_t msg, size_t value_at, int warm,
                                       int n);

// The baselines this build has.
std::vector<std::string> BaselineTransports();

}  // namespace weft::bench
