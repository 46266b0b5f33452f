// The suites behind `weft bench <suite>`.
#pragma once

#include "bench_util.h"

namespace weft::bench {

void RunChannelSuite(const Options& opt);
void RunPoolSuite(const Options& opt);
void RunTopicSuite(const Options& opt);

}  // namespace weft::bench
