"""weft.graph windows: event-time windows per partition against a reference model under random
order and watermarks; late values dropped, sided or updating; a silent partition holding the
watermark until it goes idle on a ManualClock (the control: without idleness nothing closes);
aggregates (builtin and a function of the values); count windows; watermarks going backwards
refused."""

import dataclasses
import random
import statistics

import pytest

import weft
from weft import graph


@dataclasses.dataclass
class Reading:
    sensor: str
    value: float


def _routes(name):
    return graph.route("plant", "env", name, Reading), graph.route("plant", "env", name + "_wm", int)


def test_time_windows_match_a_reference_model():
    rng = random.Random(5)
    g = graph.Graph()
    src, wm = _routes("model")
    w = g.window_by_time(src, width=1e-6, watermark=wm, partition_by=lambda r: r.sensor, value=lambda r: r.value)
    got = {}
    g.observe(w.output, lambda r: got.__setitem__((r.partition, r.start_ns), (r.count, round(r.sum, 6))))
    model, late, clock, mark = {}, 0, 1000, None
    for _ in range(3000):
        clock += rng.randrange(5)
        if rng.randrange(40) == 0:
            nxt = clock - rng.randrange(1500)
            if mark is None or nxt >= mark:
                mark = nxt
                g.publish(wm, mark)
            continue
        sensor, t, v = rng.choice("abcde"), clock + 1 - rng.randrange(1000), float(rng.randrange(100))
        start = t // 1000 * 1000
        if mark is not None and start + 1000 <= mark:
            late += 1
        else:
            c, s = model.get((sensor, start), (0, 0.0))
            model[(sensor, start)] = (c + 1, s + v)
        g.publish(src, Reading(sensor, v), event_ns=t)
    w.flush()
    assert got == {k: (c, round(s, 6)) for k, (c, s) in model.items()}
    assert w.snapshot()["late_dropped"] == late


def test_late_values_go_to_a_side_route_or_update_their_window():
    g = graph.Graph()
    src, wm = _routes("late")
    late_route = graph.route("plant", "env", "late_values", graph._windows.LATE_VALUE)
    w = g.window_by_time(src, width=1e-6, watermark=wm, partition_by=lambda r: r.sensor, value=lambda r: r.value,
                         late="side", late_route=late_route)
    lates = []
    g.observe(late_route, lates.append)
    g.publish(src, Reading("a", 1.0), event_ns=500)
    g.publish(wm, 1000)
    g.publish(src, Reading("a", 2.0), event_ns=700)
    assert lates == [graph.LateValue("a", 700, 2.0, 1000)]

    src2, wm2 = _routes("update")
    u = g.window_by_time(src2, width=1e-6, watermark=wm2, value=lambda r: r.value, late="update", lateness=2e-6)
    out = []
    g.observe(u.output, out.append)
    g.publish(src2, Reading("a", 1.0), event_ns=500)
    g.publish(wm2, 1000)
    g.publish(src2, Reading("a", 3.0), event_ns=600)
    assert [(r.count, r.sum, r.update) for r in out] == [(1, 1.0, False), (2, 4.0, True)]
    g.publish(wm2, 3000)
    g.publish(src2, Reading("a", 5.0), event_ns=700)  # past the lateness
    assert len(out) == 2 and u.snapshot()["late_dropped"] == 1


def test_a_silent_partition_holds_the_watermark_until_it_goes_idle():
    for idleness in (0.0, 1e-6):
        clock = graph.ManualClock()
        g = graph.Graph()
        src = graph.route("plant", "env", "idle", Reading)
        w = g.window_by_time(src, width=1e-6, partition_by=lambda r: r.sensor, value=lambda r: r.value,
                             idle_after=idleness, clock=clock)
        out = []
        g.observe(w.output, out.append)
        w._native.advance_partition(w._keys.id("a"), 0, clock.now_ns())
        w._native.advance_partition(w._keys.id("b"), 0, clock.now_ns())
        g.publish(src, Reading("a", 1.0), event_ns=300)
        clock.advance(500)
        w._native.advance_partition(w._keys.id("a"), 2000, clock.now_ns())
        assert out == []  # held back by b
        clock.advance(700)
        w.tick()
        if not idleness:
            assert out == [] and w.snapshot()["idle"] == []  # the control
            continue
        assert [(r.partition, r.sum) for r in out] == [("a", 1.0)]
        assert w.snapshot()["idle"] == ["b"]


