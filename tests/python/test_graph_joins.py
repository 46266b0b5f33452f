"""weft.graph joins: a lookup join against the latest state per key; an interval join against a
reference model (every on-time pair within the interval, once, caused by the later value; late
values counted; buffers pruned by the watermark); the repartition planner's skew and hot keys."""

import dataclasses
import random

import pytest

import weft
from weft import graph


@dataclasses.dataclass
class Accel:
    imu: str
    ax: float


@dataclasses.dataclass
class Gyro:
    imu: str
    gx: float


@dataclasses.dataclass
class Fused:
    imu: str
    ax: float
    gx: float


def test_lookup_join_against_the_latest_state():
    g = graph.Graph()
    orders = graph.route("shop", "orders", "placed", Accel)
    prices = graph.route("shop", "prices", "latest", Gyro)
    out = graph.route("shop", "orders", "priced", Fused)
    j = g.lookup_join(orders, prices, key_left=lambda o: o.imu, key_right=lambda p: p.imu,
                      combine=lambda o, p: Fused(o.imu, o.ax, p.gx if p else -1.0), output=out)
    got = []
    g.observe(out, got.append)
    g.publish(orders, Accel("a", 1.0))
    g.publish(prices, Gyro("a", 9.0))
    g.publish(orders, Accel("a", 2.0))
    g.publish(prices, Gyro("a", 10.0))
    g.publish(orders, Accel("a", 3.0))
    assert [(f.ax, f.gx) for f in got] == [(1.0, -1.0), (2.0, 9.0), (3.0, 10.0)]
    assert j.snapshot() == {"left": 3, "matched": 2, "missed": 1, "keys": 1}


def test_interval_join_matches_a_reference_model():
    rng = random.Random(7)
    g = graph.Graph()
    accel = graph.route("robot", "imu", "accel", Accel)
    gyro = graph.route("robot", "imu", "gyro", Gyro)
    wm = graph.route("robot", "imu", "watermark", int)
    out = graph.route("robot", "imu", "fused", Fused)
    j = g.interval_join(accel, gyro, within=50e-9, key_left=lambda a: a.imu, key_right=lambda r: r.imu,
                        combine=lambda a, r: Fused(a.imu, a.ax, r.gx), output=out, watermark=wm)
    got = []
    g.observe(out, lambda f, e: got.append((f.ax, f.gx, e.causality != 0)), envelope=True)
    lefts, rights, clock, mark, late = [], [], 1000, None, 0
    for n in range(2000):
        clock += rng.randrange(4)
        if rng.randrange(40) == 0:
            w = clock - 150 - rng.randrange(50)
            if mark is None or w >= mark:
                mark = w
                g.publish(wm, mark)
            continue
        imu, t = rng.choice("xyz"), clock - rng.randrange(200)
        on_time = mark is None or t >= mark
        late += not on_time
        if rng.randrange(2):
            if on_time:
                lefts.append((imu, t, float(n)))
            g.publish(accel, Accel(imu, float(n)), event_ns=t)
        else:
            if on_time:
                rights.append((imu, t, float(n)))
            g.publish(gyro, Gyro(imu, float(n)), event_ns=t)
    want = sorted((a, r, True) for (ki, ti, a) in lefts for (kj, tj, r) in rights if ki == kj and abs(ti - tj) <= 50)
    assert sorted(got) == want
    snap = j.snapshot()
    assert snap["late"] == late and snap["pairs"] == len(want) and snap["pruned"] > 0
    with pytest.raises(weft.InvalidArgument, match="backwards"):
        g.publish(wm, mark - 1)


def test_plan_repartition_finds_the_hot_key():
    counts = {k: 10 for k in range(100)}
    counts["hot-sensor"] = 2000
    plan = graph.plan_repartition(counts, 8)
    assert plan["mean"] == 375.0 and plan["skew"] > 5
    assert plan["hot"] == [{"key": "hot-sensor", "values": 2000, "split": 6}]
    assert set(plan["partition_of"]) == set(counts) and all(0 <= p < 8 for p in plan["partition_of"].values())
    assert "hot keys" in plan["text"]
    with pytest.raises(weft.InvalidArgument):
        graph.plan_repartition(counts, 0)


def test_lineage_across_joins_names_both_inputs():
    g = graph.Graph()
    accel = graph.route("robot", "imu", "accel_l", Accel)
    gyro = graph.route("robot", "imu", "gyro_l", Gyro)
    out = graph.route("robot", "imu", "fused_l", Fused)
    j = g.interval_join(accel, gyro, within=1e-6, key_left=lambda a: a.imu, key_right=lambda r: r.imu,
                        combine=lambda a, r: Fused(a.imu, a.ax, r.gx), output=out)
    g.configure_retention(accel, graph.RetentionPolicy(keep_last=10))
    g.configure_retention(gyro, graph.RetentionPolicy(keep_last=10))
    g.publish(accel, Accel("a", 1.0), event_ns=1000)
    g.publish(gyro, Gyro("a", 2.0), event_ns=1500)
    _, env = g.latest(out, envelope=True)
    left_id, right_id = j.inputs_of(env)
    assert left_id == g.latest(accel, envelope=True)[1].id and right_id == g.latest(gyro, envelope=True)[1].id
    assert env.causality == right_id  # caused by the later of the two
    assert [e.id for _, e in g.lineage(causality_id=left_id)] == [left_id]  # each side found by its id
    # A lookup join names the left value and the state it found (0: none).
    state = graph.route("robot", "imu", "state_l", Gyro)
    out2 = graph.route("robot", "imu", "looked_l", Fused)
    lj = g.lookup_join(accel, state, key_left=lambda a: a.imu, key_right=lambda r: r.imu,
                       combine=lambda a, r: Fused(a.imu, a.ax, r.gx if r else 0.0), output=out2)
    g.publish(accel, Accel("a", 3.0))
    assert lj.inputs_of(g.latest(out2, envelope=True)[1]) == (g.latest(accel, envelope=True)[1].id, 0)
    g.publish(state, Gyro("a", 4.0))
    g.publish(accel, Accel("a", 5.0))
    assert lj.inputs_of(g.latest(out2, envelope=True)[1]) == (g.latest(accel, envelope=True)[1].id,
                                                             g.latest(state, envelope=True)[1].id)
