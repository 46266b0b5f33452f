// The server's pool as one process uses it: one lock around the Pool (used by every call thread
// and by holds dropped from any thread), and a registry of the Held objects alive here, so an
// argument or result that starts a held block is recognised and sent as that block. Internal.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>

#include "weft/core/mutex.h"
#include "weft/rpc/rpc.h"
#include "weft/shm/pool.h"

namespace weft::rpc::internal {

class Blocks : public std::enable_shared_from_this<Blocks> {
 public:
  static std::shared_ptr<Blocks> Make(std::unique_ptr<shm::Pool> pool);
  ~Blocks();

  // A new block of at least n bytes, held here (size() == n).
  Result<std::shared_ptr<Held>> Loan(size_t n);
  // A block another process granted us a hold on (our bit is set): wraps that hold.
  Result<std::shared_ptr<Held>> Adopt(uint64_t block, uint64_t length);
  // Adds a hold of ours on a block that a holder in `holder_bits` holds (an argument a peer
  // sent us): a peer can pass only blocks it holds. kPermissionDenied otherwise.
  Result<std::shared_ptr<Held>> Take(uint64_t block, uint64_t length, uint64_t holder_bits);
  // True if pool holder `slot` is attached by the live process `pid`.
  bool HolderIs(int slot, int32_t pid);
  // True if pool holder `slot` holds `block` now (racy).
  bool HeldBy(uint64_t block, int slot);
  // The Held alive here whose bytes start at p with room for n bytes, or null.
  std::shared_ptr<Held> Find(const void* p, size_t n);
  // A copy of `bytes` in a new block held here (a large value that was not in a block).
  Result<std::shared_ptr<Held>> Copy(ByteView bytes);
  // Adds `bits` holders to a block we hold. *already: those that held it before (they gained nothing).
  Status Grant(uint64_t block, uint64_t bits, uint64_t* already);
  Status Release(uint64_t block);
  size_t RecoverDead();
  int holder_slot();
  HoldStats stats();
  const std::string& pool_name() const { return name_; }

 private:
  friend class weft::rpc::Held;
  explicit Blocks(std::unique_ptr<shm::Pool> pool);
  Result<std::shared_ptr<Held>> Wrap(uint64_t block, uint64_t length) WEFT_REQUIRES(mu_);
  void Drop(Held* h);  // from ~Held

  Mutex mu_;
  std::unique_ptr<shm::Pool> pool_;
  std::string name_;
  struct Entry {
    Held* raw;
    std::weak_ptr<Held> weak;
  };
  std::multimap<const uint8_t*, Entry> live_ WEFT_GUARDED_BY(mu_);  // by data start
  uint64_t held_bytes_ WEFT_GUARDED_BY(mu_) = 0;
};

}  // namespace weft::rpc::internal
