#include "internal/member.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>

#include "internal/groups.h"
#include "weft/core/clock.h"
#include "weft/core/pair.h"
#include "weft/core/wait.h"
#include "weft/shm/doorbell.h"

namespace weft::bus::internal {

namespace {

constexpr int64_t kLivenessSliceNs = 20'000'000;  // a member checks the others' liveness this often
constexpr int64_t kLazyCommitNs = 50'000'000;     // an automatic commit reaches the shared cursors within this

class Member final : public Consumer {
 public:
  Member(std::shared_ptr<const void> keep, const View& v, uint32_t group, std::string name, uint32_t index,
         uint32_t epoch, const ConsumerOptions& options, std::unique_ptr<ShardReader> reader)
      : keep_(std::move(keep)), v_(v), g_(group), name_(std::move(name)), index_(index), epoch_(epoch),
        me_(OwnerWord(index, epoch)), options_(options), reader_(std::move(reader)), waiter_(options.wait),
        owned_(v_.geo.shards, false), next_(v_.geo.shards, 0), taken_(v_.geo.shards, 0),
        published_(v_.geo.shards, 0) {
    waiter_.set_policy({.spin_ns = options.wait.spin_ns, .adaptive = options.wait.adaptive,
                        .liveness_check_ns = kLivenessSliceNs});
  }
  ~Member() override { Close().IgnoreError(); }

  Result<std::span<const Event>> Poll(size_t limit, Deadline deadline) override {
    if (closed_) return Status(Code::kClosed, "consumer is closed");
    if (limit == 0) return InvalidArgument("poll limit is 0");
    if (options_.auto_commit) WEFT_RETURN_IF_ERROR(CommitTaken(false));
    EndBatch();
    for (;;) {
      if (waiter_.interrupted()) return Status(Code::kClosed, "consumer interrupted");
      WEFT_RETURN_IF_ERROR(reader_->Intact());
      Rebalance();
      WEFT_RETURN_IF_ERROR(Gather(limit));
      if (!batch_.empty()) return std::span<const Event>(batch_);
      if (deadline.is_now()) {
        if (bell_fd_ >= 0 && Arm()) continue;  // something came while arming: gather it
        static const Status::Fixed kNone{Code::kWouldBlock, "no event yet"};
        return Status(kNone);
      }
      const WaitReport r = waiter_.Wait(
          GroupEvents(v_, g_), deadline, [&] { return Ready(); },
          [&] {
            if (!reader_->Intact().ok()) return false;  // the loop reports it
            if (ReapDeadMembers(v_, g_)) MembershipChanged(v_, g_);
            for (uint32_t s = 0; s < v_.geo.shards; ++s) {
              if (owned_[s]) reader_->Repair(s, reader_->Next(s, next_[s]));
            }
            return true;
          });
      if (r.end == WaitEnd::kInterrupted) return Status(Code::kClosed, "consumer interrupted");
      if (r.end == WaitEnd::kStopped) continue;
      if (r.end == WaitEnd::kTimeout) {
        static const Status::Fixed kLate{Code::kTimeout, "no event before the deadline"};
        return Status(kLate);
      }
    }
  }

  Status Commit() override {
    if (closed_) return Status(Code::kClosed, "consumer is closed");
    EndBatch();
    return CommitTaken();
  }

  std::vector<uint32_t> shards() const override {
    std::vector<uint32_t> out;
    for (uint32_t s = 0; s < v_.geo.shards; ++s) {
      if (owned_[s]) out.push_back(s);
    }
    return out;
  }
  const std::string& group() const override { return name_; }

  Result<int> WaitFd() override {
    if (closed_) return Status(Code::kClosed, "consumer is closed");
    if (bell_fd_ >= 0) return bell_fd_;
    const std::string name = BellName(v_, g_, index_, epoch_);
    Result<int> fd = shm::BindDoorbell(name);
    if (!fd.ok()) return fd.status();
    bell_fd_ = *fd;
    // It starts readable: events may be there already, and no poll has armed it yet.
    int send_fd = -1;
    shm::RingDoorbell(name, &send_fd);
    if (send_fd >= 0) ::close(send_fd);
    return bell_fd_;
  }

  void Interrupt() override {
    waiter_.Interrupt(GroupEvents(v_, g_));
    if (bell_fd_ >= 0) {  // a caller waiting on the descriptor learns it too
      int send_fd = -1;
      shm::RingDoorbell(BellName(v_, g_, index_, epoch_), &send_fd);
      if (send_fd >= 0) ::close(send_fd);
    }
  }

  Status Close() override {
    if (closed_) return Status::Ok();
    closed_ = true;
    Status st = options_.auto_commit ? CommitTaken() : Status::Ok();
    EndBatch();
    for (uint32_t s = 0; s < v_.geo.shards; ++s) {
      if (owned_[s]) {
        const Status r = Release(s);
        if (st.ok()) st = r;
      }
    }
    if (bell_fd_ >= 0) {
      A(v_.group(g_).bells).fetch_and(~(1u << index_), std::memory_order_relaxed);
      ::close(bell_fd_);
      bell_fd_ = -1;
    }
    shm::ReleaseSlot(v_.group(g_).members[index_], epoch_, shm::kSlotEmpty);
    MembershipChanged(v_, g_);
    return st;
  }

