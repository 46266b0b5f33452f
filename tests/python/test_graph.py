"""weft.graph in one process: routes and schemas (names refused when malformed, a route's one
schema, values of the wrong type refused, every schema's bytes round trip and corrupted bytes
refused), publish/latest/observe with envelopes (trace, causality, correlation), observer errors,
subscriptions that end, iteration (blocking, async, RxPY), filter, map and pipe."""

import asyncio
import dataclasses
import threading

import numpy as np
import pytest

import weft
from weft import graph


@dataclasses.dataclass
class Reading:
    value: float
    unit: str
    count: int


@dataclasses.dataclass
class Frame:
    meta: Reading
    pixels: np.ndarray
    raw: bytes
    ok: bool


def test_route_names_and_one_schema_per_route():
    g = graph.Graph()
    temp = graph.route("sensor", "env", "temp", float)
    assert temp.name == "sensor/env/temp/meta/read/logical"
    assert graph.TypedRoute(graph.OwnerName("sensor"), graph.StreamFamily("env"), graph.StreamName("temp"), float) == temp
    g.publish(temp, 1.0)
    with pytest.raises(weft.SchemaMismatch, match="carries 'f64', not 'i64'"):
        g.publish(graph.route("sensor", "env", "temp", int), 1)
    for bad in [("sen sor", "env", "temp"), ("sensor", "", "temp"), ("sensor", "env", "a/b"), ("x" * 65, "env", "t")]:
        with pytest.raises(weft.InvalidArgument):
            g.publish(graph.route(*bad, float), 1.0)
    with pytest.raises(weft.InvalidArgument, match="no schema"):
        graph.route("a", "b", "c", list)
    assert [name for name, _, _ in g.catalog()] == ["sensor/env/temp/meta/read/logical"]


def test_values_of_the_wrong_type_are_refused_before_anyone_sees_them():
    g = graph.Graph()
    seen = []
    temp = graph.route("sensor", "env", "temp", float)
    g.observe(temp, seen.append)
    g.publish(temp, 3)  # an int is a number: taken
    with pytest.raises(weft.InvalidArgument, match="a value of type str is not one of its values"):
        g.publish(temp, "hot")
    arr = graph.route("cam", "vision", "depth", graph.Schema.ndarray("<f4", (None, 4)))
    g.publish(arr, np.zeros((2, 4), dtype="<f4"))
    with pytest.raises(weft.InvalidArgument, match="<f8"):
        g.publish(arr, np.zeros((2, 4)))
    with pytest.raises(weft.InvalidArgument, match="shape"):
        g.publish(arr, np.zeros((2, 3), dtype="<f4"))
    frames = graph.route("cam", "vision", "frame", Frame)
    with pytest.raises(weft.InvalidArgument, match="Reading.count"):
        g.publish(frames, Frame(Reading(1.0, "m", "one"), np.zeros(2), b"", True))
    assert seen == [3]


@pytest.mark.parametrize("tp, value", [
    (int, -(2**63)), (float, 2.5), (str, "héllo"), (bytes, b"\x00\xff"), (bool, True),
    (Reading, Reading(1.5, "m", 7)),
    (Frame, Frame(Reading(2.0, "px", 1), np.arange(6.0).reshape(2, 3), b"raw", False)),
])
def test_every_schema_round_trips_its_bytes_and_refuses_corrupted_ones(tp, value):
    s = graph.Schema.of(tp)
    b = s.encode(value)
    back = s.decode(b) if s.decode is not None else b
    if isinstance(value, Frame):
        assert back.meta == value.meta and back.raw == value.raw and back.ok == value.ok
        assert np.array_equal(back.pixels, value.pixels)
    else:
        assert back == value
    if tp in (Reading, Frame):
        for broken in (b[:-1], b + b"\x00", b[:3]):
            with pytest.raises(weft.Corrupt):
                s.decode(broken)
    if tp is str:
        with pytest.raises(weft.Corrupt):
            s.decode(b"\xff\xfe")


def test_a_pod_schema_speaks_a_cpp_struct():
    pose = graph.Schema.pod("pose.v1", "<3d")
    assert pose.text == "pod pose.v1 size 24 align 8"  # what graph::Schema::Pod<Pose>("pose.v1") says
    assert pose.decode(pose.encode((1.0, 2.0, 3.0))) == (1.0, 2.0, 3.0)
    with pytest.raises(weft.Corrupt):
        pose.decode(b"\x00" * 23)


def test_publish_latest_observe_and_envelopes():
    g = graph.Graph()
    temp = graph.route("sensor", "env", "temp", float)
    alarm = graph.route("sensor", "env", "alarm", str)
    assert g.latest(temp) is None
    seen = []
    with g.observe(temp, lambda v, e: seen.append((v, e)), envelope=True) as sub:
        g.publish(temp, 20.0, correlation=42, producer=3)
        g.publish(temp, 21.0)
        assert sub.active
    g.publish(temp, 22.0)  # after the subscription ended
    assert [v for v, _ in seen] == [20.0, 21.0]
    e0, e1 = seen[0][1], seen[1][1]
    assert (e0.seq, e1.seq) == (1, 2) and e0.correlation == 42 and e0.producer == 3
    assert e0.id != e1.id and e0.trace == e0.id and e0.causality == 0 and e0.event_ns == e0.ingest_ns > 0
    value, env = g.latest(temp, envelope=True)
    assert value == 22.0 and env.seq == 3
    # A value made from another: its trace, causality and correlation.
    g.publish(alarm, "hot", cause=e0, event_ns=5)
    _, a = g.latest(alarm, envelope=True)
    assert a.trace == e0.trace and a.causality == e0.id and a.correlation == 42 and a.event_ns == 5
    with pytest.raises(TypeError):
        g.publish(alarm, "x", cause=(1, 2))


