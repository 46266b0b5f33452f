// Adaptive spinning before a sleep, shared by channel, topic and log-tail waits: the spin budget halves
// each time spinning ends without work (down to kMinSpinNs) and doubles back, up to the
// configured most, each time it pays off. Spinning is cheap when the peer is quick and the
// cores are free; on a busy or oversubscribed machine it takes the CPU the peer needs, and the
// budget shrinks.
#pragma once

#include <algorithm>
#include <cstdint>

namespace weft {

inline constexpr int64_t kMinSpinNs = 1'000;

// The budget after a spin that found work.
inline int64_t SpinPaid(int64_t current, int64_t most) { return std::min(current * 2, most); }
// The budget after a spin that ended without work.
inline int64_t SpinWasted(int64_t current, int64_t most) {
  return std::max(current / 2, std::min(kMinSpinNs, most));
}

}  // namespace weft
