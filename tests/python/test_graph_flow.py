"""weft.graph's flow from Python: mailboxes (counts, a blocked publisher that really waits with
the GIL let go, a timed-out one refused), capacitors (coalescing, demand, a waiting producer),
resistors (gates, pulses), watchdogs on a manual clock (values published by the core, decoded
for Python), and edge policies (sink over source over the graph)."""

import threading
import time

import pytest

import weft
from weft import graph


def r(stream, tp=int):
    return graph.route("t", "flow", stream, tp)


def test_mailbox_policies_and_counts():
    g = graph.Graph()
    src = r("m")
    box = g.mailbox(src, graph.FlowPolicy(capacity=3, overflow="drop_oldest"))
    for i in range(5):
        g.publish(src, i)
    snap = box.snapshot()
    assert (snap["depth"], snap["credit"], snap["dropped_oldest"], snap["accepted"]) == (3, 0, 2, 5)
    assert [box.try_take(), box.take(1), box.take(1)] == [2, 3, 4]
    assert box.try_take() is None
    with pytest.raises(weft.Timeout):
        box.take(0.01)
    assert g.mailbox_snapshot(box)["delivered"] == 3
    with pytest.raises(weft.InvalidArgument):
        g.mailbox(src, graph.FlowPolicy(overflow="sometimes"))


def test_a_blocked_publisher_waits_with_the_gil_released_and_a_timed_out_one_is_refused():
    g = graph.Graph()
    src = r("m")
    box = g.mailbox(src, graph.FlowPolicy(capacity=1, overflow="block"))
    g.publish(src, 1)
    done = []
    t = threading.Thread(target=lambda: (g.publish(src, 2), done.append(True)))
    t.start()
    deadline = time.monotonic() + 10
    while box.snapshot()["blocked"] == 0 and time.monotonic() < deadline:
        time.sleep(0.001)
    assert box.snapshot()["blocked"] == 1 and not done  # waiting, and this thread runs meanwhile
    assert box.take(5) == 1
    t.join(10)
    assert done and box.take(5) == 2
    strict = g.mailbox(src, graph.FlowPolicy(capacity=1, timeout=0.02))
    g.publish(src, 3)
    box.take(1)
    with pytest.raises(weft.ResourceExhausted, match="stayed full"):
        g.publish(src, 4)
    assert strict.snapshot()["refused"] == 1 and strict.take(1) == 3
    got = []
    consumer = threading.Thread(target=lambda: got.extend(v for v in strict))
    consumer.start()
    assert box.take(1) == 4  # room for 5 in the first mailbox too
    g.publish(src, 5)
    time.sleep(0.01)
    strict.close()
    consumer.join(10)
    assert got == [5]


def test_capacitor_coalesces_releases_on_demand_and_makes_its_producer_wait():
    g = graph.Graph()
    src, dst, tick = r("in"), r("out"), r("tick")
    seen = []
    g.observe(dst, seen.append)
    cap = g.capacitor(source=src, sink=dst, capacity=1, demand=tick)
    for i in range(10):
        g.publish(src, i)
    g.publish(tick, 0)
    assert seen == [9] and cap.snapshot()["coalesced"] == 9
    # Several slots: the producer waits while it is full.
    src2, dst2 = r("in2"), r("out2")
    seen2 = []
    g.observe(dst2, seen2.append)
    cap2 = g.capacitor(source=src2, sink=dst2, capacity=2)
    producer = threading.Thread(target=lambda: [g.publish(src2, i) for i in range(6)])
    producer.start()
    max_depth = 0
    while len(seen2) < 6:
        max_depth = max(max_depth, cap2.snapshot()["depth"])
        time.sleep(0.001)
        cap2.discharge(1)
    producer.join(10)
    assert seen2 == list(range(6)) and max_depth <= 2 and cap2.snapshot()["blocked"] > 0
    with pytest.raises(weft.SchemaMismatch):
        g.capacitor(source=src, sink=r("text", str))


def test_resistor_gate_and_pulses():
    g = graph.Graph()
    src, dst, gate, pulse = r("in"), r("out"), r("gate", bool), r("pulse")
    seen = []
    g.observe(dst, seen.append)
    gated = g.resistor(source=src, sink=dst, gate=gate)
    g.publish(src, 1)  # no gate value yet: closed
    g.publish(gate, True)
    g.publish(src, 2)
    g.publish(gate, False)
    g.publish(src, 3)
    assert seen == [2] and gated.snapshot()["gated"] == 2
    gated.close()
    g.resistor(source=src, sink=dst, release=pulse)
    g.publish(src, 4)
    g.publish(src, 5)
    g.publish(pulse, 0)
    assert seen == [2, 5]


def test_watchdog_on_a_manual_clock():
    g = graph.Graph()
    beat, timeout = r("beat"), r("timeout")
    clock = graph.ManualClock(0)
    fired = []
    g.observe(timeout, lambda misses: fired.append((clock.now_ns(), misses)))
    w = g.watchdog(reset_by=beat, output=timeout, after=100e-9, clock=clock)
    clock.advance(99)
    assert fired == []
    clock.advance(1)
    g.publish(beat, 1)
    clock.advance(250)
    assert fired == [(100, 1), (200, 1), (300, 2)]  # ints decoded from the core's bytes
    assert w.fired == 3
    with pytest.raises(weft.SchemaMismatch):
        g.watchdog(reset_by=beat, output=r("label", str), after=1.0, clock=clock)


def test_edge_policies_sink_over_source_over_graph():
    g = graph.Graph()
    a, b = r("a"), r("b")
    assert g.describe_edge(source=a, sink=b) == graph.FlowPolicy(1024, "block", None)
    g.configure_flow_defaults(graph.FlowPolicy(capacity=64, timeout=1.0))
    g.configure_source_flow(a, graph.FlowPolicy(capacity=8, overflow="drop_oldest"))
    g.configure_sink_flow(b, graph.FlowPolicy(overflow="coalesce"))
    assert g.describe_edge(source=a, sink=b) == graph.FlowPolicy(8, "coalesce", 1.0)
    assert g.describe_edge(source=b) == graph.FlowPolicy(64, "block", 1.0)
    box = g.mailbox(a)
    assert box.snapshot()["capacity"] == 8
    assert g.flow_snapshot(a) == {"name": a.name, "published": 0, "observers": 1}
