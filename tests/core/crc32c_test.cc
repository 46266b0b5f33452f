#include "weft/core/crc32c.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

namespace weft {
namespace {

TEST(Crc32cTest, KnownAnswers) {
  // The check value of the Castagnoli CRC, and the RFC 3720 (iSCSI) vectors.
  EXPECT_EQ(Crc32c(0, "123456789", 9), 0xE3069283u);
  std::vector<uint8_t> zeros(32, 0), ones(32, 0xFF), up(32), down(32);
  for (int i = 0; i < 32; ++i) {
    up[i] = static_cast<uint8_t>(i);
    down[i] = static_cast<uint8_t>(31 - i);
  }
  EXPECT_EQ(Crc32c(0, zeros.data(), 32), 0x8A9136AAu);
  EXPECT_EQ(Crc32c(0, ones.data(), 32), 0x62A8AB43u);
  EXPECT_EQ(Crc32c(0, up.data(), 32), 0x46DD794Eu);
  EXPECT_EQ(Crc32c(0, down.data(), 32), 0x113FDB5Cu);
  EXPECT_EQ(Crc32c(0, "", 0), 0u);
}

TEST(Crc32cTest, HardwareAndTablesAgreeAndChain) {
  std::vector<uint8_t> data(100'003);
  uint64_t x = 88172645463325252ull;
  for (auto& b : data) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    b = static_cast<uint8_t>(x);
  }
  for (size_t n : {0, 1, 7, 8, 9, 63, 64, 65, 1000, 4096, 100'003}) {
    for (size_t off : {0, 1, 3}) {
      if (off + n > data.size()) continue;
      EXPECT_EQ(Crc32c(0, data.data() + off, n), internal::Crc32cTables(0, data.data() + off, n)) << n << "+" << off;
    }
  }
  const uint32_t whole = Crc32c(0, data.data(), data.size());
  EXPECT_EQ(Crc32c(Crc32c(0, data.data(), 12'345), data.data() + 12'345, data.size() - 12'345), whole);
}

}  // namespace
}  // namespace weft
