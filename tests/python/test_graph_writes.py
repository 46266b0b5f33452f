"""weft.graph writes: write bindings (request, desired, reported, effective, events) reconciled
under a ManualClock with a silent, a clamping and a flaky actuator; guards and coalescing;
coherence taints; lifecycles gated by health; control loops with the shared write stream; bad
input."""

import pytest

import weft
from weft import graph

MS = 1_000_000


def binding(g, clock, actuator="echo", **kw):
    kw.setdefault("retry", graph.RetryPolicy(max_attempts=3, ack_timeout=0.1, backoff=0.05))
    w = g.write_binding("lamp", "light", "level", int, clock=clock, **kw)
    state = {"drop": 0, "clamp": None, "silent": actuator == "silent", "applied": []}

    def act(v):
        if state["silent"]:
            return
        if state["drop"] > 0:
            state["drop"] -= 1
            return
        state["applied"].append(v)
        g.publish(w.reported, v if state["clamp"] is None else min(v, state["clamp"]))

    g.observe(w.desired, act)
    events = []
    g.observe(w.events, lambda e: events.append(e.kind))
    return w, state, events


def test_a_request_is_sent_reported_and_trusted():
    g, clock = graph.Graph(), graph.ManualClock()
    w, state, events = binding(g, clock)
    g.publish(w.request, 70)
    s = g.scheduler_snapshot(w.request)
    assert s["phase"] == "synced" and s["sends"] == 1 and s["acknowledged"] == 1 and s["coherent"]
    v, env = g.latest(w.effective, envelope=True)
    assert v == 70 and graph.taints_of(env) == set()
    assert events == ["requested", "sent", "acknowledged"]
    assert g.latest(w.desired, envelope=True)[1].causality == g.latest(w.request, envelope=True)[1].id
    assert g.scheduler_snapshot() == [s]
    audit = g.route_audit(w.request)
    assert audit["write"]["requests"] == 1 and any(e["kind"] == "reconciler" for e in audit["out"])


def test_a_silent_actuator_gets_retries_with_backoff_then_the_write_fails_and_is_incoherent():
    g, clock = graph.Graph(), graph.ManualClock()
    w, state, events = binding(g, clock, "silent", coherence_deadline=0.3)
    g.publish(w.request, 70)
    assert g.scheduler_snapshot(w.desired)["next_at_ns"] == 100 * MS
    clock.advance(100 * MS)
    s = g.scheduler_snapshot(w.desired)
    assert s["phase"] == "backoff" and s["last_failure"] == "no_report" and s["next_at_ns"] == 150 * MS
    clock.advance(350 * MS)
    s = g.scheduler_snapshot(w.desired)
    assert s["phase"] == "failed" and s["sends"] == 3 and s["retries"] == 2 and not s["coherent"]
    assert "incoherent" in events and "failed" in events
    # A report that disagrees is trusted as it is, tainted incoherent; a matching one is clean.
    g.publish(w.reported, 5)
    v, env = g.latest(w.effective, envelope=True)
    assert v == 5 and graph.taints_of(env) == {"incoherent"}
    g.publish(w.reported, 70)
    assert graph.taints_of(g.latest(w.effective, envelope=True)[1]) == set()
    assert g.scheduler_snapshot(w.effective)["phase"] == "synced"


def test_dropped_sends_are_retried_until_one_takes():
    g, clock = graph.Graph(), graph.ManualClock()
    w, state, events = binding(g, clock, retry=graph.RetryPolicy(max_attempts=5, ack_timeout=0.1, backoff=0.05),
                               coherence_deadline=10.0)
    state["drop"] = 2
    g.publish(w.request, 30)
    clock.advance(1000 * MS)
    s = w.snapshot()
    assert s["phase"] == "synced" and s["retries"] == 2 and s["failures"] == 0 and s["coherent"]
    assert state["applied"] == [30] and events.count("retry") == 2


def test_a_match_function_decides_what_agrees():
    g, clock = graph.Graph(), graph.ManualClock()
    w, state, _ = binding(g, clock, matches=lambda d, r: abs(d - r) <= 2)
    state["clamp"] = 78
    g.publish(w.request, 80)
    assert w.snapshot()["phase"] == "synced"
    # The control: without it, a clamped report is a mismatch.
    g2, clock2 = graph.Graph(), graph.ManualClock()
    w2, state2, _ = binding(g2, clock2)
    state2["clamp"] = 78
    g2.publish(w2.request, 80)
    assert w2.snapshot()["phase"] == "in_flight" and w2.snapshot()["last_failure"] == "mismatch"