 private:
  // Arms the doorbell for the next producer (or membership change) and looks once more: true
  // if something is there already. seq_cst store, then a fence, then the check: pairs with the
  // producer's fence before it reads the bells (WakeGroups), so either it rings or we see.
  bool Arm() {
    shm::DrainDoorbell(bell_fd_);
    A(v_.group(g_).bells).fetch_or(1u << index_, std::memory_order_seq_cst);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    return Ready();
  }

  void EndBatch() {
    batch_.clear();
    reader_->EndBatch();
  }

  // Commits what was taken from every shard this member reads. Where the backend allows lazy
  // commits (a ring under block), an automatic commit (at a poll) reaches the shared cursors
  // once an eighth of the ring was taken since the last, or when the backend needs it (a
  // producer sleeps waiting for space), or 50 ms later; until then the group would resume a
  // little earlier (at-least-once either way). Elsewhere it is written at once. Commit, Close
  // and a handover publish at once.
  Status CommitTaken(bool now = true) {
    const bool lazy = !now && reader_->LazyCommits();
    const int64_t t = lazy ? MonotonicNs() : 0;
    const bool due = !lazy || t - published_at_ >= kLazyCommitNs;
    Status st;
    for (uint32_t s = 0; s < v_.geo.shards; ++s) {
      if (!owned_[s] || taken_[s] == 0) continue;
      if (!due && !reader_->CommitUrgent(s, next_[s] - published_[s])) continue;
      const Status r = reader_->Commit(s, next_[s]);
      if (!r.ok()) {
        if (st.ok()) st = r;
        continue;  // kept: the next commit tries again
      }
      published_[s] = next_[s];
      taken_[s] = 0;
    }
    if (lazy && due) published_at_ = t;
    return st;
  }

  Status Release(uint32_t s) {
    Status st;
    if (options_.auto_commit && taken_[s] != 0) st = reader_->Commit(s, next_[s]);
    published_[s] = next_[s];
    taken_[s] = 0;
    uint64_t expect = me_;
    A(v_.cursor(g_, s).owner).compare_exchange_strong(expect, 0, std::memory_order_acq_rel);
    owned_[s] = false;
    reader_->Forget(s);
    GroupEvents(v_, g_).WakeAll();  // the member it goes to may be waiting for it
    return st;
  }

  // Takes shard s if its owner is gone; the group resumes there from the committed position.
  bool Acquire(uint32_t s) {
    GroupShard& c = v_.cursor(g_, s);
    uint64_t owner = A(c.owner).load(std::memory_order_acquire);
    if (owner == me_) return true;
    if (!OwnerGone(v_, g_, owner)) return false;
    if (!A(c.owner).compare_exchange_strong(owner, me_, std::memory_order_acq_rel)) return false;
    // What the previous owner took but did not commit is delivered again (at-least-once):
    // next goes back to committed, both read and written at once (a producer may move them
    // under drop_oldest).
    WordPair p = LoadPair(&c.cursors);
    while (p.first != p.second && !CasPair(&c.cursors, &p, {p.second, p.second})) {
    }
    next_[s] = p.second;
    published_[s] = p.second;
    owned_[s] = true;
    taken_[s] = 0;
    return true;
  }

  void Rebalance() {
    const uint32_t gen = A(v_.group(g_).generation).load(std::memory_order_acquire);
    if (gen == seen_generation_ && !pending_) return;
    const std::vector<uint32_t> live = LiveMembers(v_, g_);
    auto me = std::find(live.begin(), live.end(), index_);
    std::vector<bool> assigned(v_.geo.shards, false);
    if (me != live.end()) {
      for (uint32_t s : AssignedShards(v_.geo.shards, live.size(), static_cast<size_t>(me - live.begin()))) {
        assigned[s] = true;
      }
    }
    for (uint32_t s = 0; s < v_.geo.shards; ++s) {
      if (owned_[s] && !assigned[s]) Release(s).IgnoreError();  // a failed commit: the next owner repeats it
    }
    pending_ = false;
    for (uint32_t s = 0; s < v_.geo.shards; ++s) {
      if (assigned[s] && !owned_[s] && !Acquire(s)) pending_ = true;  // its owner hands it over at its next poll
    }
    seen_generation_ = gen;
  }

  // True when a poll would find something: an event in an owned shard, a membership change,
  // or a shard this member waits for that its owner has let go.
  bool Ready() {
    if (A(v_.group(g_).generation).load(std::memory_order_acquire) != seen_generation_) return true;
    for (uint32_t s = 0; s < v_.geo.shards; ++s) {
      if (owned_[s] && reader_->Readable(s, reader_->Next(s, next_[s]))) return true;
    }
    if (pending_) {
      for (uint32_t s = 0; s < v_.geo.shards; ++s) {
        if (!owned_[s] && OwnerGone(v_, g_, A(v_.cursor(g_, s).owner).load(std::memory_order_acquire))) return true;
      }
    }
    return false;
  }

