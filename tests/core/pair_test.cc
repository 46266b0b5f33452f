// The 16-byte pair: compare-and-swap semantics, and that no reader ever sees one half of a
// change without the other while writers race.
#include "weft/core/pair.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace weft {
namespace {

TEST(PairTest, CompareAndSwapReplacesOnlyWhatItExpects) {
  WordPair p{1, 2};
  WordPair expect{1, 3};
  EXPECT_FALSE(CasPair(&p, &expect, {7, 7}));
  EXPECT_EQ(expect, (WordPair{1, 2}));  // a miss loads what is there
  EXPECT_TRUE(CasPair(&p, &expect, {7, 8}));
  EXPECT_EQ(p, (WordPair{7, 8}));
  EXPECT_EQ(LoadPair(&p), (WordPair{7, 8}));
}

TEST(PairTest, ReadersNeverSeeHalfAChange) {
  WordPair p{0, 0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> writers;
  for (int w = 0; w < 2; ++w) {
    writers.emplace_back([&] {
      for (int i = 0; i < 200000; ++i) {
        WordPair cur = LoadPair(&p);
        while (!CasPair(&p, &cur, {cur.first + 1, cur.second + 1})) {
        }
      }
    });
  }
  uint64_t reads = 0, torn = 0;
  std::thread reader([&] {
    while (!stop.load()) {
      const WordPair v = LoadPair(&p);
      torn += v.first != v.second;
      ++reads;
    }
  });
  for (auto& t : writers) t.join();
  stop = true;
  reader.join();
  EXPECT_EQ(torn, 0u) << "of " << reads << " reads";
  EXPECT_EQ(LoadPair(&p), (WordPair{400000, 400000}));  // no increment lost
}

}  // namespace
}  // namespace weft