def test_a_closed_guard_queues_and_coalesces():
    g, clock = graph.Graph(), graph.ManualClock()
    online = graph.route("lamp", "light", "online", bool)
    w, state, events = binding(g, clock, guard=online)
    g.publish(w.request, 10)
    g.publish(w.request, 20)
    s = w.snapshot()
    assert s["phase"] == "queued" and not s["guard_open"] and s["coalesced"] == 1
    assert g.latest(w.desired) is None
    g.publish(online, True)
    assert state["applied"] == [20] and w.snapshot()["phase"] == "synced"


def test_a_lifecycle_holds_intents_until_healthy():
    g, clock = graph.Graph(), graph.ManualClock()
    lc = g.lifecycle("pump", "drive", intent_schema=str, clock=clock)
    g.observe(lc.desired, lambda v: g.publish(lc.reported, v))
    kinds = []
    g.observe(lc.events, lambda e: kinds.append(e.kind))
    assert lc.intent.name == "pump/drive/lifecycle/request/write/logical"
    assert lc.health.name == "pump/drive/lifecycle/health/read/logical"
    g.publish(lc.intent, "start")
    assert g.scheduler_snapshot(lc.intent)["phase"] == "queued"
    g.publish(lc.health, True)
    assert g.latest(lc.effective) == "start"
    assert kinds == ["requested", "queued", "sent", "acknowledged"]
    assert g.scheduler_snapshot(lc.health)["phase"] == "synced"


def test_a_control_loop_reads_and_writes_the_next_epoch():
    g = graph.Graph()
    measured = graph.route("ctl", "pid", "measured", float)
    command = graph.route("ctl", "pid", "command", float)
    step = graph.ReadThenWriteNextEpochStep(measured, command, lambda v: None if v is None else v * 2, name="gain",
                                            loop="pid")
    with pytest.raises(weft.InvalidArgument):
        step.write
    g.install(step)
    seen = []
    step.write.observe(seen.append)  # the shared write stream
    also = []
    g.observe(command, also.append)
    assert g.run_control_loop("pid") == 1 and seen == []  # nothing read yet: no write
    g.publish(measured, 10.0)
    assert g.run_control_loop("pid") == 2
    g.publish(measured, 1.5)
    assert g.run_control_loop("pid") == 3
    assert seen == also == [20.0, 3.0]
    assert g.latest(command, envelope=True)[1].causality == g.latest(measured, envelope=True)[1].id
    with_epoch = graph.ReadThenWriteNextEpochStep(measured, command, lambda v, e: float(e), name="epoch", loop="pid",
                                                  fn_takes_epoch=True)
    g.install(with_epoch)
    assert g.run_control_loop("pid") == 4 and seen[-2:] == [3.0, 4.0]
    with pytest.raises(weft.InvalidArgument):
        g.install(graph.ReadThenWriteNextEpochStep(measured, command, lambda v: v, name="gain", loop="pid"))
    with pytest.raises(weft.NotFound):
        g.run_control_loop("nope")


def test_a_step_that_raises_fails_its_epoch():
    g = graph.Graph()
    a = graph.route("ctl", "x", "a", int)
    b = graph.route("ctl", "x", "b", int)
    g.install(graph.ReadThenWriteNextEpochStep(a, b, lambda v: 1 // 0, name="boom"))
    g.publish(a, 1)
    with pytest.raises(weft.Error):
        g.run_control_loop()


def test_bad_input_is_refused():
    g = graph.Graph()
    with pytest.raises(weft.InvalidArgument):
        g.write_binding("lamp", "light", "level", int, retry=graph.RetryPolicy(ack_timeout=0))
    with pytest.raises(weft.InvalidArgument):
        g.write_binding("lamp", "light", "level", int, retry=graph.RetryPolicy(multiplier=0.5))
    with pytest.raises(weft.InvalidArgument):
        g.write_binding("la mp", "light", "level", int)
    g.write_binding("lamp", "light", "level", int)
    with pytest.raises(weft.SchemaMismatch):
        g.write_binding("lamp", "light", "level", str)
    with pytest.raises(weft.NotFound):
        g.scheduler_snapshot(graph.route("no", "such", "route", int))
