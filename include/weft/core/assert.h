// WEFT_ASSERT: checks for bugs (broken invariants), distinct from errors a caller handles.
// A failed assertion prints the condition and message and aborts; it is on in every build.
#pragma once

namespace weft::internal {
[[noreturn]] void AssertFail(const char* cond, const char* msg, const char* file, int line);
}

#define WEFT_ASSERT(cond, msg)                                                  \
  do {                                                                          \
    if (__builtin_expect(!(cond), 0))                                           \
      ::weft::internal::AssertFail(#cond, msg, __FILE__, __LINE__);             \
  } while (0)
