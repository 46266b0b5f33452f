#include "weft/core/pair.h"

#include <atomic>

namespace weft {

namespace {
unsigned __int128 Pack(WordPair v) { return static_cast<unsigned __int128>(v.second) << 64 | v.first; }
}  // namespace

bool CasPair(WordPair* at, WordPair* expected, WordPair desired) {
  auto* word = reinterpret_cast<unsigned __int128*>(at);
  const unsigned __int128 want = Pack(*expected);
  const unsigned __int128 old = __sync_val_compare_and_swap(word, want, Pack(desired));
  if (old == want) return true;
  *expected = {static_cast<uint64_t>(old), static_cast<uint64_t>(old >> 64)};
  return false;
}

WordPair LoadPair(WordPair* at) {
  WordPair v{std::atomic_ref<uint64_t>(at->first).load(std::memory_order_acquire),
             std::atomic_ref<uint64_t>(at->second).load(std::memory_order_acquire)};
  WordPair probe = v;
  if (!CasPair(at, &probe, v)) return probe;  // the halves were torn: probe has the pair
  return v;
}

}  // namespace weft