def test_the_same_object_reaches_python_observers():
    g = graph.Graph()
    frames = graph.route("cam", "vision", "frame", graph.Schema.ndarray())
    a = np.arange(10)
    seen = []
    g.observe(frames, seen.append)
    g.publish(frames, a)
    assert seen[0] is a and g.latest(frames) is a


def test_an_observer_error_is_raised_from_publish_after_every_observer_ran():
    g = graph.Graph()
    r = graph.route("a", "b", "c", int)
    seen = []

    def bad(v):
        raise ValueError(f"no {v}")

    g.observe(r, bad)
    g.observe(r, seen.append)
    with pytest.raises(ValueError, match="no 1"):
        g.publish(r, 1)
    assert seen == [1] and g.latest(r) == 1
    # A publish inside an observer, after an earlier observer failed: the inner publish
    # succeeds (the outer error is not its own), the outer raises the first error.
    other = graph.route("a", "b", "d", int)
    inner = []
    g.observe(other, inner.append)
    g.observe(r, lambda v: g.publish(other, v * 10))
    with pytest.raises(ValueError, match="no 2"):
        g.publish(r, 2)
    assert inner == [20]


def test_cancel_waits_for_a_call_running_on_another_thread():
    g = graph.Graph()
    r = graph.route("a", "b", "c", int)
    inside, release, finished = threading.Event(), threading.Event(), []

    def slow(v):
        inside.set()
        release.wait(10)
        finished.append(v)

    sub = g.observe(r, slow)
    t = threading.Thread(target=g.publish, args=(r, 1))
    t.start()
    assert inside.wait(10)
    threading.Timer(0.05, release.set).start()
    sub.cancel()  # releases the GIL while it waits
    assert finished == [1]
    t.join()


def test_iterate_blocking_async_and_rx():
    g = graph.Graph()
    r = graph.route("a", "b", "c", int)
    with g.observe(r, capacity=3, timeout=5) as it:
        for i in range(5):
            g.publish(r, i)
        assert [next(it), next(it), next(it)] == [2, 3, 4] and it.dropped == 2
    with pytest.raises(weft.Timeout):
        next(g.observe(r, timeout=0.01))

    async def consume():
        obs = g.observe(r, timeout=5)
        loop = asyncio.get_running_loop()
        loop.call_later(0.01, lambda: threading.Thread(target=lambda: [g.publish(r, i) for i in (7, 8)]).start())
        out = []
        async for v in obs:
            out.append(v)
            if len(out) == 2:
                break
        obs.close()
        return out

    assert asyncio.run(consume()) == [7, 8]
    import rx
    from rx import operators as ops
    got = []
    d = g.observe(r).rx().pipe(ops.map(lambda v: v * 10)).subscribe(got.append)
    g.publish(r, 1)
    d.dispose()
    g.publish(r, 2)
    assert got == [10]


def test_filter_map_and_pipe():
    g = graph.Graph()
    raw = graph.route("sensor", "env", "raw", float, layer="raw")
    hot = graph.route("sensor", "env", "hot", float)
    label = graph.route("sensor", "env", "label", str)
    seen = []
    g.pipe(g.filter(graph.source(raw), lambda v: v > 30).map(lambda v: v + 0.5), graph.sink(hot))
    g.observe(hot, seen.append)
    for v in (10.0, 35.0, 20.0, 40.0):
        g.publish(raw, v)
    assert seen == [35.5, 40.5] and g.latest(hot) == 40.5
    # A value the destination's schema refuses is the publisher's error.
    g.pipe(g.map(hot, lambda v: v), label)
    with pytest.raises(weft.InvalidArgument, match="float"):
        g.publish(raw, 50.0)
    import rx
    g.pipe(rx.of("a", "b"), label)
    assert g.latest(label) == "b"
    with pytest.raises(weft.InvalidArgument, match="pipe takes"):
        g.pipe(42, label)


def test_pipe_from_a_route_keeps_the_trace():
    g = graph.Graph()
    a = graph.route("x", "y", "a", int)
    b = graph.route("x", "y", "b", int)
    c = graph.route("x", "y", "c", int)
    g.pipe(a, b)
    g.pipe(b, c)
    g.publish(a, 5, correlation=9)
    _, ea = g.latest(a, envelope=True)
    _, eb = g.latest(b, envelope=True)
    _, ec = g.latest(c, envelope=True)
    assert eb.causality == ea.id and ec.causality == eb.id
    assert ea.trace == eb.trace == ec.trace and ec.correlation == 9
