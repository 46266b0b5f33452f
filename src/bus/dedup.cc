// ProducerNonce (a file of one slot, internal/commits.h) and RedisStreamDedup.
#include "weft/bus/dedup.h"

#include <cinttypes>
#include <cstdio>

#include "internal/commits.h"
#include "internal/segment.h"

namespace weft::bus {

std::string EventId(uint64_t nonce, uint32_t shard, uint64_t batch_start, uint32_t i) {
  char buf[80];
  const int n = std::snprintf(buf, sizeof(buf), "%016" PRIx64 ":%" PRIu32 ":%" PRIu64 ":%" PRIu32, nonce, shard,
                              batch_start, i);
  return std::string(buf, static_cast<size_t>(n));
}

// ---- ProducerNonce -------------------------------------------------------------------------------


ProducerNonce::ProducerNonce(std::unique_ptr<internal::CommitFile> file, uint64_t nonce, uint64_t seq)
    : file_(std::move(file)), nonce_(nonce), next_(seq), durable_(seq) {}
ProducerNonce::~ProducerNonce() = default;

Result<std::unique_ptr<ProducerNonce>> ProducerNonce::Open(const std::string& path) {
  if (path.empty()) return InvalidArgument("a producer nonce file needs a path");
  auto f = internal::CommitFile::OpenPath(path, internal::kNonceMagic, internal::RandomBusId(), true, 1,
                                          [](uint32_t) { return uint64_t{0}; }, false);
  if (!f.ok()) return f.status();
  Result<uint64_t> seq = (*f)->Read(0);
  if (!seq.ok()) return seq.status();
  const uint64_t nonce = (*f)->id();
  if (nonce == 0) return Status(Code::kCorrupt, path + ": a producer nonce of 0");
  return std::unique_ptr<ProducerNonce>(new ProducerNonce(std::move(f).value(), nonce, *seq));
}

std::unique_ptr<ProducerNonce> ProducerNonce::Ephemeral() {
  return std::unique_ptr<ProducerNonce>(new ProducerNonce(nullptr, internal::RandomBusId(), 0));
}

uint64_t ProducerNonce::Reserve(uint64_t n) {
  MutexLock lock(mu_);
  const uint64_t first = next_;
  next_ += n;
  return first;
}

void ProducerNonce::Failed(uint64_t first, uint64_t n) {
  MutexLock lock(mu_);
  if (next_ == first + n) next_ = first;
}

Status ProducerNonce::Acknowledged(uint64_t first, uint64_t n) {
  MutexLock lock(mu_);
  if (first + n <= durable_) return Status::Ok();
  acked_[first] = first + n;
  const uint64_t before = durable_;
  for (auto it = acked_.find(durable_); it != acked_.end(); it = acked_.find(durable_)) {
    durable_ = it->second;
    acked_.erase(it);
  }
  if (durable_ == before || file_ == nullptr) return Status::Ok();
  return file_->Write(0, durable_);
}

uint64_t ProducerNonce::durable_sequence() const {
  MutexLock lock(mu_);
  return durable_;
}

// ---- RedisStreamDedup ----------------------------------------------------------------------------

namespace {

// Two independent 64-bit hashes of the bytes (FNV-1a and a multiply-rotate mix), each then
// finalized (murmur3's fmix64); never zero.
uint64_t Fmix(uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 33;
  return h;
}

}  // namespace

RedisStreamDedup::RedisStreamDedup(size_t capacity) : capacity_(capacity == 0 ? 1 : capacity) {
  size_t t = 16;
  while (t < 2 * capacity_) t <<= 1;
  MutexLock lock(mu_);
  table_.resize(t);
  ring_.resize(capacity_ + capacity_ / 2 + 1);
}

size_t RedisStreamDedup::Find(const Key& k) const {
  const size_t mask = table_.size() - 1;
  size_t i = static_cast<size_t>(k.a) & mask;
  while (!(table_[i].key == Key{}) && !(table_[i].key == k)) i = (i + 1) & mask;
  return i;
}

// Linear probing's deletion: later entries of the same run move back into the gap.
void RedisStreamDedup::Erase(size_t i) {
  const size_t mask = table_.size() - 1;
  table_[i] = Slot{};
  for (size_t j = (i + 1) & mask; !(table_[j].key == Key{}); j = (j + 1) & mask) {
    const size_t home = static_cast<size_t>(table_[j].key.a) & mask;
    // Move j back to i unless its home lies cyclically in (i, j].
    const bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
    if (stays) continue;
    table_[i] = table_[j];
    table_[j] = Slot{};
    i = j;
  }
}

void RedisStreamDedup::Insert(const Key& k) {
  const size_t ring = ring_.size();
  // Forget the least recently seen: beyond capacity, or when holes fill the ring.
  while (live_ >= capacity_ || head_ - tail_ == ring) {
    const Key old = ring_[tail_ % ring];
    ++tail_;
    if (old == Key{}) continue;  // a hole
    Erase(Find(old));
    --live_;
  }
  ring_[head_ % ring] = k;
  const size_t at = Find(k);
  table_[at] = Slot{k, head_};
  ++head_;
  ++live_;
}

bool RedisStreamDedup::Seen(std::string_view id) {
  uint64_t fnv = 0xcbf29ce484222325ull, mix = 0x9E3779B97F4A7C15ull ^ id.size();
  for (unsigned char c : id) {
    fnv = (fnv ^ c) * 0x100000001b3ull;
    mix = ((mix ^ c) * 0xbf58476d1ce4e5b9ull);
    mix = (mix << 23) | (mix >> 41);
  }
  const Key k{Fmix(fnv) | 1, Fmix(mix) | 1};
  MutexLock lock(mu_);
  const size_t at = Find(k);
  if (table_[at].key == k) {
    // Seen again: the most recently seen now (its old place in the ring becomes a hole).
    ring_[table_[at].age % ring_.size()] = Key{};
    Erase(at);
    --live_;
    Insert(k);
    ++duplicates_;
    return true;
  }
  Insert(k);
  return false;
}

size_t RedisStreamDedup::size() const {
  MutexLock lock(mu_);
  return live_;
}

uint64_t RedisStreamDedup::duplicates() const {
  MutexLock lock(mu_);
  return duplicates_;
}

}  // namespace weft::bus