  Status Gather(size_t limit) {
    const uint32_t n = v_.geo.shards;
    for (uint32_t k = 0; k < n && batch_.size() < limit; ++k) {
      const uint32_t s = (rotation_ + k) % n;
      if (!owned_[s]) continue;
      const uint64_t from = reader_->Next(s, next_[s]);
      const size_t before = batch_.size();
      Result<uint64_t> to = reader_->Read(s, from, limit - batch_.size(), &batch_);
      if (!to.ok()) {
        batch_.resize(before);
        return to.status();
      }
      if (*to == from) continue;
      const uint64_t got = batch_.size() - before;
      GroupShard& c = v_.cursor(g_, s);
      A(c.delivered).store(A(c.delivered).load(std::memory_order_relaxed) + got, std::memory_order_relaxed);
      next_[s] = *to;
      taken_[s] += got == 0 ? 1 : got;  // a pad moves the cursor too: commit it
    }
    ++rotation_;
    return Status::Ok();
  }

  std::shared_ptr<const void> keep_;
  View v_;
  uint32_t g_;
  std::string name_;
  uint32_t index_;
  uint32_t epoch_;
  uint64_t me_;
  ConsumerOptions options_;
  std::unique_ptr<ShardReader> reader_;
  Waiter waiter_;
  std::vector<bool> owned_;
  std::vector<uint64_t> next_;       // the next position to read, per owned shard
  std::vector<uint64_t> taken_;      // taken since the last commit (0: nothing to commit)
  std::vector<uint64_t> published_;  // the committed position last written to the shared cursors
  int64_t published_at_ = 0;
  std::vector<Event> batch_;
  uint32_t seen_generation_ = UINT32_MAX;
  bool pending_ = false;
  uint32_t rotation_ = 0;
  bool closed_ = false;
  int bell_fd_ = -1;  // WaitFd's doorbell, once asked for
};

}  // namespace

Result<std::unique_ptr<Consumer>> JoinGroup(std::shared_ptr<const void> keep, const View& v, uint32_t g,
                                            std::string_view name, const ConsumerOptions& options,
                                            std::unique_ptr<ShardReader> reader) {
  GroupRecord& gr = v.group(g);
  for (uint32_t i = 0; i < kMaxMembers; ++i) {
    Result<uint32_t> epoch = shm::BeginClaim(gr.members[i], "bus group member");
    if (!epoch.ok()) continue;
    shm::FinishClaim(gr.members[i], *epoch);
    auto member = std::make_unique<Member>(std::move(keep), v, g, std::string(name), i, *epoch, options,
                                           std::move(reader));
    MembershipChanged(v, g);
    return std::unique_ptr<Consumer>(std::move(member));
  }
  return Status(Code::kResourceExhausted,
                "group '" + std::string(name) + "' has " + std::to_string(kMaxMembers) + " members already");
}

std::vector<Participant> Holders(const std::function<shm::Slot&(uint32_t)>& slot, uint32_t count) {
  std::vector<Participant> out;
  for (uint32_t i = 0; i < count; ++i) {
    const shm::SlotView sv = shm::ReadSlot(slot(i));
    if (sv.state != shm::kSlotAttached && sv.state != shm::kSlotClaiming) continue;
    out.push_back({i, sv.who.pid, !shm::HolderGone(sv)});
  }
  return out;
}

std::vector<GroupStats> DescribeGroups(const View& v, const std::vector<ShardStats>& shards) {
  std::vector<GroupStats> out;
  const uint32_t active = A(v.header().groups_active).load(std::memory_order_acquire);
  for (uint32_t g = 0; g < kMaxGroups; ++g) {
    if ((active & (1u << g)) == 0) continue;
    GroupRecord& gr = v.group(g);
    GroupStats gs;
    const uint32_t n = std::min(A(gr.name_length).load(std::memory_order_acquire), kMaxGroupName);
    for (uint32_t i = 0; i < n; ++i) gs.name.push_back(A(gr.name[i]).load(std::memory_order_relaxed));
    gs.members = static_cast<uint32_t>(LiveMembers(v, g).size());
    gs.holders = Holders([&](uint32_t i) -> shm::Slot& { return gr.members[i]; }, kMaxMembers);
    for (uint32_t s = 0; s < v.geo.shards; ++s) {
      GroupShard& c = v.cursor(g, s);
      GroupShardStats x;
      const WordPair p = LoadPair(&c.cursors);
      x.next = p.first;
      x.committed = p.second;
      x.lag_bytes = shards[s].tail > x.committed ? shards[s].tail - x.committed : 0;
      x.delivered = A(c.delivered).load(std::memory_order_relaxed);
      x.dropped = A(c.dropped).load(std::memory_order_relaxed);
      const uint64_t owner = A(c.owner).load(std::memory_order_acquire);
      x.owner = OwnerGone(v, g, owner) ? -1 : static_cast<int32_t>((owner & 0xFF) - 1);
      gs.delivered += x.delivered;
      gs.dropped += x.dropped;
      gs.lag_bytes += x.lag_bytes;
      gs.shards.push_back(x);
    }
    out.push_back(std::move(gs));
  }
  return out;
}

}  // namespace weft::bus::internal
