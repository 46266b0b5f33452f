// The backends behind weft::bus::Bus, one file each; Bus::Open (bus.cc) checks what every
// backend shares and hands the options to the one the url names. A new backend (nats:, redis:)
// is a new file and a line in Bus::Open. Internal to bus.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "weft/bus/bus.h"
#include "weft/core/status.h"

namespace weft::bus::internal {

inline constexpr std::string_view kMemoryScheme = "memory:";
inline constexpr std::string_view kShmScheme = "shm:";
inline constexpr std::string_view kLogScheme = "log:";
inline constexpr std::string_view kRedisScheme = "redis://";
inline constexpr std::string_view kNatsScheme = "nats://";
inline constexpr std::string_view kNatsTlsScheme = "tls://";     // nats:// with TLS
inline constexpr std::string_view kRedisTlsScheme = "rediss://";  // refused with its reason

// kTooLarge unless an event of `key` + `data` bytes fits max_event (every backend, and linger,
// refuse the same way).
inline Status CheckEventSize(size_t key, size_t data, uint32_t max_event) {
  if (key + data <= max_event) return Status::Ok();
  return Status(Code::kTooLarge, "an event of " + std::to_string(key + data) + " bytes (key and data) exceeds max_event " +
                                     std::to_string(max_event));
}

// The shard of the calling thread's events without a key: each thread that ingests gets the
// next shard in turn, so one thread's events keep their order.
uint32_t ThreadShard(uint32_t shards);

// memory: and shm: (ring_bus.cc): shards are rings in an anonymous mapping or a shm segment.
Result<std::unique_ptr<Bus>> OpenRingBus(BusOptions options);
// log: (log_bus.cc): shards are Weft logs in a directory; groups and wake-ups in a control
// segment; committed positions in a file per group.
Result<std::unique_ptr<Bus>> OpenLogBus(BusOptions options);
// redis:// (redis_bus.cc): shards are Redis streams, groups Redis consumer groups.
Result<std::unique_ptr<Bus>> OpenRedisBus(BusOptions options);
// nats:// (nats_bus.cc): shards are subjects of one JetStream stream, groups durable pull
// consumers.
Result<std::unique_ptr<Bus>> OpenNatsBus(BusOptions options);
// Puts linger (BusOptions::linger_ns) in front of a backend.
Result<std::unique_ptr<Bus>> WithLinger(std::unique_ptr<Bus> bus, int64_t linger_ns, uint32_t linger_events);
// Removes a log: bus's control segment (its files stay; the next open makes a new one).
Status UnlinkLogBus(std::string_view url);
// Removes a remote bus from its server: its keys (redis://), its stream (nats://).
Status UnlinkRedisBus(std::string_view url);
Status UnlinkNatsBus(std::string_view url);

}  // namespace weft::bus::internal
