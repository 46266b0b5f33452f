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
// The budget after a spin that ended without work, then a sleep that ended with work
// `waited_ns` after the spin began. If the most spinning allowed would have caught it, the
// budget grows as if the spin had paid: otherwise a budget once shrunk (after an idle spell)
// could never grow back, since only a spin that already catches the peer pays.
inline int64_t SpinAfterSleep(int64_t current, int64_t most, int64_t waited_ns) {
  return waited_ns <= most ? SpinPaid(current, most) : SpinWasted(current, most);
}

}  // namespace weft
