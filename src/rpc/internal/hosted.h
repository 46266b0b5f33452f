// What server.cc and client.cc share: a hosted resource, this process's servers by id (for
// inproc:// clients), the credit of streams, deadlines on the wire, and the TLS settings of
// tcp://. Internal to rpc.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "blocks.h"
#include "weft/net/tls.h"
#include "weft/rpc/rpc.h"
#include "weft/rpc/scheduler.h"

namespace weft::rpc::internal {

inline constexpr int64_t kInitialCredit = 16;  // chunks a server may send before the client's first credit
inline constexpr uint32_t kCreditBatch = 8;    // the client grants credit this many chunks at a time

struct Hosted {
  uint32_t id = 0;
  std::string name;
  Resource resource;
  std::vector<Handler> handlers;  // by method index
  Scheduler scheduler;
  std::shared_ptr<Blocks> blocks;  // the server's pool (null once it shut down)
  // Set at Shutdown. An in-process call checks it once it holds its turn in the scheduler, and
  // Shutdown takes a write turn after setting it: so a call either finishes before Shutdown
  // goes on, or sees the flag and does not run.
  std::atomic<bool> closed{false};
};

// This process's servers by id.
void PublishServer(const std::string& id, Server::Impl* server);
void UnpublishServer(const std::string& id);
// Resource `name` of this process's server `id` (kNotFound if either is missing).
Result<std::shared_ptr<Hosted>> FindInproc(const std::string& id, const std::string& name);

// Deadlines travel as the time left when the frame was sent (0: none).
inline int64_t DeadlineToWire(Deadline d) {
  if (d.is_never()) return 0;
  return std::max<int64_t>(1, d.RemainingNs());
}
inline Deadline DeadlineFromWire(int64_t left_ns) {
  if (left_ns <= 0 || left_ns > (int64_t{1} << 62)) return Deadline::Never();
  return Deadline::AfterNs(left_ns);
}

inline net::TlsConfig TlsConfig(const TcpSecurity& s) {
  return net::TlsConfig{s.key_file, s.trusted_keys, s.ca_file, s.cert_file};
}

}  // namespace weft::rpc::internal
