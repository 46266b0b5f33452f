// Bus::Open: the checks every backend shares, then the backend the url names
// (internal/backends.h).
#include "weft/bus/bus.h"

#include <algorithm>
#include <atomic>
#include <thread>

#include "internal/backends.h"
#include "internal/groups.h"
#include "internal/layout.h"
#include "weft/core/crc32c.h"
#include "weft/shm/segment.h"

namespace weft::bus {

using namespace internal;

namespace {

bool HasScheme(std::string_view url, std::string_view scheme) { return url.rfind(scheme, 0) == 0; }

Status CheckCommonOptions(BusOptions* o) {
  if (o->shards == 0) o->shards = std::clamp<uint32_t>(std::thread::hardware_concurrency(), 1, kMaxShards);
  if (o->shards > kMaxShards) return Status(Code::kInvalidArgument, "a bus has at most " + std::to_string(kMaxShards) + " shards");
  if (static_cast<uint32_t>(o->backpressure) >= kOverflowCount) return Status(Code::kInvalidArgument, "unknown backpressure policy");
  if (o->groups.size() > kMaxGroups) return Status(Code::kInvalidArgument, "a bus has at most " + std::to_string(kMaxGroups) + " groups");
  for (const std::string& g : o->groups) WEFT_RETURN_IF_ERROR(ValidateGroupName(g));
  return Status::Ok();
}

}  // namespace

namespace internal {

uint32_t ThreadShard(uint32_t shards) {
  static std::atomic<uint32_t> next{0};
  thread_local const uint32_t mine = next.fetch_add(1, std::memory_order_relaxed);
  return mine % shards;
}

}  // namespace internal

bool IsRemoteUrl(std::string_view url) {
  return HasScheme(url, kRedisScheme) || HasScheme(url, kRedisTlsScheme) || HasScheme(url, kNatsScheme) ||
         HasScheme(url, kNatsTlsScheme);
}

uint32_t Bus::ShardOf(ByteView key) const { return Crc32c(0, key.data(), key.size()) % shards(); }

Status Bus::Unlink(std::string_view url) {
  if (HasScheme(url, kLogScheme)) return UnlinkLogBus(url);
  if (HasScheme(url, kRedisScheme)) return UnlinkRedisBus(url);
  if (HasScheme(url, kNatsScheme) || HasScheme(url, kNatsTlsScheme)) return UnlinkNatsBus(url);
  if (!HasScheme(url, kShmScheme)) return InvalidArgument("a memory: bus has no name to remove");
  return shm::Segment::Unlink(url.substr(kShmScheme.size()));
}

Result<std::unique_ptr<Bus>> Bus::Open(const BusOptions& options) {
  BusOptions o = options;
  WEFT_RETURN_IF_ERROR(CheckCommonOptions(&o));
  if (o.linger_ns < 0) return InvalidArgument("linger_ns must not be negative");
  Result<std::unique_ptr<Bus>> bus = Status(Code::kInvalidArgument, "");
  if (o.url == kMemoryScheme || HasScheme(o.url, kShmScheme)) {
    bus = OpenRingBus(o);
  } else if (HasScheme(o.url, kLogScheme)) {
    bus = OpenLogBus(o);
  } else if (HasScheme(o.url, kRedisScheme) || HasScheme(o.url, kRedisTlsScheme)) {
    bus = OpenRedisBus(o);
  } else if (HasScheme(o.url, kNatsScheme) || HasScheme(o.url, kNatsTlsScheme)) {
    bus = OpenNatsBus(o);
  } else {
    return Status(Code::kInvalidArgument, "bus url '" + o.url +
                                              "': memory:, shm:<name>, log:<directory>, redis://host:port/<name> or nats://host:port/<name>");
  }
  if (!bus.ok() || o.linger_ns == 0) return bus;
  return WithLinger(std::move(bus).value(), o.linger_ns, o.linger_events);
}

}  // namespace weft::bus
