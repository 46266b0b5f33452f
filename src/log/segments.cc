#include "internal/segments.h"

#include <algorithm>
#include <iterator>

namespace weft::log::internal {

Status Segments::Load() {
  auto list = ListSegments(dir_);
  if (!list.ok()) return list.status();
  Reset(*std::move(list));
  return Status::Ok();
}

void Segments::Reset(std::vector<uint64_t> firsts) {
  MutexLock g(mu_);
  firsts_ = std::move(firsts);
}

void Segments::Add(uint64_t first) {
  MutexLock g(mu_);
  if (firsts_.empty() || firsts_.back() < first) firsts_.push_back(first);
}

void Segments::Forget(const std::vector<uint64_t>& firsts) {
  MutexLock g(mu_);
  for (uint64_t first : firsts) {
    auto it = std::find(firsts_.begin(), firsts_.end(), first);
    if (it != firsts_.end()) firsts_.erase(it);
    maps_.erase(first);
    indexes_.erase(first);
  }
}

std::vector<uint64_t> Segments::List() const {
  MutexLock g(mu_);
  return firsts_;
}

uint64_t Segments::Newest() const {
  MutexLock g(mu_);
  return firsts_.empty() ? 0 : firsts_.back();
}

Result<std::shared_ptr<Mapping>> Segments::Map(uint64_t first) {
  MutexLock g(mu_);
  auto it = maps_.find(first);
  if (it != maps_.end()) return it->second;
  auto m = MapFile(Path(SegmentFileName(first)), false);
  if (!m.ok()) return m.status();
  WEFT_RETURN_IF_ERROR(ValidateSegmentHeader((*m)->bytes(), first).Annotate((*m)->path));
  if (maps_.size() > 64) maps_.erase(maps_.begin());  // bound the cache; users keep their own refs
  maps_[first] = *m;
  return *m;
}

Result<uint64_t> Segments::For(uint64_t seq) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    {
      MutexLock g(mu_);
      auto it = std::upper_bound(firsts_.begin(), firsts_.end(), seq);
      // The writer keeps its list current; a reader trusts its cached list only if a later
      // segment exists (else one may have appeared since) or this is a re-read.
      if (it != firsts_.begin() && (writer_ || it != firsts_.end() || attempt == 1)) return *std::prev(it);
    }
    WEFT_RETURN_IF_ERROR(Load());
  }
  return Status(Code::kOutOfRange, "no segment holds seq " + std::to_string(seq));
}

std::vector<IndexEntry> Segments::Index(uint64_t first, bool sealed) {
  MutexLock g(mu_);
  auto it = indexes_.find(first);
  if (it != indexes_.end()) return it->second;
  std::vector<IndexEntry> idx = ReadIndex(Path(IndexFileName(first)), first);
  if (sealed) indexes_[first] = idx;
  return idx;
}

Status Segments::Locate(uint64_t seq, uint64_t next_seq, std::shared_ptr<Mapping>* map, uint64_t* offset,
                        int64_t* min_ts) {
  auto first = For(seq);
  if (!first.ok()) return first.status();
  auto m = Map(*first);
  if (!m.ok()) return m.status();
  const bool sealed = seq < next_seq && *first != Newest();
  uint64_t at_seq = 0;
  uint64_t off = LocateFrom((*m)->bytes(), Index(*first, sealed), seq, *first, &at_seq, min_ts);
  for (; at_seq < seq; ++at_seq) {
    ScanStep st = ScanRecord((*m)->bytes(), off, at_seq, *min_ts);
    if (st.end != ScanEnd::kRecord) return Damaged(**m, off, at_seq, st);
    *min_ts = st.header.timestamp_ns;
    off = st.next_offset;
  }
  *map = *m;
  *offset = off;
  return Status::Ok();
}

Status Segments::Damaged(const Mapping& m, uint64_t off, uint64_t seq, const ScanStep& st) {
  return Corrupt(m.path + " offset " + std::to_string(off) + " (record " + std::to_string(seq) + "): " +
                 (st.end == ScanEnd::kEnd ? std::string("the segment ends before it") : st.why));
}

Record Segments::MakeRecord(const std::shared_ptr<Mapping>& m, uint64_t off, const RecordHeader& h) {
  Record r;
  r.seq = h.seq;
  r.timestamp_ns = h.timestamp_ns;
  r.flags = h.flags;
  r.payload = ByteView(m->base + off + sizeof(RecordHeader), h.length);
  r.mapping = m;
  return r;
}

}  // namespace weft::log::internal
