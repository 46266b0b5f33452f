// Property test of the ring: random reserve / commit / batched commit / flush / read /
// release / unread sequences against a model, with the shared invariants checked after every
// operation, in each overflow mode. Asserts a minimum number of wraps.
#include <cstring>
#include <deque>

#include <gtest/gtest.h>

#include "shm/internal/channel_layout.h"
#include "shm/test_util.h"
#include "weft/shm/channel.h"

namespace weft::shm {
namespace {

using internal::Atomic;
using weft::testing::Rng;
using weft::testing::UniqueName;

struct Record {
  uint64_t seq;
  size_t size;
};

void Fill(uint8_t* p, const Record& r) {
  for (size_t i = 0; i < r.size; ++i) p[i] = weft::testing::PatternByte(r.seq, i);
}

bool Matches(ByteView v, const Record& r) {
  if (v.size() != r.size) return false;
  for (size_t i = 0; i < r.size; ++i) {
    if (v[i] != weft::testing::PatternByte(r.seq, i)) return false;
  }
  return true;
}

// Walks every record between the shared read and write cursors and checks the invariants.
// Returns the number of (non-pad) records found.
size_t CheckInvariants(const internal::ChannelLayout* l, const uint8_t* data) {
  const uint64_t cap = l->config.capacity;
  const uint64_t w = Atomic(const_cast<uint64_t&>(l->producer.write_pos)).load();
  const uint64_t r = Atomic(const_cast<uint64_t&>(l->consumer.read_pos)).load();
  const uint64_t h = Atomic(const_cast<uint64_t&>(l->consumer.hold)).load();
  EXPECT_LE(r, w);
  EXPECT_LE(w - r, cap);
  EXPECT_EQ(w % 8, 0u);
  EXPECT_EQ(r % 8, 0u);
  if (h != internal::kNoHold) EXPECT_LE(h, r);
  size_t records = 0;
  for (uint64_t p = r; p < w;) {
    uint32_t len, flags;
    std::memcpy(&len, data + p % cap, 4);
    std::memcpy(&flags, data + p % cap + 4, 4);
    uint64_t size;
    if (flags & internal::kFlagPad) {
      EXPECT_EQ(p % cap + 8 + len, cap) << "pad must reach the end of the ring";
      size = 8 + len;
    } else {
      EXPECT_LE(len, l->config.max_record);
      EXPECT_LE(p % cap + internal::PayloadOffset(flags) + len, cap) << "a record crosses the wrap point";
      if (len >= internal::kAlignedPayloadMin) {
        EXPECT_EQ((p % cap + internal::PayloadOffset(flags)) % 64, 0u) << "large payload not aligned";
      }
      size = internal::RecordSize(len, flags);
      ++records;
    }
    EXPECT_LE(p + size, w);
    if (::testing::Test::HasFailure()) return records;
    p += size;
  }
  return records;
}

void RunProperty(Overflow overflow, uint64_t seed, int ops, uint64_t min_wraps) {
  const std::string name = UniqueName("prop");
  ChannelOptions opt;
  opt.capacity = 512;
  opt.max_record = 120;
  opt.overflow = overflow;
  auto tx = Channel::Create(name, opt).value();
  auto rx = Channel::Open(name, Role::kConsumer).value();
  auto seg = Segment::Open(name, 1, 1).value();
  const auto* layout = reinterpret_cast<const internal::ChannelLayout*>(seg.base());
  const uint8_t* data = seg.base() + internal::kDataOffset;

  Rng rng(seed);
  std::deque<Record> published;  // committed and published, not yet read
  std::deque<Record> batched;    // committed, not yet published
  std::deque<std::pair<Record, ByteView>> held;
  uint64_t seq = 0, drops_seen_newest = 0, drops_seen_oldest = 0;
  bool reserved = false;
  size_t reserved_size = 0;
  uint8_t* reserved_ptr = nullptr;

  auto sync_drops = [&] {
    ChannelSnapshot s = tx->Stats();
    // Drop-oldest removes the oldest published, unread records.
    for (uint64_t d = drops_seen_oldest; d < s.drops_oldest; ++d) {
      ASSERT_FALSE(published.empty());
      published.pop_front();
    }
    drops_seen_oldest = s.drops_oldest;
  };

  for (int op = 0; op < ops; ++op) {
    switch (rng.Below(7)) {
      case 0:
      case 1: {  // reserve + fill
        if (reserved) break;
        size_t n = rng.Below(opt.max_record + 1);
        const uint64_t before = tx->Stats().write_pos;
        auto buf = tx->Reserve(n, Deadline::Now());
        if (tx->Stats().write_pos != before) {
          // A full ring makes the producer publish its batch (before waiting or dropping).
          for (auto& r : batched) published.push_back(r);
          batched.clear();
        }
        sync_drops();
        if (!buf.ok()) {
          ASSERT_EQ(overflow, Overflow::kBlock);
          ASSERT_EQ(buf.status().code(), Code::kWouldBlock);
          break;
        }
        reserved = true;
        reserved_size = n;
        reserved_ptr = buf->data();
        break;
      }
      case 2: {  // commit (publishes) or batched commit
        if (!reserved) break;
        size_t actual = rng.Below(reserved_size + 1);
        Record r{seq++, actual};
        Fill(reserved_ptr, r);
        const uint64_t dn = tx->Stats().drops_newest;
        const bool publish = rng.Below(2) == 0;
        ASSERT_TRUE((publish ? tx->Commit(actual) : tx->CommitBatched(actual)).ok());
        reserved = false;
        if (tx->Stats().drops_newest > dn) {
          ++drops_seen_newest;
        } else {
          batched.push_back(r);
        }
        if (publish) {
          for (auto& b : batched) published.push_back(b);
          batched.clear();
        }
        break;
      }
      case 3: {  // flush
        tx->Flush();
        for (auto& b : batched) published.push_back(b);
        batched.clear();
        break;
      }
      case 4: {  // read
        auto v = rx->Read(Deadline::Now());
        sync_drops();
        if (!v.ok()) {
          ASSERT_EQ(v.status().code(), Code::kWouldBlock);
          ASSERT_TRUE(published.empty()) << "a published record was not readable";
          break;
        }
        ASSERT_FALSE(published.empty()) << "read a record that was never published";
        ASSERT_TRUE(Matches(*v, published.front())) << "record " << published.front().seq;
        held.emplace_back(published.front(), *v);
        published.pop_front();
        break;
      }
      case 5: {  // release some
        if (held.empty()) break;
        size_t k = 1 + rng.Below(held.size());
        for (size_t i = 0; i < k; ++i) {  // held bytes stay intact until released
          ASSERT_TRUE(Matches(held[i].second, held[i].first)) << "held record overwritten";
        }
        ASSERT_TRUE(rx->Release(k).ok());
        held.erase(held.begin(), held.begin() + k);
        break;
      }
      case 6: {  // unread the newest held record
        if (held.empty() || overflow == Overflow::kDropOldest) break;
        ASSERT_TRUE(rx->Unread().ok());
        published.push_front(held.back().first);
        held.pop_back();
        break;
      }
    }
    for (auto& h : held) ASSERT_TRUE(Matches(h.second, h.first)) << "held record overwritten";
    const size_t in_ring = CheckInvariants(layout, data);
    if (::testing::Test::HasFailure()) FAIL() << "invariant broken after op " << op;
    if (overflow != Overflow::kDropOldest) {
      ASSERT_EQ(in_ring, published.size() + held.size()) << "op " << op;
    }
  }
  const uint64_t wraps = tx->Stats().write_pos / opt.capacity;
  EXPECT_GE(wraps, min_wraps);
  ChannelSnapshot s = tx->Stats();
  EXPECT_EQ(s.drops_newest, drops_seen_newest);
  if (overflow == Overflow::kBlock) EXPECT_EQ(s.drops_newest + s.drops_oldest, 0u);
  if (overflow == Overflow::kDropNewest) EXPECT_GT(s.drops_newest, 0u);
  if (overflow == Overflow::kDropOldest) EXPECT_GT(s.drops_oldest, 0u);
  ASSERT_TRUE(Channel::Unlink(name).ok());
}

TEST(RingPropertyTest, BlockMode) { RunProperty(Overflow::kBlock, 1, 200'000, 1'000); }
TEST(RingPropertyTest, DropNewestMode) { RunProperty(Overflow::kDropNewest, 2, 200'000, 1'000); }
TEST(RingPropertyTest, DropOldestMode) { RunProperty(Overflow::kDropOldest, 3, 200'000, 1'000); }

}  // namespace
}  // namespace weft::shm
