// The examples' assertion: a failed check names itself and ends the program with status 1.
#pragma once

#include <cstdio>

#define CHECK(c)                                      \
  do {                                                \
    if (!(c)) {                                       \
      std::fprintf(stderr, "check failed: %s\n", #c); \
      return 1;                                       \
    }                                                 \
  } while (0)
