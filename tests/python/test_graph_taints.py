"""weft.graph taints and repairs: a value marked nondeterministic passes its taint on through
every operator (pipes with filter and map, capacitors, resistors, count and time windows, lookup
and interval joins) and across processes; an untainted value stays clean (the control); repairs
keep their notes; the taint query finds the retained tainted values; bad taints are refused."""

import dataclasses
import os
import random

import pytest

import weft
from weft import graph


@dataclasses.dataclass
class Pair:
    a: float
    b: float


def test_a_taint_passes_through_every_operator():
    g = graph.Graph()
    raw = graph.route("lab", "rng", "raw", float)
    entropy = graph.route("lab", "rng", "entropy", float, ephemeral=True)
    g.mark(raw, entropy, taint="nondeterministic")
    clean = graph.route("lab", "rng", "clean", float)

    def tail(name):
        return graph.route("lab", "rng", name, float)

    piped, capped, resisted = tail("piped"), tail("capped"), tail("resisted")
    g.pipe(g.filter(entropy, lambda v: v >= 0).map(lambda v: v * 2), piped)
    g.capacitor(source=piped, sink=capped, capacity=1, immediate=True, demand=graph.route("lab", "rng", "tick", int))
    g.resistor(source=capped, sink=resisted)
    w = g.window(resisted, size=2)
    wt = g.window_by_time(resisted, width=1.0, watermark=graph.route("lab", "rng", "wm", int))
    joined = graph.route("lab", "rng", "joined", Pair)
    g.lookup_join(clean, resisted, key_left=lambda v: 0, key_right=lambda v: 0, combine=lambda l, r: Pair(l, r or 0.0),
                  output=joined)
    seen = {}
    for r in (entropy, piped, capped, resisted, w.output, wt.output, joined):
        g.observe(r, lambda v, e, name=r.name: seen.__setitem__(name, graph.taints_of(e)), envelope=True)
    g.observe(clean, lambda v, e: seen.__setitem__("clean", graph.taints_of(e)), envelope=True)
    g.publish(graph.route("lab", "rng", "tick", int), 1)  # demand: the next value passes at once
    g.publish(raw, random.random(), event_ns=10)
    g.publish(graph.route("lab", "rng", "tick", int), 1)
    g.publish(raw, random.random(), event_ns=20)
    g.publish(graph.route("lab", "rng", "wm", int), 2_000_000_000)
    g.publish(clean, 1.0)  # untainted itself: the join's output takes the state's taint
    for r in (entropy, piped, capped, resisted, w.output, wt.output, joined):
        assert seen.get(r.name) == {"nondeterministic"}, r.name
    assert seen["clean"] == set()  # the control


def test_interval_join_output_carries_both_sides_taints():
    g = graph.Graph()
    left, right = graph.route("j", "x", "left", float), graph.route("j", "x", "right", float)
    out = graph.route("j", "x", "out", Pair)
    g.interval_join(left, right, within=1e-6, key_left=lambda v: 0, key_right=lambda v: 0, combine=Pair, output=out)
    got = []
    g.observe(out, lambda v, e: got.append(graph.taints_of(e)), envelope=True)
    g.publish(left, 1.0, event_ns=100, taints="sensitive")
    g.publish(right, 2.0, event_ns=200, taints={"nondeterministic"})
    assert got == [{"sensitive", "nondeterministic"}]


def test_repairs_keep_their_notes_and_the_taint_query_finds_retained_values():
    g = graph.Graph()
    raw, fixed = graph.route("plant", "boiler", "raw", float), graph.route("plant", "boiler", "fixed", float)
    g.configure_retention(fixed, graph.RetentionPolicy(keep_last=10))
    g.repair(raw, fixed, fix=lambda v: max(v, 0.0), note="negative readings clamped to 0")
    ids = []
    g.observe(raw, lambda v, e: ids.append(e.id), envelope=True)
    g.publish(raw, -3.0)
    g.publish(raw, 5.0)
    assert g.latest(fixed) == 5.0
    assert g.repair_notes(fixed) == [(ids[0], "negative readings clamped to 0"), (ids[1], "negative readings clamped to 0")]
    repaired = g.tainted(fixed, "repaired")
    assert [e.causality for e in repaired] == ids
    assert g.tainted(fixed, "sensitive") == []
    with pytest.raises(weft.InvalidArgument):
        g.publish(raw, 1.0, taints="cursed")
    with pytest.raises(ValueError):
        g.publish(raw, 1.0, taints=64)


def test_taints_cross_processes(run_python):
    import subprocess
    import textwrap
    import time
    topic = f"pytest.taints.{os.getpid()}"
    g = graph.Graph()
    r = graph.route("lab", "rng", "shared", float)
    place = g.place(r, topic=topic)
    got = []
    g.observe(r, lambda v, e: got.append(graph.taints_of(e)), envelope=True)
    child = run_python(textwrap.dedent(f"""
        import sys
        from weft import graph
        g = graph.Graph()
        r = graph.route("lab", "rng", "shared", float)
        p = g.place(r, topic={topic!r})
        print("ready", flush=True)
        sys.stdin.readline()
        g.publish(r, 0.5, taints="nondeterministic")
        g.publish(r, 0.25)
        sys.stdin.readline()
    """), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        child.stdin.write("go\n")
        child.stdin.flush()
        deadline = time.monotonic() + 10
        while len(got) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert got == [{"nondeterministic"}, set()]
    finally:
        child.stdin.write("done\n")
        child.stdin.flush()
        child.wait()
        place.close()
        weft.unlink_topic(topic)


def test_taints_pass_through_writes_sensors_and_control_loops():
    g = graph.Graph()
    clock = graph.ManualClock()
    w = g.write_binding("lab", "rig", "setpoint", float, clock=clock)
    g.observe(w.desired, lambda v: g.publish(w.reported, v))
    g.publish(w.request, 0.5, taints="sensitive")
    assert graph.taints_of(g.latest(w.desired, envelope=True)[1]) == {"sensitive"}
    assert graph.taints_of(g.latest(w.effective, envelope=True)[1]) == set()  # the device's report is its own

    t = g.scalar_sensor("lab", "rig", "temp", smoothing=0.5)
    g.publish(t.raw, 1.0, taints="repaired")
    assert graph.taints_of(g.latest(t.logical, envelope=True)[1]) == {"repaired"}
    t.read(2.0)
    assert graph.taints_of(g.latest(t.logical, envelope=True)[1]) == set()  # the control

    out = graph.route("lab", "rig", "next", float)
    g.install(graph.ReadThenWriteNextEpochStep(t.logical, out, lambda v: v + 1, name="next", loop="taints"))
    g.publish(t.raw, 3.0, taints="nondeterministic")
    g.run_control_loop("taints")
    assert graph.taints_of(g.latest(out, envelope=True)[1]) == {"nondeterministic"}
