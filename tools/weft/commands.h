// Subcommands of the `weft` tool. Each returns the process exit code.
#pragma once

#include <string>

namespace weft::cli {

int Demo(bool quick);
int Inspect(const std::string& name);
int Gc(bool dry_run);

}  // namespace weft::cli
