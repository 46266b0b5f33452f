// A bus layout (internal/layout.h) in a shared-memory segment: made by the first process,
// opened as it is by the others. Used by shm: buses and by the control segment of log: buses.
// Internal to bus.
#pragma once

#include <cstdint>
#include <string_view>

#include "layout.h"
#include "weft/bus/bus.h"
#include "weft/core/status.h"
#include "weft/shm/segment.h"

namespace weft::bus::internal {

// A random 64-bit id that is not 0 (a bus's id, which names its doorbells and, for log:, its
// control segment).
uint64_t RandomBusId();

// Lays a new bus out at `base` (zeroed memory of geo.total bytes), with header flags from the
// options plus `extra_flags`.
void InitLayout(uint8_t* base, const Geometry& geo, const BusOptions& o, uint32_t extra_flags);

// Opens segment `name` holding a bus, or creates it (with o->create) laid out for o->shards
// rings of o->shard_bytes; a bus that exists gives its options to *o (with o->must_match,
// kInvalidArgument if they differ). Header flags must include `extra_flags`.
Status OpenBusSegment(std::string_view name, uint32_t extra_flags, BusOptions* o, shm::Segment* segment, View* view);

}  // namespace weft::bus::internal
