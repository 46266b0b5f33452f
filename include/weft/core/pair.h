// Two adjacent 64-bit words changed together: a 16-byte compare-and-swap (cmpxchg16b on
// x86-64), for state that must never be seen half-updated, in this process or in shared
// memory (a topic ring's head and drop record; a bus group's next and committed cursors).
// Thread rule: any thread or process; the pair must be 16-byte aligned.
#pragma once

#include <cstdint>

namespace weft {

struct alignas(16) WordPair {
  uint64_t first;
  uint64_t second;
  friend bool operator==(const WordPair&, const WordPair&) = default;
};

// If *at holds *expected, stores `desired` and returns true (a full barrier); otherwise loads
// the pair into *expected and returns false.
bool CasPair(WordPair* at, WordPair* expected, WordPair desired);
// Both words as they were at one instant.
WordPair LoadPair(WordPair* at);

}  // namespace weft
