// Subcommands of the `weft` tool. Each returns the process exit code.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace weft::cli {

int Inspect(const std::string& name);
int Gc(bool dry_run);

struct LogArgs {
  std::string path;
  std::vector<std::string> records;  // append: each one a record; none: lines of stdin
  std::string fsync = "always";
  uint32_t flags = 0;
  uint64_t from = 0;  // tail
  int64_t last = -1;  // tail: start this many records before the end (-1: not given)
  bool follow = false;
  std::string format = "text";
  bool repair = false;  // verify: cut damage in the newest segment that valid records follow
};
int LogAppend(const LogArgs& a);
int LogTail(const LogArgs& a);
int LogStat(const LogArgs& a);
int LogVerify(const LogArgs& a);

}  // namespace weft::cli
