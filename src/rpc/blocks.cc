#include "internal/blocks.h"

#include <cstring>
#include <set>

namespace weft::rpc {
namespace internal {
namespace {

// Every Blocks of this process, for ProcessHoldStats.
Mutex g_all_mu;
std::set<Blocks*>& All() {
  static auto* all = new std::set<Blocks*>;
  return *all;
}

}  // namespace

std::shared_ptr<Blocks> Blocks::Make(std::unique_ptr<shm::Pool> pool) {
  return std::shared_ptr<Blocks>(new Blocks(std::move(pool)));
}

Blocks::Blocks(std::unique_ptr<shm::Pool> pool) : pool_(std::move(pool)), name_(pool_->name()) {
  MutexLock g(g_all_mu);
  All().insert(this);
}

Blocks::~Blocks() {
  MutexLock g(g_all_mu);
  All().erase(this);
}

Result<std::shared_ptr<Held>> Blocks::Wrap(uint64_t block, uint64_t length) {
  auto d = pool_->Data(block);
  if (!d.ok()) {
    pool_->Release(block).IgnoreError();
    return d.status();
  }
  if (length > d->size()) {
    pool_->Release(block).IgnoreError();
    return Corrupt("a value says " + std::to_string(length) + " bytes, its block has " + std::to_string(d->size()));
  }
  std::shared_ptr<Held> h(new Held(shared_from_this(), block, d->data(), length));
  live_.emplace(d->data(), Entry{h.get(), h});
  held_bytes_ += length;
  return h;
}

Result<std::shared_ptr<Held>> Blocks::Loan(size_t n) {
  MutexLock g(mu_);
  auto b = pool_->Allocate(n == 0 ? 1 : n);
  if (!b.ok()) return b.status();
  return Wrap(*b, n);
}

Result<std::shared_ptr<Held>> Blocks::Adopt(uint64_t block, uint64_t length) {
  MutexLock g(mu_);
  return Wrap(block, length);
}

Result<std::shared_ptr<Held>> Blocks::Take(uint64_t block, uint64_t length, uint64_t holder_bits) {
  MutexLock g(mu_);
  Status s = pool_->HoldIfHeldBy(block, holder_bits);
  if (!s.ok()) return s;
  return Wrap(block, length);
}

bool Blocks::HolderIs(int slot, int32_t pid) {
  MutexLock g(mu_);
  return pool_->HolderIs(slot, pid);
}

bool Blocks::HeldBy(uint64_t block, int slot) {
  MutexLock g(mu_);
  return pool_->HeldBy(block, slot);
}

std::shared_ptr<Held> Blocks::Find(const void* p, size_t n) {
  MutexLock g(mu_);
  auto [lo, hi] = live_.equal_range(static_cast<const uint8_t*>(p));
  for (auto it = lo; it != hi; ++it) {
    if (it->second.raw->size() < n) continue;
    if (auto h = it->second.weak.lock()) return h;
  }
  return nullptr;
}

Result<std::shared_ptr<Held>> Blocks::Copy(ByteView bytes) {
  auto h = Loan(bytes.size());
  if (!h.ok()) return h.status();
  if (!bytes.empty()) std::memcpy((*h)->mutable_bytes().data(), bytes.data(), bytes.size());  // outside the lock
  return h;
}

Status Blocks::Grant(uint64_t block, uint64_t bits, uint64_t* already) {
  MutexLock g(mu_);
  return pool_->Grant(block, bits, already);
}

Status Blocks::Release(uint64_t block) {
  MutexLock g(mu_);
  return pool_->Release(block);
}

size_t Blocks::RecoverDead() {
  MutexLock g(mu_);
  return pool_->RecoverDead();
}

int Blocks::holder_slot() {
  MutexLock g(mu_);
  return pool_->holder_slot();
}

void Blocks::Drop(Held* h) {
  MutexLock g(mu_);
  auto [lo, hi] = live_.equal_range(h->data_);
  for (auto it = lo; it != hi; ++it) {
    if (it->second.raw == h) {
      live_.erase(it);
      break;
    }
  }
  held_bytes_ -= h->size_;
  pool_->Release(h->block_).IgnoreError();
}

HoldStats Blocks::stats() {
  MutexLock g(mu_);
  HoldStats s;
  s.active_holds = live_.size();
  s.held_bytes = held_bytes_;
  int64_t oldest = 0;
  for (const auto& [p, e] : live_) {
    if (oldest == 0 || e.raw->since_ns_ < oldest) oldest = e.raw->since_ns_;
  }
  if (oldest != 0) s.oldest_hold_seconds = static_cast<double>(MonotonicNs() - oldest) / 1e9;
  return s;
}

}  // namespace internal

Held::Held(std::shared_ptr<internal::Blocks> owner, uint64_t block, uint8_t* data, size_t size)
    : owner_(std::move(owner)), block_(block), data_(data), size_(size), since_ns_(MonotonicNs()) {}

Held::~Held() { owner_->Drop(this); }

HoldStats ProcessHoldStats() {
  HoldStats total;
  MutexLock g(internal::g_all_mu);
  for (internal::Blocks* b : internal::All()) {
    const HoldStats s = b->stats();
    total.active_holds += s.active_holds;
    total.held_bytes += s.held_bytes;
    total.oldest_hold_seconds = std::max(total.oldest_hold_seconds, s.oldest_hold_seconds);
  }
  return total;
}

}  // namespace weft::rpc
