// The read/write scheduler of one resource: calls start in the order they arrived (first-come
// tickets); a read runs beside other reads; a write runs alone. A write therefore waits only for
// the calls that arrived before it, never behind reads that came after it, and no call starves.
// Internal to rpc.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <set>

#include "weft/core/clock.h"
#include "weft/rpc/contract.h"

namespace weft::rpc::internal {

class Scheduler {
 public:
  // Waits until the call may run. False if the deadline passed first; nothing is held then.
  bool Enter(Access access, Deadline deadline);
  // Ends a call that Enter let in.
  void Leave(Access access);

  struct Stats {
    uint64_t reads = 0, writes = 0, timeouts = 0;
    int max_readers = 0;  // the most reads seen running at once
  };
  Stats stats();

 private:
  bool CanStart(uint64_t ticket, Access access) const;
  void Advance();  // past started and abandoned tickets; mu_ held

  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t next_ticket_ = 0;  // the ticket the next arrival takes
  uint64_t serving_ = 0;      // the ticket that may start next
  std::set<uint64_t> abandoned_;
  int readers_ = 0;
  bool writer_ = false;
  Stats stats_;
};

}  // namespace weft::rpc::internal
