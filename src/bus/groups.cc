#include "internal/groups.h"

#include "internal/ring.h"

#include <cstdio>
#include <cstring>
#include <thread>

#include "weft/shm/doorbell.h"
#include "weft/shm/process.h"
#include "weft/shm/slot.h"

namespace weft::bus::internal {

Status ValidateGroupName(std::string_view name) {
  if (name.empty() || name.size() > kMaxGroupName) {
    return Status(Code::kInvalidArgument, "a group name has 1 to " + std::to_string(kMaxGroupName) + " characters");
  }
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                    c == '_' || c == '-';
    if (!ok) return Status(Code::kInvalidArgument, "group name '" + std::string(name) + "': use [A-Za-z0-9._-]");
  }
  return Status::Ok();
}

namespace {

// Names are read with atomic loads: an entry may be re-claimed and renamed meanwhile (the
// length, written after the bytes, says which name the bytes belong to).
bool NameIs(GroupRecord& gr, std::string_view name) {
  const uint32_t n = A(gr.name_length).load(std::memory_order_acquire);
  if (n != name.size() || n > kMaxGroupName) return false;
  for (uint32_t i = 0; i < n; ++i) {
    if (A(gr.name[i]).load(std::memory_order_relaxed) != name[i]) return false;
  }
  return true;
}

void StartCursors(const View& v, uint32_t g, Start start) {
  for (uint32_t s = 0; s < v.geo.shards; ++s) {
    GroupShard& c = v.cursor(g, s);
    ShardState& st = v.shard(s);
    // The group is active: producers no longer reclaim past its cursors once they see it. One
    // that looked before may still move `oldest` once; follow it until it stands still.
    // kLatest: after the last published record (a record still being written belongs to the
    // group: everything below a group's cursors must be published, since space is reclaimed
    // up to them without looking).
    uint64_t at = A(st.oldest).load(std::memory_order_acquire);
    if (start == Start::kLatest) at = Shard(v, s).PublishedEnd(at);
    for (;;) {
      RaiseCursors(c, at);
      const uint64_t oldest = A(st.oldest).load(std::memory_order_acquire);
      if (oldest <= LoadPair(&c.cursors).second) break;
      at = oldest;
    }
  }
}

}  // namespace

Result<uint32_t> FindOrCreateGroup(const View& v, std::string_view name, Start start,
                                   const std::function<uint64_t(uint32_t)>& start_at) {
  WEFT_RETURN_IF_ERROR(ValidateGroupName(name));
  for (int attempt = 0; attempt < 1000; ++attempt) {
    int free_slot = -1;
    bool creating = false;
    for (uint32_t g = 0; g < kMaxGroups; ++g) {
      GroupRecord& gr = v.group(g);
      const uint32_t state = A(gr.state).load(std::memory_order_acquire);
      if (state == kGroupActive && NameIs(gr, name)) return g;
      if (state == kGroupCreating) {
        // A creator that died half-way leaves the entry to the next one: whoever clears its pid
        // (0: a creator that has just claimed the entry, counted as alive) frees the entry.
        int32_t pid = A(gr.creator_pid).load(std::memory_order_acquire);
        if (pid != 0 && !shm::IsAlive({pid, A(gr.creator_start_ticks).load(std::memory_order_relaxed)}) &&
            A(gr.creator_pid).compare_exchange_strong(pid, 0, std::memory_order_acq_rel)) {
          A(gr.name_length).store(0, std::memory_order_relaxed);
          A(gr.state).store(kGroupFree, std::memory_order_release);
          continue;
        }
        if (NameIs(gr, name)) creating = true;
      }
      if (state == kGroupFree && free_slot < 0) free_slot = static_cast<int>(g);
    }
    if (creating) {  // another thread or process is creating it: wait for it
      std::this_thread::yield();
      continue;
    }
    if (free_slot < 0) {
      return Status(Code::kResourceExhausted, "the bus has " + std::to_string(kMaxGroups) + " groups already");
    }
    GroupRecord& gr = v.group(static_cast<uint32_t>(free_slot));
    uint32_t expect = kGroupFree;
    if (!A(gr.state).compare_exchange_strong(expect, kGroupCreating, std::memory_order_acq_rel)) continue;
    const shm::ProcessIdentity me = shm::SelfIdentity();
    A(gr.creator_start_ticks).store(me.start_ticks, std::memory_order_relaxed);
    A(gr.creator_pid).store(me.pid, std::memory_order_release);
    for (size_t i = 0; i <= name.size(); ++i) {
      A(gr.name[i]).store(i < name.size() ? name[i] : '\0', std::memory_order_relaxed);
    }
    // Two creators of one name: each publishes its name, then looks for the other (seq_cst on
    // both sides: at least one sees the other). Whoever sees another withdraws; if both do,
    // both try again.
    A(gr.name_length).store(static_cast<uint32_t>(name.size()), std::memory_order_seq_cst);
    bool lost = false;
    for (uint32_t g = 0; g < kMaxGroups; ++g) {
      if (g == static_cast<uint32_t>(free_slot)) continue;
      GroupRecord& other = v.group(g);
      const uint32_t state = A(other.state).load(std::memory_order_seq_cst);
      if (state != kGroupFree && NameIs(other, name)) lost = true;
    }
    if (lost) {
      A(gr.name_length).store(0, std::memory_order_relaxed);
      A(gr.creator_pid).store(0, std::memory_order_relaxed);
      A(gr.state).store(kGroupFree, std::memory_order_release);
      for (int i = 0; i <= attempt % 8; ++i) std::this_thread::yield();
      continue;
    }
    const uint32_t g = static_cast<uint32_t>(free_slot);
    for (uint32_t s = 0; s < v.geo.shards; ++s) {
      GroupShard& c = v.cursor(g, s);
      A(c.cursors.first).store(0, std::memory_order_relaxed);
      A(c.cursors.second).store(0, std::memory_order_relaxed);
      A(c.owner).store(0, std::memory_order_relaxed);
      A(c.delivered).store(0, std::memory_order_relaxed);
      A(c.dropped).store(0, std::memory_order_relaxed);
    }
    A(gr.creator_pid).store(0, std::memory_order_relaxed);
    A(gr.state).store(kGroupActive, std::memory_order_release);
    // seq_cst: producers that reclaim after this see the group (at cursor 0, which holds
    // everything back) before StartCursors moves it to where it starts.
    A(v.header().groups_active).fetch_or(1u << g, std::memory_order_seq_cst);
    A(v.header().groups_generation).fetch_add(1, std::memory_order_acq_rel);
    if (start_at) {
      for (uint32_t s = 0; s < v.geo.shards; ++s) RaiseCursors(v.cursor(g, s), start_at(s));
    } else {
      StartCursors(v, g, start);
    }
    return g;
  }
  return Status(Code::kBusy, "group '" + std::string(name) + "' is being created by a process that does not finish");
}

