// The shared-memory pool: size classes over 64 KiB pages in arenas added on demand, holder
// masks, large blocks in their own segments, and recovery of what dead processes held.
#include "weft/shm/pool.h"

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstring>
#include <thread>

#include "internal/pool_layout.h"
#include "weft/shm/slot.h"
#include "weft/core/clock.h"
#include "weft/core/wait.h"

namespace weft::shm {

using internal::kArenaShift;
using internal::kLargeBit;
using internal::kUnit;
using internal::kUnitsPerPage;
using internal::ArenaEntry;
using internal::LargeEntry;
using internal::PoolLayout;

struct Pool::Arena {
  Segment segment;
  uint64_t* pages;  // page words
  uint64_t* masks;  // holder masks, kUnitsPerPage per page
  uint8_t* data;
};

namespace {

template <typename T>
std::atomic_ref<T> A(T& v) {
  return std::atomic_ref<T>(v);
}

uint64_t Align(uint64_t n, uint64_t a) { return (n + a - 1) / a * a; }

int ClassFor(size_t n) {
  if (n <= Pool::kMinBlock) return 0;
  return std::bit_width(n - 1) - 6;  // 65..128 -> 1, ..., 32 Ki+1..64 Ki -> 10
}

uint64_t ClassBytes(int cls) { return uint64_t{Pool::kMinBlock} << cls; }

// A block of the page was freed: the page has room again.
void PageNotFull(uint64_t& word) {
  // relaxed is enough since the flag is only a hint for FindPage.
  if (A(word).load(std::memory_order_relaxed) & internal::kPageFull) {
    A(word).fetch_and(~internal::kPageFull, std::memory_order_relaxed);
  }
}

}  // namespace

namespace internal {

Status ValidatePool(const void* bytes, size_t size) {
  WEFT_RETURN_IF_ERROR(
      ValidateHeader(bytes, size, static_cast<uint32_t>(SegmentKind::kPool), kPoolLayoutVersion));
  if (size < sizeof(PoolLayout)) return Corrupt("pool segment smaller than its layout");
  PoolConfig c;
  std::memcpy(&c, static_cast<const uint8_t*>(bytes) + offsetof(PoolLayout, config), sizeof(c));
  return ValidatePoolConfig(c, size);
}

Status ValidatePoolConfig(const PoolConfig& c, size_t size) {
  if (c.page_size != kPoolPageSize) return Corrupt("pool page size is not 64 KiB");
  if (c.arena_pages == 0 || c.arena_pages > (uint64_t{1} << 24)) return Corrupt("pool arena size out of range");
  if (c.max_arenas == 0 || c.max_arenas > 1024) return Corrupt("pool arena count out of range");
  if (c.large_count > (uint64_t{1} << 20)) return Corrupt("pool large-block table too big");
  const uint64_t arenas_end = c.arenas_offset + c.max_arenas * sizeof(ArenaEntry);
  const uint64_t large_end = c.large_offset + c.large_count * sizeof(LargeEntry);
  if (c.arenas_offset < sizeof(PoolLayout) || c.arenas_offset % 64 != 0 || c.arenas_offset > size ||
      c.large_offset < arenas_end || c.large_offset % 64 != 0 || c.large_offset > size || large_end > size) {
    return Corrupt("pool tables overlap or exceed the segment");
  }
  if (c.max_block < kPoolPageSize) return Corrupt("pool max_block below one page");
  return Status::Ok();
}

Status ValidateArena(const void* bytes, size_t size, uint64_t arena_pages) {
  WEFT_RETURN_IF_ERROR(
      ValidateHeader(bytes, size, static_cast<uint32_t>(SegmentKind::kBlock), kBlockLayoutVersion));
  if (size < ArenaBytes(arena_pages)) return Corrupt("pool arena smaller than its pages");
  return Status::Ok();
}

}  // namespace internal

size_t Pool::BlockSizeFor(size_t n) {
  if (n > kPageSize) return n;
  return ClassBytes(ClassFor(n));
}

Pool::Pool(Segment segment, const Geometry& config) : segment_(std::move(segment)), config_(config) {
  layout_ = reinterpret_cast<PoolLayout*>(segment_.base());
  arena_entries_ = reinterpret_cast<ArenaEntry*>(segment_.base() + config_.arenas_offset);
  large_entries_ = reinterpret_cast<LargeEntry*>(segment_.base() + config_.large_offset);
  arena_pages_ = config_.arena_pages;
  max_arenas_ = config_.max_arenas;
  arenas_.resize(max_arenas_);
  std::fill(std::begin(cur_page_), std::end(cur_page_), -1);
  std::fill(std::begin(cursor_), std::end(cursor_), 0);
}

Pool::~Pool() { Close().IgnoreError(); }

namespace {

// The pool's geometry, copied once out of shared memory and validated as copied: a process
// that scribbles the shared config later changes nothing this process relies on.
Pool::Geometry GeometryOf(const internal::PoolConfig& c) {
  return {c.arena_pages, c.max_arenas, c.arenas_offset, c.large_offset, c.large_count, c.max_block};
}

Result<Pool::Geometry> ReadConfig(const Segment& seg) {
  internal::PoolConfig c;
  std::memcpy(&c, seg.base() + offsetof(PoolLayout, config), sizeof(c));
  Status v = internal::ValidatePoolConfig(c, seg.size());
  if (!v.ok()) return v.Annotate("pool '" + seg.name() + "'");
  return GeometryOf(c);
}

Result<Segment> OpenPoolSegment(std::string_view name) {
  return Segment::OpenValidated(name, SegmentKind::kPool, internal::kPoolLayoutVersion, internal::ValidatePool);
}

}  // namespace

Result<std::unique_ptr<Pool>> Pool::Create(std::string_view name, const PoolOptions& options) {
  if (name.size() > 80) return InvalidArgument("pool name longer than 80 characters");
  const uint64_t pages = std::max<uint64_t>(1, Align(options.bytes, kPageSize) / kPageSize);
  if (pages > (uint64_t{1} << 24)) return InvalidArgument("pool arena larger than 1 TiB");
  if (options.max_arenas == 0 || options.max_arenas > 1024) return InvalidArgument("max_arenas must be 1 to 1024");
  if (options.max_large_blocks > (size_t{1} << 20)) return InvalidArgument("max_large_blocks above 2^20");
  internal::PoolConfig c{};
  c.page_size = kPageSize;
  c.arena_pages = pages;
  c.max_arenas = options.max_arenas;
  c.arenas_offset = sizeof(PoolLayout);
  c.large_offset = Align(c.arenas_offset + c.max_arenas * sizeof(ArenaEntry), 64);
  c.large_count = options.max_large_blocks;
  c.max_block = std::max<uint64_t>(options.max_block, kPageSize);
  Result<Segment> seg = Segment::Create(name, SegmentKind::kPool, internal::kPoolLayoutVersion,
                                        c.large_offset + c.large_count * sizeof(LargeEntry));
  if (!seg.ok()) return seg.status();
  reinterpret_cast<PoolLayout*>(seg->base())->config = c;
  seg->Publish();
  std::unique_ptr<Pool> pool(new Pool(std::move(seg).value(), GeometryOf(c)));
  Status s = pool->Attach();
  if (s.ok() && !pool->AddArena()) s = Status(Code::kIoError, "could not create the first arena");
  if (!s.ok()) {
    pool.reset();
    Unlink(name).IgnoreError();
    return s;
  }
  return pool;
}

Result<std::unique_ptr<Pool>> Pool::Open(std::string_view name) {
  Result<Segment> seg = OpenPoolSegment(name);
  if (!seg.ok()) return seg.status();
  auto config = ReadConfig(*seg);
  if (!config.ok()) return config.status();
  std::unique_ptr<Pool> pool(new Pool(std::move(seg).value(), *config));
  WEFT_RETURN_IF_ERROR(pool->Attach());
  return pool;
}

Result<std::unique_ptr<Pool>> Pool::OpenOrCreate(std::string_view name, const PoolOptions& options) {
  for (int attempt = 0; attempt < 3; ++attempt) {
    auto opened = Open(name);
    if (opened.ok() || opened.status().code() != Code::kNotFound) return opened;
    auto created = Create(name, options);
    if (created.ok() || created.status().code() != Code::kAlreadyExists) return created;
  }
  return Status(Code::kBusy, "pool '" + std::string(name) + "' keeps appearing and vanishing");
}

Result<PoolStats> Pool::Snapshot(std::string_view name) {
  Result<Segment> seg = OpenPoolSegment(name);
  if (!seg.ok()) return seg.status();
  auto config = ReadConfig(*seg);
  if (!config.ok()) return config.status();
  Pool view(std::move(seg).value(), *config);  // never attached: its destructor changes nothing
  return view.Stats();
}

std::string Pool::ArenaName(uint64_t index) const { return segment_.name() + ".A" + std::to_string(index); }

std::string Pool::LargeName(uint64_t serial) const {
  return segment_.name() + ".L" + std::to_string(serial);
}

Status Pool::Unlink(std::string_view name) {
  Result<Segment> seg = OpenPoolSegment(name);
  auto config = seg.ok() ? ReadConfig(*seg) : Result<Pool::Geometry>(seg.status());
  if (config.ok()) {
    ArenaEntry* a = reinterpret_cast<ArenaEntry*>(seg->base() + config->arenas_offset);
    for (uint64_t i = 0; i < config->max_arenas; ++i) {
      if (A(a[i].state).load(std::memory_order_acquire) != internal::kArenaEmpty) {
        Segment::Unlink(std::string(name) + ".A" + std::to_string(i)).IgnoreError();
      }
    }
    LargeEntry* e = reinterpret_cast<LargeEntry*>(seg->base() + config->large_offset);
    for (uint64_t i = 0; i < config->large_count; ++i) {
      if (A(e[i].capacity).load(std::memory_order_acquire) != 0) {
        Segment::Unlink(std::string(name) + ".L" + std::to_string(A(e[i].serial).load(std::memory_order_relaxed))).IgnoreError();
      }
    }
  }
  return Segment::Unlink(name);
}

// ---- arenas ---------------------------------------------------------------------------------

Pool::Arena* Pool::MapArena(uint64_t index) {
  if (index >= max_arenas_) return nullptr;
  if (arenas_[index]) return arenas_[index].get();
  // acquire: pairs with the release that made the arena ready.
  if (A(arena_entries_[index].state).load(std::memory_order_acquire) != internal::kArenaReady) {
    return nullptr;
  }
  Result<Segment> seg = Segment::Open(ArenaName(index), static_cast<uint32_t>(SegmentKind::kBlock),
                                      internal::kBlockLayoutVersion);
  if (!seg.ok() || !internal::ValidateArena(seg->base(), seg->size(), arena_pages_).ok()) return nullptr;
  return AdoptArena(index, std::move(seg).value());
}

Pool::Arena* Pool::AdoptArena(uint64_t index, Segment seg) {
  auto arena = std::make_unique<Arena>();
  uint8_t* base = seg.base();
  arena->pages = reinterpret_cast<uint64_t*>(base + internal::kArenaPagesOffset);
  arena->masks = reinterpret_cast<uint64_t*>(base + internal::ArenaMasksOffset(arena_pages_));
  arena->data = base + internal::ArenaDataOffset(arena_pages_);
  arena->segment = std::move(seg);
  arenas_[index] = std::move(arena);
  return arenas_[index].get();
}

namespace {
// Processes waiting for an arena's creator sleep on its state word (no count: arenas are
// created rarely, so every change wakes).
EventCount ArenaEvents(ArenaEntry& e) { return EventCount::OnValue(LowWord(&e.state)); }
}  // namespace

// Makes one more arena ready. Case analysis of the CAS on an arena's state word:
//  1. empty: claim it (creating | our pid), create the segment, publish ready.
//  2. creating by a dead process: claim it the same way (its segment, if any, is replaced).
//  3. creating by a live process: wait for it (bounded), then look again.
// Returns false when every arena is in use.
bool Pool::AddArena() {
  const uint64_t me = internal::kArenaCreating | static_cast<uint32_t>(SelfIdentity().pid);
  ArenaEntry* entries = arena_entries_;
  for (uint64_t i = 0; i < max_arenas_; ++i) {
    uint64_t st = A(entries[i].state).load(std::memory_order_acquire);
    if (st == internal::kArenaReady) continue;
    if (st != internal::kArenaEmpty) {
      const int32_t pid = static_cast<int32_t>(st & 0xFFFFFFFFu);
      if (IsAlive({pid, 0})) {
        // Sleeps on the state word's low half (the creator's pid until it changes), checking
        // once per slice that the creator still lives.
        Waiter waiter({.spin_ns = 0, .adaptive = false, .liveness_check_ns = 10'000'000});
        waiter.Wait(
            ArenaEvents(entries[i]), Deadline::AfterMs(2000),
            [&] { return A(entries[i].state).load(std::memory_order_acquire) != st; },
            [&] { return IsAlive({pid, 0}); });
        return A(entries[i].state).load(std::memory_order_acquire) == internal::kArenaReady;
      }
    }
    // acq_rel: the claim orders our segment creation after it; a failed CAS: look again.
    if (!A(entries[i].state).compare_exchange_strong(st, me, std::memory_order_acq_rel)) {
      --i;
      continue;
    }
    Segment::Unlink(ArenaName(i)).IgnoreError();  // left by a creator that died
    Result<Segment> seg = Segment::Create(ArenaName(i), SegmentKind::kBlock, internal::kBlockLayoutVersion,
                                          internal::ArenaBytes(arena_pages_));
    if (!seg.ok()) {
      A(entries[i].state).store(internal::kArenaEmpty, std::memory_order_release);
      ArenaEvents(entries[i]).Notify();
      return false;
    }
    seg->Publish();
    // The creator keeps its mapping: it needs no name to use the arena (the pool's names may
    // be removed while it is in use).
    AdoptArena(i, std::move(seg).value());
    // release: the zeroed arena is complete before anyone maps it; pairs with MapArena.
    A(entries[i].state).store(internal::kArenaReady, std::memory_order_release);
    ArenaEvents(entries[i]).Notify();
    ++local_.arenas_created;
    return true;
  }
  return false;
}

// ---- holders --------------------------------------------------------------------------------

// Takes a holder slot. A slot taken over from a dead process is cleaned (its bit cleared from
// every block) before this process starts using the bit.
Status Pool::Attach() {
  Status last;
  for (int s = 0; s < kMaxHolders; ++s) {
    Result<uint32_t> e = BeginClaim(layout_->holders[s], "pool holder slot");
    if (!e.ok()) {
      last = e.status();
      continue;
    }
    slot_ = s;
    epoch_ = *e;
    bit_ = uint64_t{1} << s;
    uint64_t freed = 0;
    ClearHolder(s, &freed);
    FinishClaim(layout_->holders[s], epoch_);
    return Status::Ok();
  }
  return Status(Code::kBusy, "pool '" + segment_.name() + "' has 64 live holders (" + last.message() + ")");
}

void Pool::ClearHolder(int slot, uint64_t* freed) {
  const uint64_t bit = uint64_t{1} << slot;
  for (uint64_t a = 0; a < max_arenas_; ++a) {
    Arena* arena = MapArena(a);
    if (arena == nullptr) continue;
    for (uint64_t p = 0; p < arena_pages_; ++p) {
      const uint64_t cls1 = internal::PageClass(A(arena->pages[p]).load(std::memory_order_acquire));
      if (cls1 == 0 || cls1 > kClasses) continue;
      // Every unit, not only block starts: a claim a dead allocator was undoing after the
      // page changed class may sit between them.
      uint64_t* m = arena->masks + p * kUnitsPerPage;
      for (uint64_t u = 0; u < kUnitsPerPage; ++u) {
        if ((A(m[u]).load(std::memory_order_relaxed) & bit) == 0) continue;
        // acq_rel: the holder's writes are done before the block can be reused.
        if (A(m[u]).fetch_and(~bit, std::memory_order_acq_rel) == bit) {
          PageNotFull(arena->pages[p]);
          ++*freed;
        }
      }
    }
  }
  LargeEntry* e = large_entries_;
  for (uint64_t i = 0; i < config_.large_count; ++i) {
    if ((A(e[i].mask).load(std::memory_order_relaxed) & bit) == 0) continue;
    if (A(e[i].mask).fetch_and(~bit, std::memory_order_acq_rel) == bit) {
      ++*freed;
      LargeFreed(i);  // kept for reuse unless huge
    }
  }
}

size_t Pool::RecoverDead() {
  size_t recovered = 0;
  for (int s = 0; s < kMaxHolders; ++s) {
    if (s == slot_) continue;
    SlotView v = ReadSlot(layout_->holders[s]);
    if (!HolderGone(v)) continue;
    // Claiming the dead holder's slot makes this process the only one recovering it; if it
    // dies too, the next one starts over (clearing bits is idempotent).
    Result<uint32_t> e = BeginClaim(layout_->holders[s], "pool holder slot");
    if (!e.ok()) continue;
    uint64_t freed = 0;
    ClearHolder(s, &freed);
    ReleaseSlot(layout_->holders[s], *e, kSlotEmpty);
    ++recovered;
    ++local_.recoveries;
  }
  return recovered;
}

Status Pool::Close() {
  if (slot_ < 0) return Status::Ok();
  uint64_t freed = 0;
  ClearHolder(slot_, &freed);
  ReleaseSlot(layout_->holders[slot_], epoch_, kSlotEmpty);
  slot_ = -1;
  extra_holds_.clear();
  large_maps_.clear();
  return Status::Ok();
}

// ---- allocation -----------------------------------------------------------------------------

// Chooses a page for class `cls` (as arena * arena_pages + page): one of its pages not flagged
// full, else an unassigned page (given to the class), else one flagged full (the flag may be
// stale). -1 if no arena has one.
int64_t Pool::FindPage(int cls) {
  ++local_.page_searches;
  const uint64_t want = static_cast<uint64_t>(cls) + 1;
  const uint64_t total = max_arenas_ * arena_pages_;
  for (int pass = 0; pass < 3; ++pass) {
    for (uint64_t k = 0; k < total; ++k) {
      const uint64_t g = (page_scan_start_ + k) % total;
      Arena* arena = MapArena(g / arena_pages_);
      if (arena == nullptr) {
        k += arena_pages_ - 1 - g % arena_pages_;  // skip the rest of an absent arena
        continue;
      }
      uint64_t& word = arena->pages[g % arena_pages_];
      uint64_t w = A(word).load(std::memory_order_acquire);
      bool take = false;
      if (w & internal::kPageClosing) continue;  // being returned to the unassigned state
      if (pass == 0) take = internal::PageClass(w) == want && !(w & internal::kPageFull);
      if (pass == 2) take = internal::PageClass(w) == want;
      if (pass == 1 && internal::PageClass(w) == 0) {
        // acq_rel: the page becomes this class's (until all its blocks are free and it is
        // reclaimed); a failed CAS means another process assigned it first: move on.
        take = A(word).compare_exchange_strong(w, want << 32, std::memory_order_acq_rel);
      }
      if (take) {
        page_scan_start_ = g + 1;
        return static_cast<int64_t>(g);
      }
    }
  }
  return -1;
}

Result<BlockId> Pool::AllocateSmall(int cls) {
  const uint64_t stride = uint64_t{1} << cls;  // mask words per block
  const uint64_t per_page = kUnitsPerPage / stride;
  for (int round = 0; round < 3; ++round) {
    for (uint64_t searches = 0; searches <= max_arenas_ * arena_pages_; ++searches) {
      int64_t g = cur_page_[cls];
      if (g < 0) {
        g = FindPage(cls);
        if (g < 0) break;
        cur_page_[cls] = g;
      }
      const uint64_t a = static_cast<uint64_t>(g) / arena_pages_;
      const uint64_t p = static_cast<uint64_t>(g) % arena_pages_;
      Arena* arena = arenas_[a].get();
      uint64_t* m = arena->masks + p * kUnitsPerPage;
      uint32_t i = cursor_[cls] < per_page ? cursor_[cls] : 0;
      for (uint64_t k = 0; k < per_page; ++k) {
        uint64_t& word = m[i * stride];
        uint64_t expected = 0;
        // seq_cst: claims the block and acquires the previous holder's release of it; and
        // SYNC POINT C with ReclaimPage: the claim is ordered before the page-word load below,
        // as the reclaimer's closing mark is before its scan of the masks. Either it sees our
        // bit and keeps the page, or we see its mark and give the block back.
        if (A(word).load(std::memory_order_relaxed) == 0 &&
            A(word).compare_exchange_strong(expected, bit_, std::memory_order_seq_cst)) {
          const uint64_t pw = A(arena->pages[p]).load(std::memory_order_seq_cst);
          if (internal::PageClass(pw) != static_cast<uint64_t>(cls) + 1 || (pw & internal::kPageClosing)) {
            A(word).fetch_and(~bit_, std::memory_order_release);  // the page is being returned
            break;
          }
          cursor_[cls] = i + 1 == per_page ? 0 : i + 1;
          ++local_.allocations;
          return (a << kArenaShift) | (p * kUnitsPerPage + i * stride);
        }
        if (++i == per_page) i = 0;
      }
      // Full: flag it for others and look for another page. relaxed is enough (a hint).
      A(arena->pages[p]).fetch_or(internal::kPageFull, std::memory_order_relaxed);
      cur_page_[cls] = -1;
    }
    // Every page is taken: free what dead holders held, return pages whose blocks are all
    // free (any class) to the unassigned state, then grow by an arena.
    if (round == 0 && RecoverDead() > 0) continue;
    if (ReclaimEmptyPages() > 0) continue;
    if (!AddArena()) break;
  }
  return Status(Code::kWouldBlock, "pool '" + segment_.name() + "' has no free block of " +
                                       std::to_string(ClassBytes(cls)) + " bytes");
}

// Large blocks: reuse a free entry whose segment fits (n to 2n), else give a free entry a new
// segment. Segments are not unlinked when their block is freed, so that steady traffic of
// large samples maps nothing and unmaps nothing; TrimLarge and Unlink remove them.
Result<BlockId> Pool::AllocateLarge(size_t n) {
  LargeEntry* e = large_entries_;
  const uint64_t count = config_.large_count;
  for (int round = 0; round < 2; ++round) {
    for (int pass = 0; pass < 2; ++pass) {
      for (uint64_t i = 0; i < count; ++i) {
        if (A(e[i].mask).load(std::memory_order_relaxed) != 0) continue;
        const uint64_t cap = A(e[i].capacity).load(std::memory_order_relaxed);
        const bool fits = cap >= n && cap <= 2 * n;
        if (pass == 0 && !fits) continue;
        uint64_t expected = 0;
        // acq_rel: claims the entry and acquires its last holder's release.
        if (!A(e[i].mask).compare_exchange_strong(expected, bit_, std::memory_order_acq_rel)) continue;
        const uint64_t have = A(e[i].capacity).load(std::memory_order_relaxed);
        if (have >= n && have <= 2 * n) {
          A(e[i].size).store(n, std::memory_order_relaxed);
          // Reuse, if the segment is really there (a holder killed while replacing it may
          // have removed it); else fall through and make a new one.
          if (Data(kLargeBit | i).ok()) {
            ++local_.allocations;
            return kLargeBit | i;
          }
        }
        // A new segment: replace what the entry had. The capacity is cleared first, so that a
        // kill at any point never leaves an entry that names a segment that is gone.
        if (have != 0) {
          const uint64_t old = A(e[i].serial).load(std::memory_order_relaxed);
          A(e[i].capacity).store(0, std::memory_order_relaxed);
          Segment::Unlink(LargeName(old)).IgnoreError();
          large_maps_.erase(old);
        }
        const uint64_t serial = A(layout_->next_serial).fetch_add(1, std::memory_order_relaxed);
        A(e[i].serial).store(serial, std::memory_order_relaxed);
        A(e[i].size).store(n, std::memory_order_relaxed);
        Result<Segment> seg = Segment::Create(LargeName(serial), SegmentKind::kBlock,
                                              internal::kBlockLayoutVersion, internal::kLargeDataOffset + n);
        if (!seg.ok()) {
          A(e[i].mask).fetch_and(~bit_, std::memory_order_acq_rel);
          Status st = seg.status();
          return st.Annotate("large block");
        }
        seg->Publish();
        A(e[i].capacity).store(seg->size() - internal::kLargeDataOffset, std::memory_order_relaxed);
        large_maps_.emplace(serial, std::move(seg).value());
        ++local_.allocations;
        return kLargeBit | i;
      }
    }
    if (round == 0 && RecoverDead() == 0) break;
  }
  return Status(Code::kWouldBlock, "pool '" + segment_.name() + "' has " + std::to_string(count) +
                                       " large blocks in use");
}

// Removes the segment of free large entry i, if it has one and is still free (claimed for the
// duration with our bit, so no allocation reuses it meanwhile).
bool Pool::TrimEntry(uint64_t i) {
  LargeEntry& e = large_entries_[i];
  uint64_t expected = 0;
  if (slot_ < 0 || A(e.capacity).load(std::memory_order_relaxed) == 0 ||
      !A(e.mask).compare_exchange_strong(expected, bit_, std::memory_order_acq_rel)) {
    return false;
  }
  const uint64_t serial = A(e.serial).load(std::memory_order_relaxed);
  Segment::Unlink(LargeName(serial)).IgnoreError();
  large_maps_.erase(serial);
  A(e.capacity).store(0, std::memory_order_relaxed);
  // release: the entry is free again, its capacity cleared first.
  A(e.mask).fetch_and(~bit_, std::memory_order_release);
  return true;
}

// A freed large block keeps its segment for reuse only up to kKeepLargeBytes: one huge result
// must not pin gigabytes of memory after it is gone.
void Pool::LargeFreed(uint64_t i) {
  if (A(large_entries_[i].capacity).load(std::memory_order_relaxed) > kKeepLargeBytes) TrimEntry(i);
}

size_t Pool::TrimLarge() {
  size_t trimmed = 0;
  for (uint64_t i = 0; i < config_.large_count; ++i) trimmed += TrimEntry(i) ? 1 : 0;
  return trimmed;
}

Status Pool::Damaged() const {
  return Corrupt("pool '" + segment_.name() + "': another process shrank its shared memory; its blocks are gone");
}

Result<BlockId> Pool::Allocate(size_t n) {
  if (slot_ < 0) return Status(Code::kClosed, "pool is closed");
  if (segment_.damaged()) return Damaged();
  if (n > config_.max_block) {
    return TooLarge("block of " + std::to_string(n) + " bytes exceeds max_block " +
                    std::to_string(config_.max_block) + " of pool '" + segment_.name() + "'");
  }
  if (n > kPageSize) return AllocateLarge(n);
  return AllocateSmall(ClassFor(n == 0 ? 1 : n));
}

// ---- returning pages ------------------------------------------------------------------------

// Returns page p of `arena` to the unassigned state if every one of its blocks is free.
// Case analysis of the page word w:
//  1. unassigned, or closing by a live process: leave it.
//  2. assigned (or closing by a dead process): mark it closing with our pid by CAS (a failed
//     CAS: someone changed it; leave it), then scan every mask word: any bit set (an allocator
//     claimed a block meanwhile) restores the class; none sets the word to unassigned.
// SYNC POINT C pairs with the allocator's claim-then-check in AllocateSmall. A process killed
// while closing leaves the mark with its pid: the next reclaimer takes over (case 2).
bool Pool::ReclaimPage(Arena* arena, uint64_t p) {
  uint64_t& word = arena->pages[p];
  uint64_t w = A(word).load(std::memory_order_acquire);
  const uint64_t cls1 = internal::PageClass(w);
  if (cls1 == 0 || cls1 > kClasses) return false;
  if ((w & internal::kPageClosing) && IsAlive({internal::PageCloser(w), 0})) return false;
  uint64_t* m = arena->masks + p * kUnitsPerPage;
  for (uint64_t u = 0; u < kUnitsPerPage; ++u) {
    if (A(m[u]).load(std::memory_order_relaxed) != 0) return false;  // cheap look first
  }
  const uint64_t closing = internal::ClosingWord(cls1, SelfIdentity().pid);
  // seq_cst: SYNC POINT C (see AllocateSmall).
  if (!A(word).compare_exchange_strong(w, closing, std::memory_order_seq_cst)) return false;
  for (uint64_t u = 0; u < kUnitsPerPage; ++u) {
    if (A(m[u]).load(std::memory_order_seq_cst) != 0) {
      A(word).store(cls1 << 32, std::memory_order_release);  // in use after all: keep it
      return false;
    }
  }
  // release: our scan is done before the page can be given to another class.
  A(word).store(0, std::memory_order_release);
  return true;
}

size_t Pool::ReclaimEmptyPages() {
  size_t n = 0;
  for (uint64_t a = 0; a < max_arenas_; ++a) {
    Arena* arena = MapArena(a);
    if (arena == nullptr) continue;
    for (uint64_t p = 0; p < arena_pages_; ++p) n += ReclaimPage(arena, p) ? 1 : 0;
  }
  for (int c = 0; c < kClasses; ++c) cur_page_[c] = -1;  // cached pages may be gone
  return n;
}

// ---- blocks ---------------------------------------------------------------------------------

// The mask word of a valid small block id (mapping its arena if needed), or nullptr.
uint64_t* Pool::SmallMask(BlockId id, uint64_t* block_bytes, Arena** arena_out) {
  const uint64_t a = id >> kArenaShift;
  const uint64_t u = id & ((uint64_t{1} << kArenaShift) - 1);
  const uint64_t p = u / kUnitsPerPage;
  if (a >= max_arenas_ || p >= arena_pages_) return nullptr;
  Arena* arena = MapArena(a);
  if (arena == nullptr) return nullptr;
  const uint64_t cls1 = internal::PageClass(A(arena->pages[p]).load(std::memory_order_acquire));
  if (cls1 == 0 || cls1 > kClasses) return nullptr;
  if ((u % kUnitsPerPage) % (uint64_t{1} << (cls1 - 1)) != 0) return nullptr;
  *block_bytes = ClassBytes(static_cast<int>(cls1 - 1));
  *arena_out = arena;
  return arena->masks + u;
}

Result<MutableBytes> Pool::Data(BlockId id) {
  if (id & kLargeBit) {
    const uint64_t i = id & ~kLargeBit;
    if (i >= config_.large_count) return NotFound("no large block " + std::to_string(i));
    LargeEntry& e = large_entries_[i];
    if (A(e.mask).load(std::memory_order_acquire) == 0) return InvalidArgument("large block is free");
    const uint64_t serial = A(e.serial).load(std::memory_order_relaxed);
    const uint64_t size = A(e.size).load(std::memory_order_relaxed);
    auto it = large_maps_.find(serial);
    if (it == large_maps_.end()) {
      Result<Segment> seg = Segment::Open(LargeName(serial), static_cast<uint32_t>(SegmentKind::kBlock),
                                          internal::kBlockLayoutVersion);
      if (!seg.ok()) {
        Status st = seg.status();
        return st.Annotate("large block");
      }
      it = large_maps_.emplace(serial, std::move(seg).value()).first;
    }
    // The size is shared (any holder may scribble it): never past this process's mapping.
    if (it->second.size() < internal::kLargeDataOffset || size > it->second.size() - internal::kLargeDataOffset) return Corrupt("large block larger than its segment");
    if (segment_.damaged() || it->second.damaged()) return Damaged();
    return MutableBytes(it->second.base() + internal::kLargeDataOffset, size);
  }
  uint64_t bytes = 0;
  Arena* arena = nullptr;
  if (SmallMask(id, &bytes, &arena) == nullptr) {
    Arena* a = MapArena(id >> kArenaShift);  // a shrunk arena reads as zeros: say so
    if (a != nullptr && a->segment.damaged()) return Damaged();
    return InvalidArgument("not a block of pool '" + segment_.name() + "': " + std::to_string(id));
  }
  if (arena->segment.damaged()) return Damaged();
  const uint64_t u = id & ((uint64_t{1} << kArenaShift) - 1);
  return MutableBytes(arena->data + u * kUnit, bytes);
}

// The holder mask of a valid block id (mapping its arena if needed), or nullptr.
uint64_t* Pool::MaskOf(BlockId id) {
  if (id & kLargeBit) {
    const uint64_t i = id & ~kLargeBit;
    return i < config_.large_count ? &large_entries_[i].mask : nullptr;
  }
  uint64_t bytes = 0;
  Arena* arena = nullptr;
  return SmallMask(id, &bytes, &arena);
}

Status Pool::Hold(BlockId id, bool* added) { return HoldIfHeldBy(id, ~uint64_t{0}, added); }

Status Pool::HoldIfHeldBy(BlockId id, uint64_t holder_bits, bool* added) {
  if (slot_ < 0) return Status(Code::kClosed, "pool is closed");
  if (segment_.damaged()) return Damaged();
  uint64_t* mask = MaskOf(id);
  if (mask == nullptr) return InvalidArgument("not a block of pool '" + segment_.name() + "': " + std::to_string(id));
  uint64_t m = A(*mask).load(std::memory_order_acquire);
  for (;;) {
    if (m == 0) return InvalidArgument("block " + std::to_string(id) + " is free; only a held block can be held");
    if ((m & holder_bits) == 0) {
      return Status(Code::kPermissionDenied, "block " + std::to_string(id) + " is not held by the peer that named it");
    }
    if (m & bit_) {
      ++extra_holds_[id];
      if (added) *added = false;
      return Status::Ok();
    }
    // acq_rel: joins the holders while one of `holder_bits` still holds it (the mask we
    // compare against has that bit); a failed CAS re-reads and decides again.
    if (A(*mask).compare_exchange_weak(m, m | bit_, std::memory_order_acq_rel)) {
      if (added) *added = true;
      return Status::Ok();
    }
  }
}

bool Pool::HolderIs(int slot, int32_t pid) const {
  if (slot < 0 || slot >= kMaxHolders) return false;
  const SlotView v = ReadSlot(layout_->holders[slot]);
  return v.state == kSlotAttached && v.who.pid == pid && !HolderGone(v);
}

bool Pool::HeldBy(BlockId id, int slot) {
  if (slot < 0 || slot >= kMaxHolders) return false;
  uint64_t* mask = MaskOf(id);
  return mask != nullptr && (A(*mask).load(std::memory_order_acquire) >> slot & 1) != 0;
}

Status Pool::Grant(BlockId id, uint64_t holder_bits, uint64_t* already) {
  if (slot_ < 0) return Status(Code::kClosed, "pool is closed");
  uint64_t* mask = MaskOf(id);
  if (mask == nullptr) return InvalidArgument("not a block of pool '" + segment_.name() + "': " + std::to_string(id));
  // Our own bit keeps the block from being freed meanwhile, so one fetch_or is enough.
  // release: our writes to the block happen-before the new holders' acquire of the mask.
  const uint64_t old = A(*mask).fetch_or(holder_bits, std::memory_order_acq_rel);
  if ((old & bit_) == 0) {
    A(*mask).fetch_and(~(holder_bits & ~old), std::memory_order_acq_rel);  // undo what we added
    return InvalidArgument("Grant of block " + std::to_string(id) + " not held by this process");
  }
  if (already) *already = old & holder_bits;
  return Status::Ok();
}

Status Pool::Revoke(BlockId id, int slot) {
  if (slot < 0 || slot >= kMaxHolders) return InvalidArgument("holder slot out of range");
  return ClearBit(id, uint64_t{1} << slot);
}

Status Pool::Release(BlockId id) {
  if (slot_ < 0) return Status(Code::kClosed, "pool is closed");
  if (!extra_holds_.empty()) {
    auto it = extra_holds_.find(id);
    if (it != extra_holds_.end()) {
      if (--it->second == 0) extra_holds_.erase(it);
      return Status::Ok();
    }
  }
  WEFT_RETURN_IF_ERROR(ClearBit(id, bit_));
  ++local_.releases;
  return Status::Ok();
}

// Clears one holder's bit; the holder that clears the last one frees the block.
Status Pool::ClearBit(BlockId id, uint64_t bit) {
  if (id & kLargeBit) {
    const uint64_t i = id & ~kLargeBit;
    if (i >= config_.large_count) return InvalidArgument("no large block " + std::to_string(i));
    LargeEntry& e = large_entries_[i];
    // The segment and this process's mapping stay, for reuse by the next large request.
    const uint64_t old = A(e.mask).fetch_and(~bit, std::memory_order_acq_rel);
    if ((old & bit) == 0) return InvalidArgument("large block " + std::to_string(i) + " not held by that holder");
    if (old == bit) LargeFreed(i);
    return Status::Ok();
  }
  uint64_t bytes = 0;
  Arena* arena = nullptr;
  uint64_t* mask = SmallMask(id, &bytes, &arena);
  if (mask == nullptr) return InvalidArgument("not a block: " + std::to_string(id));
  // acq_rel: the holder's writes to the block are done before another process may claim it.
  const uint64_t old = A(*mask).fetch_and(~bit, std::memory_order_acq_rel);
  if ((old & bit) == 0) return InvalidArgument("block " + std::to_string(id) + " not held by that holder");
  if (old == bit) PageNotFull(arena->pages[(id & ((uint64_t{1} << kArenaShift) - 1)) / kUnitsPerPage]);
  return Status::Ok();
}

// Calls visit(id, mask, bytes) for every block in use, small then large.
template <typename Visit>
void Pool::ForEachBlock(PoolStats* s, Visit&& visit) {
  for (uint64_t a = 0; a < max_arenas_; ++a) {
    Arena* arena = MapArena(a);
    if (arena == nullptr) continue;
    ++s->arenas;
    s->pages += arena_pages_;
    for (uint64_t p = 0; p < arena_pages_; ++p) {
      const uint64_t cls1 = internal::PageClass(A(arena->pages[p]).load(std::memory_order_acquire));
      if (cls1 == 0 || cls1 > kClasses) continue;
      ++s->pages_assigned;
      ++s->pages_per_class[cls1 - 1];
      const uint64_t stride = uint64_t{1} << (cls1 - 1);
      for (uint64_t u = 0; u < kUnitsPerPage; u += stride) {
        const uint64_t m = A(arena->masks[p * kUnitsPerPage + u]).load(std::memory_order_relaxed);
        if (m != 0) visit((a << kArenaShift) | (p * kUnitsPerPage + u), m, ClassBytes(static_cast<int>(cls1 - 1)));
      }
    }
  }
  LargeEntry* e = large_entries_;
  for (uint64_t i = 0; i < config_.large_count; ++i) {
    const uint64_t m = A(e[i].mask).load(std::memory_order_relaxed);
    if (m != 0) visit(kLargeBit | i, m, A(e[i].size).load(std::memory_order_relaxed));
  }
}

std::vector<BlockId> Pool::HeldBlocks() {
  std::vector<BlockId> out;
  if (slot_ < 0) return out;
  PoolStats scratch;
  scratch.pages_per_class.assign(kClasses, 0);
  ForEachBlock(&scratch, [&](BlockId id, uint64_t mask, uint64_t) {
    if (mask & bit_) out.push_back(id);
  });
  return out;
}

PoolStats Pool::Stats() const {
  auto* self = const_cast<Pool*>(this);  // maps arenas lazily
  PoolStats s;
  s.page_size = kPageSize;
  s.pages_per_class.assign(kClasses, 0);
  uint64_t per_holder[kMaxHolders] = {};
  self->ForEachBlock(&s, [&](BlockId id, uint64_t mask, uint64_t bytes) {
    if (id & kLargeBit) {
      ++s.large_in_use;
      s.large_bytes += bytes;
    } else {
      ++s.blocks_in_use;
      s.bytes_in_use += bytes;
    }
    for (uint64_t b = mask; b != 0; b &= b - 1) ++per_holder[std::countr_zero(b)];
  });
  for (int h = 0; h < kMaxHolders; ++h) {
    SlotView v = ReadSlot(layout_->holders[h]);
    if (v.state != kSlotAttached && v.state != kSlotClaiming && per_holder[h] == 0) continue;
    s.holders.push_back({h, v.who.pid, !HolderGone(v) && v.state != kSlotEmpty, per_holder[h]});
  }
  return s;
}

}  // namespace weft::shm
