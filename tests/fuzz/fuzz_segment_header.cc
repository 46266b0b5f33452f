// Fuzzes the validation of what a process reads from a segment it did not create: the common
// segment header and the channel, pool and topic configurations. Must never crash, read out of bounds, or
// accept a header whose fields contradict the mapped size.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "shm/internal/channel_layout.h"
#include "shm/internal/pool_layout.h"
#include "shm/internal/registry.h"
#include "shm/internal/topic_layout.h"
#include "weft/shm/segment.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // An exact-size heap copy so that ASan catches any read past the end.
  std::vector<uint8_t> bytes(data, data + size);
  weft::Status any = weft::shm::ValidateHeader(bytes.data(), bytes.size(), 0, 0);
  weft::Status channel = weft::shm::internal::ValidateChannel(bytes.data(), bytes.size());
  if (channel.ok()) {
    // Accepted: the config must describe a ring inside the mapping.
    weft::shm::internal::ChannelConfig c;
    std::memcpy(&c, bytes.data() + offsetof(weft::shm::internal::ChannelLayout, config), sizeof(c));
    if (!any.ok() || c.data_offset + c.capacity > size || c.capacity % 8 != 0) __builtin_trap();
  }
  weft::Status pool = weft::shm::internal::ValidatePool(bytes.data(), bytes.size());
  if (pool.ok()) {
    // Accepted: every area the pool code indexes lies inside the mapping.
    weft::shm::internal::PoolConfig c;
    std::memcpy(&c, bytes.data() + offsetof(weft::shm::internal::PoolLayout, config), sizeof(c));
    if (c.large_offset + c.large_count * 64 > size || c.arenas_offset + c.max_arenas * 64 > c.large_offset) {
      __builtin_trap();
    }
  }
  weft::shm::internal::ValidateRegistry(bytes.data(), bytes.size()).IgnoreError();
  weft::Status topic = weft::shm::internal::ValidateTopic(bytes.data(), bytes.size());
  if (topic.ok()) {
    weft::shm::internal::TopicConfig c;
    std::memcpy(&c, bytes.data() + offsetof(weft::shm::internal::TopicLayout, config), sizeof(c));
    if (c.rings_offset + uint64_t{c.max_publishers} * c.max_subscribers * c.ring_stride > size) __builtin_trap();
  }
  return 0;
}
