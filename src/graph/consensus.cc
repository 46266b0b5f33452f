// Raft-style leader election from watchdogs, a resistor and a capacitor
// (weft/graph/consensus.h). The rules are Raft's for elections: a higher term seen makes a
// member a follower of that term; a member votes once per term; a candidate with a quorum of
// votes leads; a leader's heartbeats keep the others from timing out; a stale leader hearing of
// a higher term steps down. Nothing is published while the member's lock is held: members in
// one process call each other's observers synchronously.
#include "weft/graph/consensus.h"

#include <atomic>
#include <optional>
#include <vector>

#include "weft/core/mutex.h"

namespace weft::graph {

namespace {

enum Kind : uint32_t { kRequestVote = 1, kVote = 2, kHeartbeat = 3 };

}  // namespace

struct Consensus::State {
  ConsensusOptions o;
  uint32_t quorum = 0;
  Route messages, leader, heard, timeout, tick, quiet, is_leader, beat, votes, counted;
  std::shared_ptr<Watchdog> election, ticker;
  std::shared_ptr<Resistor> gate;
  std::shared_ptr<Capacitor> tally;
  Subscription on_message, on_timeout, on_beat;
  std::atomic<bool> closed{false};

  mutable Mutex mu;  // the member's Raft state
  uint64_t term WEFT_GUARDED_BY(mu) = 0;
  uint32_t voted_for WEFT_GUARDED_BY(mu) = 0;
  uint32_t leader_id WEFT_GUARDED_BY(mu) = 0;
  RaftRole role WEFT_GUARDED_BY(mu) = RaftRole::kFollower;
  uint64_t version WEFT_GUARDED_BY(mu) = 0;  // bumped at every change of the above

  Mutex tally_mu;  // the capacitor: whose term its votes are, and from whom
  uint64_t tally_term WEFT_GUARDED_BY(tally_mu) = 0;
  uint64_t tally_voters WEFT_GUARDED_BY(tally_mu) = 0;  // a bit per member

  Mutex publish_mu;  // what the leader and is_leader routes last said
  uint64_t published_version WEFT_GUARDED_BY(publish_mu) = UINT64_MAX;
  int published_gate WEFT_GUARDED_BY(publish_mu) = -1;

  uint32_t me() const { return o.member; }

  RaftState Snapshot() const WEFT_REQUIRES(mu) { return {term, leader_id, role}; }

  // Publishes the member's state and gate if they changed since last published. Reads the
  // state at publishing time, so the routes end on the newest whatever the threads' order.
  void Sync() {
    MutexLock p(publish_mu);
    RaftState st;
    uint64_t ver;
    {
      MutexLock l(mu);
      st = Snapshot();
      ver = version;
    }
    const int g = st.role == RaftRole::kLeader ? 1 : 0;
    if (g != published_gate) {
      published_gate = g;
      is_leader.Publish(static_cast<uint8_t>(g)).IgnoreError();
    }
    if (ver != published_version) {
      published_version = ver;
      leader.Publish(st).IgnoreError();
    }
  }

  void Send(const RaftMessage& m) { messages.Publish(m).IgnoreError(); }

  // Stores a granted vote of `term` in the capacitor (once per voter; votes of an older term
  // are discharged first); the tally, or 0 for a vote of a term already past.
  size_t AddVote(uint64_t t, uint32_t voter) {
    MutexLock l(tally_mu);
    if (t < tally_term) return 0;
    if (t > tally_term) {
      tally->Discharge(tally->snapshot().depth);
      tally_term = t;
      tally_voters = 0;
    }
    const uint64_t bit = uint64_t{1} << (voter % 64);
    if ((tally_voters & bit) == 0) {
      tally_voters |= bit;
      votes.Publish(RaftMessage{t, voter, me(), kVote, 1}).IgnoreError();
    }
    return tally->snapshot().depth;
  }

  void MaybeLead(uint64_t t, size_t tally_depth) {
    if (tally_depth < quorum) return;
    bool won = false;
    {
      MutexLock l(mu);
      if (role == RaftRole::kCandidate && term == t) {
        role = RaftRole::kLeader;
        leader_id = me();
        ++version;
        won = true;
      }
    }
    if (!won) return;
    {
      MutexLock l(tally_mu);
      if (tally_term == t) tally->Discharge(tally->snapshot().depth);  // counted
    }
    Sync();
    Send(RaftMessage{t, me(), 0, kHeartbeat, 0});  // at once, not at the next tick
    heard.Publish(int64_t{0}).IgnoreError();
  }

  void OnTimeout() {
    if (closed.load()) return;
    uint64_t t;
    {
      MutexLock l(mu);
      if (role == RaftRole::kLeader) return;
      t = ++term;
      role = RaftRole::kCandidate;
      voted_for = me();
      leader_id = 0;
      ++version;
    }
    Sync();
    const size_t depth = AddVote(t, me());
    Send(RaftMessage{t, me(), 0, kRequestVote, 0});
    MaybeLead(t, depth);
  }

  void OnBeat() {
    if (closed.load()) return;
    uint64_t t;
    {
      MutexLock l(mu);
      if (role != RaftRole::kLeader) return;
      t = term;
    }
    Send(RaftMessage{t, me(), 0, kHeartbeat, 0});
    heard.Publish(int64_t{0}).IgnoreError();  // a leader does not time out on itself
  }

