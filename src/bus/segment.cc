#include "internal/segment.h"

#include <sys/random.h>

#include <cstring>
#include <string>

namespace weft::bus::internal {

namespace {

// Takes the options of a bus that exists from its (checked) header; with must_match, refuses
// one that differs from what was asked.
Status Adopt(const BusHeader& h, BusOptions* o) {
  BusOptions found = *o;
  found.shards = h.shards;
  found.shard_bytes = h.shard_bytes;
  found.max_event = h.max_event;
  found.backpressure = static_cast<Overflow>(h.backpressure);
  found.timestamps = (h.flags & kBusTimestamps) != 0;
  if (o->must_match && (found.shards != o->shards || found.shard_bytes != o->shard_bytes ||
                        found.max_event != o->max_event || found.backpressure != o->backpressure ||
                        found.timestamps != o->timestamps)) {
    return Status(Code::kInvalidArgument, "bus '" + o->url + "' exists with " + std::to_string(found.shards) +
                                              " shards of " + std::to_string(found.shard_bytes) + " bytes, max_event " +
                                              std::to_string(found.max_event) + ", backpressure " +
                                              OverflowName(found.backpressure) + ": not what was asked");
  }
  *o = found;
  return Status::Ok();
}

}  // namespace

uint64_t RandomBusId() {
  uint64_t id = 0;
  while (id == 0) {
    if (::getrandom(&id, sizeof(id), 0) != static_cast<ssize_t>(sizeof(id))) id = 0;
  }
  return id;
}

void InitLayout(uint8_t* base, const Geometry& geo, const BusOptions& o, uint32_t extra_flags) {
  BusHeader& h = *reinterpret_cast<BusHeader*>(base);
  h.layout_version = kLayoutVersion;
  h.shards = o.shards;
  h.shard_bytes = o.shard_bytes;
  h.max_event = o.max_event;
  h.backpressure = static_cast<uint32_t>(o.backpressure);
  h.flags = (o.timestamps ? uint32_t{kBusTimestamps} : 0u) | extra_flags;
  h.bytes = geo.total;
  h.id = RandomBusId();
}

Status OpenBusSegment(std::string_view name_view, uint32_t extra_flags, BusOptions* o, shm::Segment* segment,
                      View* view) {
  const std::string name(name_view);
  for (int attempt = 0; attempt < 3; ++attempt) {
    Result<shm::Segment> seg =
        shm::Segment::OpenValidated(name, shm::SegmentKind::kBus, kLayoutVersion, ValidateBusSegment);
    if (seg.ok()) {
      BusHeader h;
      std::memcpy(&h, seg->base() + kSegmentLayoutOffset, sizeof(h));  // checked by ValidateBusSegment
      if ((h.flags & extra_flags) != extra_flags) {
        return Status(Code::kInvalidArgument, "shared memory '" + name + "' holds another kind of bus");
      }
      WEFT_RETURN_IF_ERROR(Adopt(h, o));
      *segment = std::move(seg).value();
      *view = View{segment->base() + kSegmentLayoutOffset, GeometryOf(o->shards, o->shard_bytes)};
      return Status::Ok();
    }
    if (seg.status().code() != Code::kNotFound || !o->create) return seg.status();
    const Geometry geo = GeometryOf(o->shards, o->shard_bytes);
    Result<shm::Segment> made =
        shm::Segment::Create(name, shm::SegmentKind::kBus, kLayoutVersion, kSegmentLayoutOffset + geo.total);
    if (!made.ok()) {
      if (made.status().code() == Code::kAlreadyExists) continue;  // lost the race: open it
      return made.status();
    }
    InitLayout(made->base() + kSegmentLayoutOffset, geo, *o, extra_flags);
    made->Publish();
    *segment = std::move(made).value();
    *view = View{segment->base() + kSegmentLayoutOffset, geo};
    return Status::Ok();
  }
  return Status(Code::kBusy, "bus '" + o->url + "' keeps appearing and vanishing");
}

}  // namespace weft::bus::internal
