// The gRPC client of `weft bench rpc`'s baseline rows, in a file of its own so that gRPC's
// headers are compiled once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace weft::bench {

// Round trips of Increment(1) to the server at 127.0.0.1:<port>, after `warm` unmeasured ones.
std::vector<int64_t> GrpcCallSamples(int port, int warm, int n);
// Nanoseconds each of `reps` calls of Sink took, each carrying `bytes` bytes (one message).
std::vector<int64_t> GrpcBulkSamples(int port, size_t bytes, int reps);

}  // namespace weft::bench
