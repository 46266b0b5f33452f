// The words the demo and the bench use to compare Weft with a baseline follow the measurement.
#include "bench_util.h"

#include <gtest/gtest.h>

namespace weft::bench {
namespace {

TEST(RelativeTest, SaysSlowerWhenWeftCostsMore) {
  EXPECT_EQ(Relative(100, 320), "3.2x faster");
  EXPECT_EQ(Relative(140, 100), "1.4x slower");  // never "0.7x faster"
  EXPECT_EQ(Relative(100, 102), "as fast");
  EXPECT_EQ(Relative(0, 100), "not measured");
}

}  // namespace
}  // namespace weft::bench
