// The shm module's names for the core spin-budget helpers.
#pragma once

#include "weft/core/spin.h"

namespace weft::shm::internal {
using weft::kMinSpinNs;
using weft::SpinPaid;
using weft::SpinWasted;
using weft::SpinAfterSleep;
}  // namespace weft::shm::internal
