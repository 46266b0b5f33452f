"""weft.graph's stores: FileStore keyspaces (ordered bytes, prefixes, atomic batches, reopen),
EventLog (typed appends, committed readers), SnapshotStore, and Memory across a process killed
with SIGKILL; schema mismatches and a second writer refused clearly."""

import dataclasses
import os
import signal
import subprocess
import textwrap

import pytest

import weft
from weft import graph


@dataclasses.dataclass
class Pose:
    x: float
    y: float
    frame: str


def test_keyspaces_are_ordered_bytes_with_atomic_batches(tmp_path):
    store = graph.FileStore(tmp_path / "s", fsync=False)
    plant = store.prefix(b"plant/")
    plant.set(b"b", b"2")
    plant.set("a", "1")  # str keys and values are UTF-8
    plant.set(b"\xff", b"top")
    plant.set(b"\x00", b"bottom")
    store.prefix(b"plant0").set(b"x", b"outside")
    assert plant.range() == [(b"\x00", b"bottom"), (b"a", b"1"), (b"b", b"2"), (b"\xff", b"top")]
    assert plant.range(b"a", b"b") == [(b"a", b"1")]
    assert plant.range(limit=1) == [(b"\x00", b"bottom")]
    plant.commit([("set", b"c", b"3"), ("clear", b"a"), ("clear_range", b"\x00", b"b")])
    assert plant.range() == [(b"b", b"2"), (b"c", b"3"), (b"\xff", b"top")]
    with pytest.raises(ValueError):
        plant.commit([("set", b"d", b"4"), ("bogus", b"x")])
    assert plant.get(b"d") is None  # nothing of a refused batch
    assert plant.prefix(b"b").key_prefix == b"plant/b"
    with pytest.raises(weft.Busy):
        graph.FileStore(tmp_path / "s")
    del plant, store
    import gc
    gc.collect()
    again = graph.FileStore(tmp_path / "s")
    assert again.prefix(b"plant/").range() == [(b"b", b"2"), (b"c", b"3"), (b"\xff", b"top")]
    assert again.prefix(b"plant0").get(b"x") == b"outside"
    assert again.stats()["keys"] == 4


def test_event_log_typed_appends_and_committed_readers(tmp_path):
    store = graph.FileStore(tmp_path / "s", fsync=False)
    ks = store.prefix(b"robot/")
    log = graph.EventLog("poses", ks, Pose)
    for i in range(5):
        assert log.append(Pose(float(i), -float(i), "map")) == i
    got = log.read(2, 2)
    assert [e.seq for e in got] == [2, 3] and got[0].value == Pose(2.0, -2.0, "map") and got[0].timestamp_ns > 0
    log.commit("planner", 3)
    assert log.committed("planner") == 3 and log.committed("other") == 0
    assert [e.value.x for e in log.read(log.committed("planner"))] == [3.0, 4.0]
    with pytest.raises(weft.SchemaMismatch, match="poses"):
        graph.EventLog("poses", ks, float)
    with pytest.raises(weft.InvalidArgument):
        graph.EventLog("bad name", ks, float)
    snap = graph.SnapshotStore("setpoint", ks, float)
    assert snap.get() is None
    snap.set(21.5)
    assert snap.get() == 21.5
    with pytest.raises(weft.SchemaMismatch):
        graph.SnapshotStore("setpoint", ks, str)


def test_memory_resumes_a_route_after_sigkill(tmp_path, run_python):
    path = str(tmp_path / "memory")
    child = run_python(textwrap.dedent(f"""
        import os, sys, time
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        from test_graph_stores import Pose
        from weft import graph
        g = graph.Graph()
        r = graph.route("robot", "nav", "pose", Pose)
        mem = graph.Memory({path!r})
        mem.remember(g, r)
        for i in range(20):
            g.publish(r, Pose(float(i), 0.0, "map"), correlation=5)
        print("done", mem.write_errors, flush=True)
        time.sleep(60)
    """), stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "done 0"
        with pytest.raises(weft.Busy):  # the control: while it lives, the memory is its
            graph.Memory(path)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    g = graph.Graph()
    r = graph.route("robot", "nav", "pose", Pose)
    mem = graph.Memory(path)
    assert g.latest(r) is None
    assert mem.resume(g, r) is True
    assert g.latest(r) == Pose(19.0, 0.0, "map")
    assert mem.resume(g, graph.route("robot", "nav", "other", Pose)) is False
    with pytest.raises(weft.SchemaMismatch):
        mem.resume(graph.Graph(), graph.route("robot", "nav", "pose", float))
