// What the remote backends (redis_bus.cc, nats_bus.cc) share: the bus's shape as the server
// keeps it (a short text written by the first opener and parsed by every later one, from
// bytes anyone with access to the server may have written: fuzzed, tests/fuzz/fuzz_bus_remote.cc),
// names, and Redis entry ids as positions. Internal to bus.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "weft/bus/bus.h"
#include "weft/core/status.h"

namespace weft::bus::internal {

struct RemoteShape {
  uint32_t shards = 0;
  uint32_t max_event = 0;
  bool timestamps = false;
};

// "weft-bus 1 <shards> <max_event> <0|1>".
std::string FormatShape(const RemoteShape& s);
// The shape in `text`, checked (version 1, shards 1..kMaxShards, max_event 1..most); kCorrupt
// naming `where` otherwise.
Result<RemoteShape> ParseShape(std::string_view text, uint32_t most_max_event, const std::string& where);
// Takes the bus's shape into *o (with must_match, kInvalidArgument unless it is what *o asks).
Status AdoptShape(const RemoteShape& s, BusOptions* o);

// A bus or group name on a server: 1 to 64 of [A-Za-z0-9_-], and '.' where `dots`.
Status CheckRemoteName(std::string_view name, std::string_view what, std::string_view url, bool dots);

// A Redis stream entry id "ms-seq" as a position: (ms << 20) | seq; kCorrupt if it does not
// fit (a sequence of 2^20 or more within one millisecond).
inline constexpr uint32_t kEntrySeqBits = 20;
Result<uint64_t> ParseEntryId(std::string_view id);

}  // namespace weft::bus::internal
