// The fault guard: mappings of files that another process could shrink (a named shared-memory
// segment or a log segment any process of the uid may ftruncate), or whose holes cannot be
// filled (a full tmpfs), are registered here. An access past the new
// end of such a file raises SIGBUS; the guard's handler replaces the whole mapping with private
// zero pages (so the access completes and every later one reads zeros), marks the entry
// damaged, and lets the owner report kCorrupt instead of the process dying. A SIGBUS at any
// other address goes to the handler that was installed before (or kills as by default).
//
// Thread rule: Guard/Unguard from any thread (a mutex); Damaged and the handler read the table
// with atomics only. For Weft's modules (shm segments, log files), not for applications.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace weft {

// Registers [base, base + size); returns a handle, or -1 if the table is full (the mapping is
// then unguarded). Installs the handler on first use.
int GuardMapping(void* base, size_t size);
// Forgets a handle (before the mapping is unmapped). -1 is ignored.
void UnguardMapping(int handle);
// True once a fault under this handle was absorbed.
bool MappingDamaged(int handle);
// The flag behind MappingDamaged, to read inline on hot paths (a flag that stays false for -1).
// Valid for the life of the process.
const std::atomic<bool>* MappingDamageFlag(int handle);
// Faults absorbed by this process so far.
uint64_t AbsorbedFaults();

}  // namespace weft
