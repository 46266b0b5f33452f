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

bool RedisStreamDedup::Seen(std::string_view id) {
  MutexLock lock(mu_);
  auto it = index_.find(id);
  if (it != index_.end()) {
    order_.splice(order_.begin(), order_, it->second);  // seen again: the most recent now
    ++duplicates_;
    return true;
  }
  if (order_.size() >= capacity_) {
    index_.erase(std::string_view(order_.back()));
    order_.pop_back();
  }
  order_.emplace_front(id);
  index_.emplace(std::string_view(order_.front()), order_.begin());
  return false;
}

size_t RedisStreamDedup::size() const {
  MutexLock lock(mu_);
  return order_.size();
}

uint64_t RedisStreamDedup::duplicates() const {
  MutexLock lock(mu_);
  return duplicates_;
}

}  // namespace weft::bus
