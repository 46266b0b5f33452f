// Fuzzes what a bus reads from shared memory another process may have scribbled: the layout
// check over arbitrary header bytes, and the record reader, the published-run walk and a
// reader's repair over an arbitrary ring, tail, cursors and producer intents. None may touch
// memory outside the region, loop without progress, or hand out an event outside the ring.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "bus/internal/layout.h"
#include "bus/internal/ring.h"

using namespace weft::bus::internal;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Any bytes as a header: checked against the input's own size.
  std::vector<uint8_t> header(data, data + size);  // exact size: overreads are caught
  (void)ValidateLayout(header.data(), header.size());
  (void)ValidateBusSegment(header.data(), header.size());

  // A real region (1 shard of 4 KiB, one group), the input poured over its state and ring.
  const Geometry geo = GeometryOf(1, 4096);
  std::vector<uint8_t> region(geo.total + 64);
  uint8_t* base = region.data() + (64 - reinterpret_cast<uintptr_t>(region.data()) % 64) % 64;
  View v{base, geo};
  v.geo.max_event = 1000;
  BusHeader& h = v.header();
  h.layout_version = kLayoutVersion;
  h.shards = 1;
  h.shard_bytes = 4096;
  h.max_event = 1000;
  h.bytes = geo.total;
  h.groups_active = 1;
  size_t at = 0;
  auto take = [&](void* to, size_t n) {
    const size_t k = at < size ? std::min(n, size - at) : 0;
    if (k > 0) std::memcpy(to, data + at, k);
    at += k;
  };
  take(&v.shard(0), sizeof(ShardState));
  take(&v.cursor(0, 0).cursors, sizeof(weft::WordPair));
  take(&v.producer(0), sizeof(ProducerSlot));
  take(v.ring(0), 4096);
  Shard sh(v, 0);
  uint64_t from = 0;
  take(&from, sizeof(from));
  from &= ~uint64_t{15};
  std::vector<weft::bus::Event> out;
  auto read = sh.Read(from, 64, &out);
  if (read.ok()) {
    if (out.size() > 64 || (out.empty() && *read != from && !sh.IsPublished(from))) __builtin_trap();
    for (const weft::bus::Event& e : out) {
      const uint8_t* ring = v.ring(0);
      if (e.data.data() < ring || e.data.data() + e.data.size() > ring + 4096) __builtin_trap();
      if (e.key.data() < ring || e.key.data() + e.key.size() > ring + 4096) __builtin_trap();
    }
  }
  const uint64_t end = sh.PublishedEnd(from);
  if (end < from) __builtin_trap();
  (void)sh.Repair(from);  // pads only inside the ring, or nothing
  (void)sh.Read(from, 64, &out);
  return 0;
}
