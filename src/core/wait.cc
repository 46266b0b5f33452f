#include "weft/core/wait.h"

namespace weft::internal {

std::atomic<bool>& SkipWakesForTest() {
  static std::atomic<bool> skip{false};
  return skip;
}

}  // namespace weft::internal
