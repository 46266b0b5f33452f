// A FileStore's journal record: one atomic batch of writes (docs/formats/graph-store.md).
// Fuzzed: tests/fuzz/fuzz_graph_store.cc.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "weft/core/bytes.h"
#include "weft/core/status.h"

namespace weft::graph::internal {

constexpr uint32_t kStoreBatchMagic = 0x31534757;  // "WGS1"

enum StoreOpKind : uint8_t { kStoreSet = 1, kStoreClear = 2, kStoreClearRange = 3 };

struct StoreOp {
  uint8_t kind = kStoreSet;
  std::string_view key, value;  // kStoreClearRange: value is the range's end
};

std::string EncodeStoreBatch(const std::vector<StoreOp>& ops);
// kCorrupt naming what is wrong; never reads past `bytes`. The views point into `bytes`.
Result<std::vector<StoreOp>> DecodeStoreBatch(ByteView bytes);

// The CURRENT file: which journal generation is the store's.
std::string EncodeStoreCurrent(uint64_t generation);
Result<uint64_t> DecodeStoreCurrent(std::string_view text);

}  // namespace weft::graph::internal
