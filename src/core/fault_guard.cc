// The SIGBUS guard over shared mappings (weft/core/fault_guard.h).
#include "weft/core/mutex.h"
#include "weft/core/fault_guard.h"

#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <mutex>
#include <vector>

namespace weft {
namespace {

constexpr int kEntries = 1 << 14;

struct Entry {
  std::atomic<uintptr_t> base{0};  // 0: free
  std::atomic<size_t> size{0};
  std::atomic<bool> damaged{false};
};

Entry g_entries[kEntries];
std::atomic<int> g_high{0};          // entries at or above this index were never used
std::atomic<uint64_t> g_absorbed{0};
Mutex g_mu;
std::vector<int>* g_free WEFT_GUARDED_BY(g_mu) = nullptr;  // free handles below g_high
struct sigaction g_previous {};  // written once, under g_mu, before the handler is installed
bool g_installed WEFT_GUARDED_BY(g_mu) = false;

void Chain(int sig, siginfo_t* info, void* ctx) {
  if (g_previous.sa_flags & SA_SIGINFO) {
    if (g_previous.sa_sigaction != nullptr) {
      g_previous.sa_sigaction(sig, info, ctx);
      return;
    }
  } else if (g_previous.sa_handler != SIG_DFL && g_previous.sa_handler != SIG_IGN) {
    g_previous.sa_handler(sig);
    return;
  }
  // Default: restore it and return; the faulting access runs again and the process dies of
  // SIGBUS as it would have without the guard.
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  ::sigaction(sig, &dfl, nullptr);
}

// Async-signal-safe: atomics and raw system calls only.
void OnSigbus(int sig, siginfo_t* info, void* ctx) {
  const int saved_errno = errno;
  const uintptr_t addr = reinterpret_cast<uintptr_t>(info->si_addr);
  if (info->si_code == BUS_ADRERR) {
    // acquire: pairs with the release in GuardMapping, so a visible base has its size.
    const int high = g_high.load(std::memory_order_acquire);
    for (int i = 0; i < high; ++i) {
      const uintptr_t base = g_entries[i].base.load(std::memory_order_acquire);
      if (base == 0) continue;
      const size_t size = g_entries[i].size.load(std::memory_order_relaxed);
      if (addr < base || addr - base >= size) continue;
      // The whole mapping becomes private zeros: later accesses see one consistent (empty)
      // state instead of a mix of live and vanished pages.
      const long r = ::syscall(SYS_mmap, base, size, PROT_READ | PROT_WRITE,
                               MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
      if (r != -1) {
        g_entries[i].damaged.store(true, std::memory_order_release);
        g_absorbed.fetch_add(1, std::memory_order_relaxed);
        errno = saved_errno;
        return;
      }
      break;
    }
  }
  errno = saved_errno;
  Chain(sig, info, ctx);
}

void InstallLocked() WEFT_REQUIRES(g_mu) {
  if (g_installed) return;
  struct sigaction sa {};
  sa.sa_sigaction = OnSigbus;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
  sigemptyset(&sa.sa_mask);
  if (::sigaction(SIGBUS, &sa, &g_previous) == 0) g_installed = true;
}

}  // namespace

int GuardMapping(void* base, size_t size) {
  if (base == nullptr || size == 0) return -1;
  MutexLock g(g_mu);
  InstallLocked();
  if (g_free == nullptr) g_free = new std::vector<int>;
  int h;
  if (!g_free->empty()) {
    h = g_free->back();
    g_free->pop_back();
  } else {
    h = g_high.load(std::memory_order_relaxed);
    if (h >= kEntries) return -1;
  }
  Entry& e = g_entries[h];
  e.damaged.store(false, std::memory_order_relaxed);
  e.size.store(size, std::memory_order_relaxed);
  // release: the size is written before the handler can see the base.
  e.base.store(reinterpret_cast<uintptr_t>(base), std::memory_order_release);
  if (h == g_high.load(std::memory_order_relaxed)) g_high.store(h + 1, std::memory_order_release);
  return h;
}

void UnguardMapping(int handle) {
  if (handle < 0 || handle >= kEntries) return;
  MutexLock g(g_mu);
  g_entries[handle].base.store(0, std::memory_order_release);
  g_free->push_back(handle);
}

bool MappingDamaged(int handle) {
  if (handle < 0 || handle >= kEntries) return false;
  // acquire: pairs with the handler's release; relaxed would do for a flag, but a caller that
  // sees it may then look at the (zeroed) memory.
  return g_entries[handle].damaged.load(std::memory_order_acquire);
}

const std::atomic<bool>* MappingDamageFlag(int handle) {
  static const std::atomic<bool> kNever{false};
  if (handle < 0 || handle >= kEntries) return &kNever;
  return &g_entries[handle].damaged;
}

uint64_t AbsorbedFaults() { return g_absorbed.load(std::memory_order_relaxed); }

}  // namespace weft
