// What a producer does when its consumer's queue is full: one vocabulary for channels, topic
// subscribers and the bus. The numbers are the C ABI's WEFT_OVERFLOW_* values and the values
// stored in shared memory (docs/formats/channel.md, topic.md).
#pragma once

#include <cstdint>
#include <string_view>

namespace weft {

enum class Overflow : uint32_t {
  kBlock = 0,       // wait for room, up to the deadline (never loses anything)
  kDropNewest = 1,  // discard what is being written, counted (drops_newest)
  kDropOldest = 2,  // discard the oldest unread, counted (drops_oldest)
  kFail = 3,        // refuse at once with ResourceExhausted; nothing is written
};

inline constexpr uint32_t kOverflowCount = 4;

// "block", "drop_newest", "drop_oldest", "fail"; "?" outside the range.
inline const char* OverflowName(Overflow o) {
  switch (o) {
    case Overflow::kBlock: return "block";
    case Overflow::kDropNewest: return "drop_newest";
    case Overflow::kDropOldest: return "drop_oldest";
    case Overflow::kFail: return "fail";
  }
  return "?";
}

// Parses a name OverflowName gives; false for anything else.
inline bool ParseOverflow(std::string_view name, Overflow* out) {
  for (uint32_t i = 0; i < kOverflowCount; ++i) {
    if (name == OverflowName(static_cast<Overflow>(i))) {
      *out = static_cast<Overflow>(i);
      return true;
    }
  }
  return false;
}

}  // namespace weft