  void OnMessage(const RaftMessage& m) {
    if (closed.load() || m.from == me() || m.from == 0 || m.from > o.members || (m.to != 0 && m.to != me())) return;
    std::optional<RaftMessage> reply;
    bool reset = false, vote = false;
    {
      MutexLock l(mu);
      if (m.term > term) {
        term = m.term;
        role = RaftRole::kFollower;
        voted_for = 0;
        leader_id = 0;
        ++version;
      }
      switch (m.kind) {
        case kRequestVote: {
          const bool grant = m.term == term && role == RaftRole::kFollower && (voted_for == 0 || voted_for == m.from);
          if (grant) {
            voted_for = m.from;
            reset = true;
          }
          reply = RaftMessage{term, me(), m.from, kVote, grant ? 1u : 0u};
          break;
        }
        case kVote:
          vote = m.granted != 0 && m.term == term && role == RaftRole::kCandidate;
          break;
        case kHeartbeat:
          if (m.term == term && role != RaftRole::kLeader) {
            if (role != RaftRole::kFollower || leader_id != m.from) {
              role = RaftRole::kFollower;
              leader_id = m.from;
              ++version;
            }
            reset = true;
          } else if (m.term < term) {
            reply = RaftMessage{term, me(), m.from, kVote, 0};  // tells a stale leader the term
          }
          break;
        default:
          break;
      }
    }
    Sync();
    if (reset) heard.Publish(int64_t{0}).IgnoreError();
    if (reply) Send(*reply);
    if (vote) MaybeLead(m.term, AddVote(m.term, m.from));
  }
};

Result<std::shared_ptr<Consensus>> Consensus::Install(Graph& graph, ConsensusOptions o) {
  if (o.members == 0 || o.members > 64 || o.member == 0 || o.member > o.members) {
    return InvalidArgument("a consensus member is 1 to members (at most 64), not " + std::to_string(o.member) + " of " +
                           std::to_string(o.members));
  }
  if (o.heartbeat_ns <= 0 || o.election_timeout_ns <= o.heartbeat_ns) {
    return InvalidArgument("a consensus needs 0 < heartbeat < election timeout");
  }
  std::shared_ptr<Consensus> c(new Consensus());
  c->s_ = std::make_shared<State>();
  State& s = *c->s_;
  s.o = o;
  s.quorum = o.members / 2 + 1;
  Clock& clock = o.clock != nullptr ? *o.clock : Clock::System();
  const Schema message = Schema::Pod<RaftMessage>("raft.message.v1");
  const Schema tick = Schema::Pod<int64_t>("raft.tick.v1");
  const std::string m = "m" + std::to_string(o.member);
  auto own = [&](const char* what, const Schema& schema) {
    return graph.Declare(RouteName{.owner = o.cluster, .family = "consensus", .stream = what, .variant = m,
                                   .plane = "state", .layer = "internal"},
                         schema);
  };
  auto shared = graph.Declare(RouteName{.owner = o.cluster, .family = "consensus", .stream = "messages", .variant = "meta",
                                        .plane = "write", .layer = "logical"},
                              message);
  if (!shared.ok()) return shared.status();
  s.messages = *shared;
  struct Want {
    Route* route;
    const char* what;
    Schema schema;
  } wants[] = {{&s.leader, "leader", Schema::Pod<RaftState>("raft.state.v1")},
               {&s.heard, "heard", tick},
               {&s.timeout, "timeout", tick},
               {&s.tick, "tick", tick},
               {&s.quiet, "quiet", tick},
               {&s.is_leader, "is_leader", Schema::Pod<uint8_t>("raft.flag.v1")},
               {&s.beat, "beat", tick},
               {&s.votes, "votes", message},
               {&s.counted, "counted", message}};
  for (Want& w : wants) {
    auto r = own(w.what, w.schema);
    if (!r.ok()) return r.status();
    *w.route = *r;
  }
  const int64_t election_ns = o.election_timeout_ns + o.election_timeout_ns * (o.member - 1) / o.members;
  auto election = Watchdog::Create(s.heard, s.timeout, election_ns, clock, "election timeout " + m);
  if (!election.ok()) return election.status();
  s.election = *election;
  auto ticker = Watchdog::Create(s.quiet, s.tick, o.heartbeat_ns, clock, "heartbeat ticker " + m);
  if (!ticker.ok()) return ticker.status();
  s.ticker = *ticker;
  auto gate = Resistor::Create(s.tick, s.beat, {.gate = &s.is_leader}, "leader gate " + m);
  if (!gate.ok()) return gate.status();
  s.gate = *gate;
  auto tally = Capacitor::Create(s.votes, s.counted, {.capacity = o.members, .overflow = Overflow::kDropNewest}, "vote tally " + m);
  if (!tally.ok()) return tally.status();
  s.tally = *tally;

  std::weak_ptr<State> weak = c->s_;
  s.on_message = s.messages.Observe([weak](const SampleRef& v) {
    if (auto st = weak.lock()) st->OnMessage(v->as<RaftMessage>());
  });
  s.on_timeout = s.timeout.Observe([weak](const SampleRef&) {
    if (auto st = weak.lock()) st->OnTimeout();
  });
  s.on_beat = s.beat.Observe([weak](const SampleRef&) {
    if (auto st = weak.lock()) st->OnBeat();
  });
  s.Sync();  // a follower of term 0, gate closed
  return c;
}

Consensus::~Consensus() { Close(); }

void Consensus::Close() {
  if (s_ == nullptr || s_->closed.exchange(true)) return;
  s_->election->Close();
  s_->ticker->Close();
  s_->on_message.Cancel();
  s_->on_timeout.Cancel();
  s_->on_beat.Cancel();
  s_->gate->Close();
  s_->tally->Close();
}

Route Consensus::messages() const { return s_->messages; }
Route Consensus::leader() const { return s_->leader; }

RaftState Consensus::state() const {
  MutexLock l(s_->mu);
  return s_->Snapshot();
}

}  // namespace weft::graph
