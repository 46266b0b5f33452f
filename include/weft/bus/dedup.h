// Effectively-once across restarts for the bus's remote backends (redis://, nats://):
//
// - ProducerNonce: a producer's identity, kept in a file the user names (created on first
//   use): a random nonce and the sequence number of the producer's first unacknowledged batch.
//   Each event gets the id "{nonce}:{shard}:{batch_start}:{i}" (EventId). A producer killed
//   mid-batch and restarted with the same file resumes at that batch's sequence number, so the
//   events it sends again get the ids they had, and the server (JetStream's Nats-Msg-Id) or the
//   consumer (RedisStreamDedup) drops the copies. Contract: after a restart, send again first
//   what was not acknowledged, in the same order (docs/scale-out.md).
// - RedisStreamDedup: a bounded memory of ids seen (least recently seen forgotten first), for
//   consumers of a Redis stream whose entries carry a dedup_id field.
//
// Format of the nonce file: docs/formats/bus.md ("producer nonce file").
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "weft/core/mutex.h"
#include "weft/core/status.h"

namespace weft::bus {

namespace internal {
class CommitFile;
}  // namespace internal

// "{nonce:016x}:{shard}:{batch_start}:{i}".
std::string EventId(uint64_t nonce, uint32_t shard, uint64_t batch_start, uint32_t i);

class ProducerNonce {
 public:
  ~ProducerNonce();
  ProducerNonce(const ProducerNonce&) = delete;
  ProducerNonce& operator=(const ProducerNonce&) = delete;

  // Opens the file at `path`, or creates it with a random nonce and sequence 0. kCorrupt for a
  // file that is not one (nothing is overwritten).
  static Result<std::unique_ptr<ProducerNonce>> Open(const std::string& path);
  // A nonce for this process only (no file): ids are unique, but a restart starts a new nonce.
  static std::unique_ptr<ProducerNonce> Ephemeral();

  uint64_t nonce() const { return nonce_; }
  // Takes `n` sequence numbers for a batch; returns the first.
  uint64_t Reserve(uint64_t n);
  // The batch [first, first + n) was acknowledged: the file's sequence moves past every batch
  // acknowledged with all those before it (batches may be acknowledged out of order).
  Status Acknowledged(uint64_t first, uint64_t n);
  // The batch [first, first + n) failed: the next Reserve starts again at `first` (its ids are
  // reused by the retry), unless later batches were already reserved.
  void Failed(uint64_t first, uint64_t n);
  uint64_t durable_sequence() const;  // the sequence a restart resumes at

 private:
  ProducerNonce(std::unique_ptr<internal::CommitFile> file, uint64_t nonce, uint64_t seq);

  std::unique_ptr<internal::CommitFile> file_;  // nullptr: ephemeral
  const uint64_t nonce_;
  mutable Mutex mu_;
  uint64_t next_ WEFT_GUARDED_BY(mu_);
  uint64_t durable_ WEFT_GUARDED_BY(mu_);
  std::unordered_map<uint64_t, uint64_t> acked_ WEFT_GUARDED_BY(mu_);  // first -> end, past durable_
};

// Remembers up to `capacity` ids; thread-safe. Ids are kept as 128-bit hashes (two
// independent 64-bit hashes: a false "seen" needs both to collide), in an open-addressed
// table with an age ring: no allocation per id.
class RedisStreamDedup {
 public:
  explicit RedisStreamDedup(size_t capacity = 65536);
  // True if `id` was seen (a duplicate, to drop; it becomes the most recently seen); else
  // remembers it, forgetting the least recently seen beyond capacity, and returns false.
  bool Seen(std::string_view id);
  size_t size() const;
  size_t capacity() const { return capacity_; }
  uint64_t duplicates() const;  // Seen calls that answered true

 private:
  struct Key {
    uint64_t a = 0, b = 0;  // {0, 0}: empty (hashes are made non-zero)
    bool operator==(const Key& o) const { return a == o.a && b == o.b; }
  };
  struct Slot {
    Key key;
    uint64_t age = 0;  // its place in the ring (a counter, not an index)
  };
  size_t Find(const Key& k) const WEFT_REQUIRES(mu_);  // the slot holding k, or an empty one
  void Erase(size_t slot) WEFT_REQUIRES(mu_);
  void Insert(const Key& k) WEFT_REQUIRES(mu_);

  const size_t capacity_;
  mutable Mutex mu_;
  std::vector<Slot> table_ WEFT_GUARDED_BY(mu_);  // a power of two, at least twice the capacity
  std::vector<Key> ring_ WEFT_GUARDED_BY(mu_);    // by age; {0, 0}: a hole (an id seen again later)
  uint64_t head_ WEFT_GUARDED_BY(mu_) = 0;        // the next age
  uint64_t tail_ WEFT_GUARDED_BY(mu_) = 0;        // the oldest age still in the ring
  size_t live_ WEFT_GUARDED_BY(mu_) = 0;
  uint64_t duplicates_ WEFT_GUARDED_BY(mu_) = 0;
};

}  // namespace weft::bus
