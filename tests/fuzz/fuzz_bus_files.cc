// Fuzzes what a log: bus reads from its directory besides the shard logs (anyone with write
// access to it may have changed them): bus.meta, a group file's header and a commit slot; and
// a remote producer's nonce file (the same layout). Each
// parser accepts only what the writer could have written (a checksum over it) and reads only
// the bytes given.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "bus/internal/commits.h"

using namespace weft::bus::internal;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<uint8_t> bytes(data, data + size);  // exact size: overreads are caught
  const weft::ByteView all(bytes.data(), bytes.size());
  auto meta = ParseMeta(all);
  if (meta.ok() && (meta->shards == 0 || meta->shards > 256 || meta->max_event == 0)) __builtin_trap();
  (void)ParseGroupHeader(all, 0x1234, 4);
  // A remote producer's nonce file: a slot file of one shard, any id.
  auto nonce = ParseSlotFileHeader(all, kNonceMagic, 0, 1);
  if (nonce.ok() && size < sizeof(GroupFileHeader)) __builtin_trap();
  for (size_t off = 0; off + kCommitSlotBytes <= size && off < 4 * kCommitSlotBytes; off += kCommitSlotBytes) {
    auto slot = ParseCommitSlot(all.subspan(off, kCommitSlotBytes), static_cast<uint32_t>(off / kCommitSlotBytes));
    (void)slot;
  }
  (void)ParseCommitSlot(all.first(std::min(size, kCommitSlotBytes - 1)), 0);  // too short: refused
  // A copy written by the writer always parses back to its position.
  uint64_t position = 0;
  std::memcpy(&position, data, std::min(size, sizeof(position)));
  uint8_t slot[kCommitSlotBytes] = {};
  const CommitCopy c = MakeCommitCopy(position, 7, 3);
  std::memcpy(slot + (size % 2) * sizeof(CommitCopy), &c, sizeof(c));
  auto back = ParseCommitSlot(weft::ByteView(slot, sizeof(slot)), 3);
  if (!back.ok() || !back->has_value() || **back != position) __builtin_trap();
  return 0;
}
