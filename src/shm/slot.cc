#include "weft/shm/slot.h"

#include <string>

namespace weft::shm {

namespace {
template <typename T>
std::atomic_ref<T> A(T& v) {
  return std::atomic_ref<T>(v);
}
}  // namespace

SlotView ReadSlot(const Slot& slot) {
  Slot& s = const_cast<Slot&>(slot);
  for (;;) {
    // acquire: pairs with the release in FinishClaim; the start time is visible.
    const uint64_t w = A(s.owner).load(std::memory_order_acquire);
    SlotView v;
    v.word = w;
    v.state = OwnerState(w);
    v.epoch = OwnerEpoch(w);
    v.who.pid = OwnerPid(w);
    if (v.state == kSlotAttached) {
      v.who.start_ticks = A(s.start_ticks).load(std::memory_order_relaxed);
      // Seqlock-style re-check: the start time belongs to this owner word.
      if (A(s.owner).load(std::memory_order_acquire) != w) continue;
    }
    return v;
  }
}

bool HolderGone(const SlotView& v) {
  if (v.state != kSlotAttached && v.state != kSlotClaiming) return false;
  return !IsAlive(v.who);
}

// Case analysis of the CAS loop on the owner word:
//  1. empty or closed: claim it.
//  2. attached or claiming by a live process: kBusy.
//  3. attached or claiming by a dead process: take it over.
//  A failed CAS means another process changed the slot; re-read and decide again.
Result<uint32_t> BeginClaim(Slot& slot, const char* what) {
  const ProcessIdentity self = SelfIdentity();
  for (;;) {
    SlotView v = ReadSlot(slot);
    if ((v.state == kSlotAttached || v.state == kSlotClaiming) && !HolderGone(v)) {
      return Status(Code::kBusy,
                    std::string(what) + " is held by live process " + std::to_string(v.who.pid));
    }
    const uint32_t epoch = (v.epoch + 1) & 0xFFFFFFu;
    uint64_t expected = v.word;
    // acq_rel: acquire the previous owner's writes; release our claim.
    if (A(slot.owner).compare_exchange_strong(expected, PackOwner(kSlotClaiming, epoch, self.pid),
                                              std::memory_order_acq_rel)) {
      // relaxed is enough since the release store in FinishClaim publishes it.
      A(slot.start_ticks).store(self.start_ticks, std::memory_order_relaxed);
      return epoch;
    }
  }
}

void FinishClaim(Slot& slot, uint32_t epoch) {
  // release: publishes the start time and whatever the claimer initialized; pairs with the
  // acquire in ReadSlot.
  A(slot.owner).store(PackOwner(kSlotAttached, epoch, SelfIdentity().pid), std::memory_order_release);
}

bool ReleaseSlot(Slot& slot, uint32_t epoch, uint32_t state) {
  const int32_t pid = SelfIdentity().pid;
  uint64_t w = A(slot.owner).load(std::memory_order_acquire);
  if (OwnerPid(w) != pid || OwnerEpoch(w) != epoch) return false;  // taken over meanwhile
  // acq_rel: orders this process's last writes before the state change.
  return A(slot.owner).compare_exchange_strong(w, PackOwner(state, epoch, pid),
                                               std::memory_order_acq_rel);
}

}  // namespace weft::shm
