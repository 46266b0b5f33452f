// The registry: one segment per user, "weft.registry.<uid>", listing that user's named objects
// (topics) so that they can be found without a daemon; no user can lock another out of it. Created by the first process that needs it (safe when several race);
// it does not depend on its creator. Format: docs/formats/registry.md. Internal to shm.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "weft/core/status.h"

namespace weft::shm::internal {

inline constexpr uint32_t kRegistryLayoutVersion = 1;
// "registry.<uid>" for this process's effective uid.
std::string RegistryName();

// Records `name` (of segment kind `kind`) unless it is there already. Entries whose segment is
// gone are reclaimed when the table is full.
Status RegisterName(std::string_view name, uint32_t kind);
// The registered names of `kind` whose segment still exists.
Result<std::vector<std::string>> RegisteredNames(uint32_t kind);
// Checks a mapped registry segment. Fuzzed.
Status ValidateRegistry(const void* bytes, size_t size);

}  // namespace weft::shm::internal