def test_partition_watermarks_from_a_route_of_pairs():
    g = graph.Graph()
    src = graph.route("plant", "env", "pairs", Reading)
    import json
    wm = graph.route("plant", "env", "pairs_wm", graph.Schema("json pair.v1", lambda p: json.dumps(list(p)).encode(),
                                                              lambda b: tuple(json.loads(bytes(b))), tuple))
    w = g.window_by_time(src, width=1e-6, watermark=wm, partition_by=lambda r: r.sensor, value=lambda r: r.value)
    out = []
    g.observe(w.output, out.append)
    g.publish(src, Reading("a", 1.0), event_ns=100)
    g.publish(src, Reading("b", 2.0), event_ns=200)
    g.publish(wm, ("a", 5000))
    assert out == []  # b's watermark is not known yet: it holds the window
    g.publish(wm, ("b", 5000))
    assert sorted((r.partition, r.sum) for r in out) == [("a", 1.0), ("b", 2.0)]
    with pytest.raises(weft.InvalidArgument, match="backwards"):
        g.publish(wm, ("b", 10))


def test_aggregates_and_count_windows():
    g = graph.Graph()
    src, wm = _routes("agg")
    mean = g.window_aggregate_by_time(src, width=1e-6, aggregate="mean", watermark=wm, value=lambda r: r.value)
    median = g.window_aggregate_by_time(src, width=1e-6, aggregate=lambda w: statistics.median(w.values), watermark=wm,
                                        value=lambda r: r.value, output=graph.route("plant", "env", "median",
                                                                                      graph._windows.WINDOW_AGGREGATE))
    means, medians = [], []
    g.observe(mean.output, lambda a: means.append(a.value))
    g.observe(median.output, lambda a: medians.append(a.value))
    for i, v in enumerate([5.0, 1.0, 9.0, 3.0]):
        g.publish(src, Reading("a", v), event_ns=100 + i)
    g.publish(wm, 1000)
    assert means == [4.5] and medians == [4.0]
    with pytest.raises(weft.InvalidArgument, match="backwards"):
        g.publish(wm, 999)

    cw = g.window(src, size=3, trigger=1, partition_by=lambda r: r.sensor, value=lambda r: r.value)
    sums = []
    g.observe(cw.output, lambda r: sums.append((r.partition, r.sum, r.values)))
    for v in (1.0, 2.0, 3.0, 4.0):
        g.publish(src, Reading("z", v), event_ns=5000)
    assert sums == [("z", 1.0, (1.0,)), ("z", 3.0, (1.0, 2.0)), ("z", 6.0, (1.0, 2.0, 3.0)), ("z", 9.0, (2.0, 3.0, 4.0))]
    assert any(e["kind"] == "window" for e in g.topology()["edges"])
    mean.close()
    assert sum(e["kind"] == "window" for e in g.topology()["edges"]) == 1  # the median's is left


def test_a_failing_partition_function_is_raised_from_publish_and_skips_only_its_value():
    g = graph.Graph()
    src, wm = _routes("fails")

    def sensor(r):
        if r.sensor == "bad":
            raise ValueError("no such sensor")
        return r.sensor

    w = g.window_by_time(src, width=1e-6, watermark=wm, partition_by=sensor, value=lambda r: r.value)
    out = []
    g.observe(w.output, out.append)
    g.publish(src, Reading("a", 1.0), event_ns=100)
    with pytest.raises(ValueError, match="no such sensor"):
        g.publish(src, Reading("bad", 5.0), event_ns=110)
    g.publish(src, Reading("a", 2.0), event_ns=120)
    g.publish(wm, 1000)
    assert [(r.partition, r.count, r.sum) for r in out] == [("a", 2, 3.0)]


def test_lineage_across_a_window():
    g = graph.Graph()
    src, wm = _routes("lineage")
    g.configure_retention(src, graph.RetentionPolicy(keep_last=100))
    w = g.window_by_time(src, width=1e-6, watermark=wm, partition_by=lambda r: r.sensor, value=lambda r: r.value,
                         lineage=True)
    out = []
    g.observe(w.output, out.append)
    ids = {}
    g.observe(src, lambda r, e: ids.setdefault(r.sensor, []).append(e.id), envelope=True)
    for i, s in enumerate("abab"):
        g.publish(src, Reading(s, float(i)), event_ns=100 + i)
    g.publish(wm, 1000)
    by = {r.partition: r for r in out}
    assert list(by["a"].inputs) == ids["a"] and list(by["b"].inputs) == ids["b"]
    assert [e.id for e in g.window_inputs(by["a"], src)] == ids["a"]
