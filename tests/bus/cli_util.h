// Running the weft command from bus tests (WEFT_CLI is its path) and listing segments.
#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <string>
#include <utility>

#include "weft/shm/segment.h"

namespace weft::bus {

#ifdef WEFT_CLI
// Runs `weft <args>`; its output (stdout and stderr) and exit code.
inline std::pair<std::string, int> Weft(const std::string& args) {
  FILE* f = ::popen((std::string(WEFT_CLI) + " " + args + " 2>&1").c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) out.append(buf, n);
  const int status = ::pclose(f);
  return {out, WIFEXITED(status) ? WEXITSTATUS(status) : -1};
}
#endif

inline bool Listed(const std::string& name) {
  for (const std::string& n : shm::Segment::List()) {
    if (n == name) return true;
  }
  return false;
}

}  // namespace weft::bus
