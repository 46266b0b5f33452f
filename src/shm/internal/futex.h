// The shm module's names for the core futex helpers.
#pragma once

#include "weft/core/futex.h"

namespace weft::shm::internal {
using weft::FutexWait;
using weft::FutexWake;
using weft::LowWord;
}  // namespace weft::shm::internal
