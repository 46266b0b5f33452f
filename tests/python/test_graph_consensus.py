"""weft.graph.Consensus: three members on a ManualClock elect the member that times out first,
keep it while it beats, and elect another once it is closed; never two leaders in one term.
Its routes are ordinary routes: observed from Python, placed like any other."""

import os

from weft import graph


def test_three_members_elect_keep_and_replace_a_leader():
    clock = graph.ManualClock()
    g = graph.Graph()
    members = [graph.Consensus.install(g, member=i, members=3, heartbeat=0.02, election_timeout=0.3, clock=clock)
               for i in (1, 2, 3)]
    claims = {}
    for c in members:
        g.observe(c.leader, lambda s: claims.setdefault(s[0], set()).add(s[1]) if s[2] == 2 else None)

    def advance(seconds):
        for _ in range(int(seconds / 0.005)):
            clock.advance(5_000_000)

    advance(0.29)
    assert members[0].state().term == 0
    advance(0.02)
    assert [c.state() for c in members] == [graph.RaftState(1, 1, "leader"), graph.RaftState(1, 1, "follower"),
                                            graph.RaftState(1, 1, "follower")]
    advance(2.0)  # the control: heartbeats hold the others back
    assert {c.state().term for c in members} == {1}
    members[0].close()
    advance(0.5)
    assert members[1].state() == graph.RaftState(2, 2, "leader")
    assert members[2].state() == graph.RaftState(2, 2, "follower")
    assert claims == {1: {1}, 2: {2}}
    assert g.latest(members[2].leader) == (2, 2, 0)
    edges = {e.get("name") for e in g.topology()["edges"]}
    assert {"vote tally m2", "leader gate m2", "election timeout m3", "heartbeat ticker m3"} <= edges
    assert "vote tally m1" not in edges  # a closed member's parts leave the topology


def test_its_messages_route_is_placed_like_any_other():
    g = graph.Graph()
    c = graph.Consensus.install(g, cluster=f"py{os.getpid()}", member=1, members=3)
    p = g.place(c.messages, topic=f"pytest.raft.{os.getpid()}")
    try:
        assert p.where == f"pytest.raft.{os.getpid()}"
        assert c.state().role in ("follower", "candidate")
    finally:
        c.close()
        p.close()
        import weft
        weft.unlink_topic(f"pytest.raft.{os.getpid()}")