std::vector<uint32_t> LiveMembers(const View& v, uint32_t g) {
  std::vector<uint32_t> live;
  GroupRecord& gr = v.group(g);
  for (uint32_t i = 0; i < kMaxMembers; ++i) {
    const shm::SlotView sv = shm::ReadSlot(gr.members[i]);
    if (sv.state == shm::kSlotAttached && !shm::HolderGone(sv)) live.push_back(i);
  }
  return live;
}

bool ReapDeadMembers(const View& v, uint32_t g) {
  bool any = false;
  GroupRecord& gr = v.group(g);
  for (uint32_t i = 0; i < kMaxMembers; ++i) {
    const shm::SlotView sv = shm::ReadSlot(gr.members[i]);
    if (shm::HolderGone(sv)) {  // attached or claiming, by a process that is gone
      uint64_t expect = sv.word;
      if (A(gr.members[i].owner)
              .compare_exchange_strong(expect, shm::PackOwner(shm::kSlotClosed, sv.epoch, sv.who.pid),
                                       std::memory_order_acq_rel)) {
        any = true;
      }
    }
  }
  return any;
}

bool OwnerGone(const View& v, uint32_t g, uint64_t owner) {
  if (owner == 0) return true;
  const uint64_t index = (owner & 0xFF) - 1;
  if (index >= kMaxMembers) return true;  // not a member: a scribbled word names nobody
  const shm::SlotView sv = shm::ReadSlot(v.group(g).members[index]);
  return sv.state != shm::kSlotAttached || sv.epoch != (owner >> 8) || shm::HolderGone(sv);
}

std::vector<uint32_t> AssignedShards(uint32_t shards, size_t live, size_t rank) {
  std::vector<uint32_t> out;
  if (live == 0) return out;
  for (uint32_t s = 0; s < shards; ++s) {
    if (s % live == rank) out.push_back(s);
  }
  return out;
}

void WakeGroups(const View& v) {
  // One fence for every record written since the last one: after it, a member that counted
  // itself asleep is seen, and one that counts itself later sees the records.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  const uint32_t active = A(v.header().groups_active).load(std::memory_order_acquire);
  for (uint32_t g = 0; g < kMaxGroups; ++g) {
    if ((active & (1u << g)) == 0) continue;
    GroupEvents(v, g).NotifySeqCst();
    // Relaxed is enough: the fence above pairs with the member's fence after it armed (either
    // it sees what was published, or this load sees its bit).
    if (A(v.group(g).bells).load(std::memory_order_relaxed) != 0) RingBells(v, g);
  }
}

std::string BellName(const View& v, uint32_t g, uint32_t index, uint32_t epoch) {
  char name[96];
  std::snprintf(name, sizeof(name), "weft.bus.%016llx.g%u.m%u.%u",
                static_cast<unsigned long long>(A(v.header().id).load(std::memory_order_relaxed)), g, index, epoch);
  return name;
}

void RingBells(const View& v, uint32_t g) {
  GroupRecord& gr = v.group(g);
  // acq_rel: one ring per arming; the member re-arms (seq_cst) before it looks again.
  const uint32_t armed = A(gr.bells).exchange(0, std::memory_order_acq_rel);
  thread_local int send_fd = -1;
  for (uint32_t i = 0; i < kMaxMembers; ++i) {
    if ((armed & (1u << i)) == 0) continue;
    const shm::SlotView sv = shm::ReadSlot(gr.members[i]);
    if (sv.state != shm::kSlotAttached) continue;
    shm::RingDoorbell(BellName(v, g, i, sv.epoch), &send_fd);
  }
}

void MembershipChanged(const View& v, uint32_t g) {
  A(v.group(g).generation).fetch_add(1, std::memory_order_seq_cst);
  GroupEvents(v, g).WakeAll();
  if (A(v.group(g).bells).load(std::memory_order_seq_cst) != 0) RingBells(v, g);
}

}  // namespace weft::bus::internal
