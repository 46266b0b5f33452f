"""weft.graph across processes on one host: a route placed on shm in two processes; the other
process's dataclass values arrive decoded with their envelopes, and this process's reach it."""

import dataclasses
import os
import subprocess
import textwrap
import time

import pytest

import weft
from weft import graph


@dataclasses.dataclass
class Reading:
    value: float
    unit: str


def test_values_cross_processes_both_ways(run_python):
    topic = f"pytest.graph.{os.getpid()}"
    g = graph.Graph()
    r = graph.route("plant", "boiler", "reading", Reading)
    place = g.place(r, topic=topic)
    seen = []
    g.observe(r, lambda v, e: seen.append((v, e)), envelope=True)
    child = run_python(textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        from test_graph_placement import Reading
        from weft import graph
        g = graph.Graph()
        r = graph.route("plant", "boiler", "reading", Reading)
        got = []
        g.observe(r, lambda v: got.append(v) if v.value == 42.0 else None)  # ours come back to us too
        g.place(r, topic={topic!r})
        print("ready", flush=True)
        sys.stdin.readline()
        for i in range(10):
            g.publish(r, Reading(float(i), "bar"), correlation=3)
        deadline = time.monotonic() + 10
        while not got and time.monotonic() < deadline:
            time.sleep(0.01)
        print(repr(got), flush=True)
    """), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        child.stdin.write("go\n")
        child.stdin.flush()
        deadline = time.monotonic() + 10
        while len(seen) < 10 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [v for v, _ in seen] == [Reading(float(i), "bar") for i in range(10)]
        assert seen[0][1].correlation == 3 and seen[0][1].producer == 0
        g.publish(r, Reading(42.0, "bar"))
        assert child.stdout.readline().strip() == "[Reading(value=42.0, unit='bar')]"
        assert place.stats()["received"] == 10 and place.stats()["sent"] == 1
    finally:
        child.kill()
        child.wait()
        place.close()
        import weft
        weft.unlink_topic(topic)


def test_a_route_crosses_processes_over_a_real_nats_server(run_python, nats_server):
    url = f"nats://127.0.0.1:{nats_server}/pytest"
    g = graph.Graph()
    r = graph.route("plant", "boiler", "reading", Reading)
    place = g.place(r, url)
    assert place.where == "weft.graph.pytest.plant.boiler.reading.meta.read.logical"
    seen = []
    g.observe(r, lambda v, e: seen.append((v, e)), envelope=True)
    child = run_python(textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        from test_graph_placement import Reading
        from weft import graph
        g = graph.Graph()
        r = graph.route("plant", "boiler", "reading", Reading)
        got = []
        g.observe(r, lambda v: got.append(v))
        p = g.place(r, {url!r})
        print("ready", flush=True)
        sys.stdin.readline()
        for i in range(10):
            g.publish(r, Reading(float(i), "bar"), correlation=3)
        deadline = time.monotonic() + 10
        while len(got) < 11 and time.monotonic() < deadline:
            time.sleep(0.01)
        print(repr(got[10:]), p.stats()["received"], flush=True)
    """), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        child.stdin.write("go\n")
        child.stdin.flush()
        deadline = time.monotonic() + 10
        while len(seen) < 10 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [v for v, _ in seen] == [Reading(float(i), "bar") for i in range(10)]
        assert seen[0][1].correlation == 3
        g.publish(r, Reading(42.0, "bar"))
        # The child saw its own ten once each (no echo) and ours.
        assert child.stdout.readline().strip() == "[Reading(value=42.0, unit='bar')] 1"
        assert place.stats()["received"] == 10 and place.stats()["sent"] == 1
    finally:
        child.kill()
        child.wait()
        place.close()


def test_a_placement_is_shm_or_nats():
    g = graph.Graph()
    r = graph.route("plant", "boiler", "reading", Reading)
    with pytest.raises(weft.InvalidArgument, match="nats://"):
        g.place(r, "mqtt://127.0.0.1:1883")
    with pytest.raises(weft.Unavailable):
        g.place(r, "nats://127.0.0.1:1/x")


def test_large_arrays_from_another_process_are_read_in_place(run_python):
    import numpy as np
    topic = f"pytest.graph.frames.{os.getpid()}"
    g = graph.Graph()
    frames = graph.route("cam", "front", "frame", graph.Schema.ndarray("<f4", (256, 256)))
    place = g.place(frames, topic=topic)
    got = []
    g.observe(frames, got.append)
    child = run_python(textwrap.dedent(f"""
        import sys
        import numpy as np
        from weft import graph
        g = graph.Graph()
        frames = graph.route("cam", "front", "frame", graph.Schema.ndarray("<f4", (256, 256)))
        p = g.place(frames, topic={topic!r})
        print("ready", flush=True)
        sys.stdin.readline()
        for i in range(3):
            g.publish(frames, np.full((256, 256), float(i), dtype="<f4"))
        sys.stdin.readline()
    """), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        child.stdin.write("go\n")
        child.stdin.flush()
        deadline = time.monotonic() + 10
        while len(got) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [float(a[17, 42]) for a in got] == [0.0, 1.0, 2.0]
        assert got[0].shape == (256, 256) and not got[0].flags.writeable  # a view of the block, read-only
        assert not got[0].flags.owndata
        assert place.stats()["in_place"] == 3
        del got[:]
        assert np.array_equal(g.latest(frames), np.full((256, 256), 2.0, dtype="<f4"))
    finally:
        child.stdin.write("done\n")
        child.stdin.flush()
        child.wait()
        place.close()
        weft.unlink_topic(topic)
