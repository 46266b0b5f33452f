"""weft.graph retention from Python: the newest values kept in memory, replayed before live ones;
ephemeral routes refused; durable routes read back after their writer was SIGKILLed (values
decoded from the log's bytes into their dataclass), with a memory-only route as the control; a
log of another schema refused."""

import dataclasses
import signal
import subprocess
import textwrap

import pytest

import weft
from weft import graph


@dataclasses.dataclass
class Reading:
    value: float
    unit: str


def test_keep_last_history_and_replay():
    g = graph.Graph()
    r = graph.route("t", "ret", "n", int)
    g.configure_retention(r, graph.RetentionPolicy(keep_last=3))
    for i in range(5):
        g.publish(r, i)
    assert g.history(r) == [2, 3, 4]
    assert [e.seq for _, e in g.history(r, envelope=True)] == [3, 4, 5]
    seen = []
    g.observe(r, seen.append, replay=True)
    g.publish(r, 5)
    assert seen == [2, 3, 4, 5]
    with pytest.raises(weft.InvalidArgument):
        g.configure_retention(graph.route("t", "ret", "m", int), graph.RetentionPolicy())
    eph = graph.route("t", "ret", "e", int, ephemeral=True)
    with pytest.raises(weft.InvalidArgument, match="ephemeral"):
        g.configure_retention(eph, graph.RetentionPolicy(keep_last=1))


def test_a_replayed_observer_that_raises_is_not_left_observing():
    g = graph.Graph()
    r = graph.route("t", "ret", "n", int)
    g.configure_retention(r, graph.RetentionPolicy(keep_last=3))
    g.publish(r, 1)

    def bad(v):
        raise ValueError("no")

    with pytest.raises(ValueError):
        g.observe(r, bad, replay=True)
    g.publish(r, 2)  # nobody raises now
    assert g.flow_snapshot(r)["observers"] == 0


def test_durable_values_come_back_after_their_writer_is_killed(tmp_path, run_python):
    path = str(tmp_path / "readings")
    writer = run_python(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(__import__('os').path.dirname(__file__))!r})
        from test_graph_retention import Reading
        from weft import graph
        g = graph.Graph()
        r = graph.route("plant", "boiler", "reading", Reading)
        g.configure_retention(r, graph.RetentionPolicy(keep_last=10, durable={path!r}))
        for i in range(25):
            g.publish(r, Reading(float(i), "bar"), correlation=5)
        print("ready", flush=True)
        import time
        time.sleep(60)
    """), stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "ready"
        g = graph.Graph()
        r = graph.route("plant", "boiler", "reading", Reading)
        with pytest.raises(weft.Busy):  # while the writer lives, the log is its own
            g.configure_retention(r, graph.RetentionPolicy(keep_last=10, durable=path))
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    g = graph.Graph()
    r = graph.route("plant", "boiler", "reading", Reading)
    g.configure_retention(r, graph.RetentionPolicy(keep_last=10, durable=path))
    h = g.history(r, envelope=True)
    assert [v for v, _ in h] == [Reading(float(i), "bar") for i in range(15, 25)]
    assert h[-1][1].seq == 25 and h[-1][1].correlation == 5
    assert g.latest(r) == Reading(24.0, "bar")
    g.publish(r, Reading(99.0, "bar"))
    assert g.latest(r, envelope=True)[1].seq == 26
    # The control: a route kept in memory only has nothing of the dead process.
    mem = graph.Graph()
    mem.configure_retention(r, graph.RetentionPolicy(keep_last=10))
    assert mem.history(r) == [] and mem.latest(r) is None
    # Another schema for that log: refused.
    other = graph.Graph()
    with pytest.raises(weft.Busy):  # g still writes it
        other.configure_retention(graph.route("plant", "boiler", "reading", float), graph.RetentionPolicy(keep_last=1, durable=path))
    del g
    import gc
    gc.collect()


def test_a_log_of_another_schema_is_refused(tmp_path):
    path = str(tmp_path / "n")
    g = graph.Graph()
    g.configure_retention(graph.route("t", "ret", "n", int), graph.RetentionPolicy(keep_last=1, durable=path))
    g.publish(graph.route("t", "ret", "n", int), 1)
    del g
    import gc
    gc.collect()
    h = graph.Graph()
    with pytest.raises(weft.SchemaMismatch, match="another schema"):
        h.configure_retention(graph.route("t", "ret", "n", float), graph.RetentionPolicy(keep_last=1, durable=path))
