// Futex wait and wake on a 32-bit word in shared memory (process-shared, not FUTEX_PRIVATE):
// shared-memory segments and files mapped MAP_SHARED by several processes.
#pragma once

#include <cstdint>

namespace weft {

// Sleeps while *word == expected, at most timeout_ns (>= 0). Returns on wake, timeout,
// signal or a changed value; the caller re-checks its condition in every case. Returns true
// if the sleep ended because the timeout passed.
bool FutexWait(const uint32_t* word, uint32_t expected, int64_t timeout_ns);

// Wakes up to `count` sleepers on `word`. Returns how many woke.
int FutexWake(const uint32_t* word, int count);

// The low 32 bits of a 64-bit cursor, as a futex word (x86-64 and aarch64 are little-endian).
inline const uint32_t* LowWord(const uint64_t* cursor) {
  static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "futex on the low half needs LE");
  return reinterpret_cast<const uint32_t*>(cursor);
}

}  // namespace weft
