#include <cstring>
#include <string>

#include "internal/layout.h"
#include "weft/core/overflow.h"

namespace weft::bus::internal {

Status ValidateLayout(const void* bytes, size_t size) {
  if (size < sizeof(BusHeader)) return Status(Code::kCorrupt, "bus layout: shorter than its header");
  BusHeader h;
  std::memcpy(&h, bytes, sizeof(h));
  if (h.layout_version != kLayoutVersion) {
    return Status(Code::kVersionMismatch, "bus layout version " + std::to_string(h.layout_version) + ", not " +
                                              std::to_string(kLayoutVersion));
  }
  if (h.shards == 0 || h.shards > kMaxShards) return Status(Code::kCorrupt, "bus layout: " + std::to_string(h.shards) + " shards");
  const uint64_t b = h.shard_bytes;
  if (b < kMinShardBytes || b > (uint64_t{1} << 40) || (b & (b - 1)) != 0) {
    return Status(Code::kCorrupt, "bus layout: shard size " + std::to_string(b) + " is not a power of two from 4 KiB to 1 TiB");
  }
  if (h.max_event == 0 || h.max_event > b / 4 - sizeof(RecordHeader) - 8) {
    return Status(Code::kCorrupt, "bus layout: max_event " + std::to_string(h.max_event) + " does not fit the shards");
  }
  if (h.backpressure >= kOverflowCount) return Status(Code::kCorrupt, "bus layout: unknown backpressure policy");
  const Geometry geo = GeometryOf(h.shards, b);
  if (geo.total > size || h.bytes != geo.total) {
    return Status(Code::kCorrupt, "bus layout: " + std::to_string(geo.total) + " bytes needed, " + std::to_string(size) +
                                      " mapped, " + std::to_string(h.bytes) + " recorded");
  }
  return Status::Ok();
}

Status ValidateBusSegment(const void* bytes, size_t size) {
  if (size < kSegmentLayoutOffset) return Status(Code::kCorrupt, "bus segment: shorter than one page");
  return ValidateLayout(static_cast<const uint8_t*>(bytes) + kSegmentLayoutOffset, size - kSegmentLayoutOffset);
}

}  // namespace weft::bus::internal
