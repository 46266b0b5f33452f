"""Python rows of `weft bench graph`: publish to an observer holding the value (case observe),
and values through a capacitor and a filter into an observer (case throughput), for Weft's
graph, RxPY 3 (Debian's python3-rx: a Subject, and a Subject with ops.filter) and a plain list
of callbacks (the floor), on equal work: the same values, the same observer (a list's append).

Prints TSV rows for graph_bench.cc: case, transport, placement, kind (latency|rate), n, p50, p99,
p99.9 (ns), values per second, note; "-" for an empty field. Run directly: a readable table.
"""

import sys
import time

from weft import graph

from rpc_call import percentiles, time_calls as time_each  # one way of timing for every Python row


def observe_rows(n, warm):
    rows = []
    # Weft: the route's bound publish function, one observer appending.
    g = graph.Graph()
    r = graph.route("bench", "graph", "observe", float)
    got = []
    g.observe(r, got.append)
    p50, p99, p999 = percentiles(time_each(g.publisher(r), warm, n))
    rows.append(("observe", "weft", "memory", "latency", n, p50, p99, p999, None,
                 "graph.publisher(route)(1) to one observer (list.append), same thread"))
    got.clear()
    # RxPY: a Subject, one subscriber appending.
    from rx.subject import Subject
    s = Subject()
    got2 = []
    s.subscribe(got2.append)
    p50, p99, p999 = percentiles(time_each(s.on_next, warm, n))
    rows.append(("observe", "rxpy", "memory", "latency", n, p50, p99, p999, None,
                 "RxPY 3 Subject.on_next(1) to one subscriber (list.append)"))
    # The floor: a list of callbacks.
    got3 = []
    callbacks = [got3.append]

    def publish(v):
        for c in callbacks:
            c(v)

    p50, p99, p999 = percentiles(time_each(publish, warm, n))
    rows.append(("observe", "floor", "memory", "latency", n, p50, p99, p999, None,
                 "a for loop over a list of callbacks (list.append): no envelope, no latest"))
    return rows


def throughput_rows(total):
    rows = []
    batch = 1024
    total = total // batch * batch
    # Weft: values into a capacitor (1024 slots), discharged in batches to a route, a filter
    # (half pass) into an observer.
    g = graph.Graph()
    src = graph.route("bench", "graph", "in", int)
    mid = graph.route("bench", "graph", "mid", int)
    cap = g.capacitor(source=src, sink=mid, capacity=batch)
    got = []
    g.filter(mid, lambda v: v & 1 == 0).observe(got.append)
    pub = g.publisher(src)
    t0 = time.perf_counter_ns()
    for start in range(0, total, batch):
        for i in range(start, start + batch):
            pub(i)
        cap.discharge(batch)
    elapsed = time.perf_counter_ns() - t0
    assert len(got) == total // 2
    rows.append(("throughput", "weft", "memory", "rate", total, None, None, None, total / elapsed * 1e9,
                 "publish into a capacitor of 1024, discharged per 1024 into a route, filter (half pass), observer"))
    # RxPY: a Subject, ops.filter, a subscriber (RxPY has no capacitor: less work than Weft's).
    from rx import operators as ops
    from rx.subject import Subject
    s = Subject()
    got2 = []
    s.pipe(ops.filter(lambda v: v & 1 == 0)).subscribe(got2.append)
    on_next = s.on_next
    t0 = time.perf_counter_ns()
    for i in range(total):
        on_next(i)
    elapsed = time.perf_counter_ns() - t0
    rows.append(("throughput", "rxpy", "memory", "rate", total, None, None, None, total / elapsed * 1e9,
                 "RxPY 3 Subject, ops.filter (half pass), subscriber; no storage stage"))
    # The floor: a plain loop with the predicate.
    got3 = []
    t0 = time.perf_counter_ns()
    for i in range(total):
        if i & 1 == 0:
            got3.append(i)
    elapsed = time.perf_counter_ns() - t0
    rows.append(("throughput", "floor", "memory", "rate", total, None, None, None, total / elapsed * 1e9,
                 "a plain loop: the predicate and append, nothing else"))
    return rows


import dataclasses


@dataclasses.dataclass
class Event:
    sensor: int
    value: float


def window_rows(total):
    """Events (1,000 partitions, 100 ns apart in event time) through tumbling windows of 1 ms
    summed per partition, closed by a watermark every 10,000 events."""
    rows = []
    width, every = 1_000_000, 10_000
    events = [(Event(i * 7919 % 1000, float(i & 1023)), 1_000 + i * 100) for i in range(total)]
    # Weft: window_by_time on a route, the watermark on another.
    g = graph.Graph()
    src = graph.route("bench", "graph", "events", Event)
    wm = graph.route("bench", "graph", "marks", int)
    w = g.window_by_time(src, width=width / 1e9, watermark=wm, partition_by=lambda e: e.sensor, value=lambda e: e.value)
    sums = []
    g.observe(w.output, lambda r: sums.append(r.sum))
    port = g._port(src)
    publish = port.publish_with
    mark = g.publisher(wm)
    t0 = time.perf_counter_ns()
    for i, (e, t) in enumerate(events):
        publish(e, 0, t, 0, None)
        if (i + 1) % every == 0:
            mark(t - 2_000)
    w.flush()
    elapsed = time.perf_counter_ns() - t0
    weft_total = sum(sums)
    rows.append(("window", "weft", "memory", "rate", total, None, None, None, total / elapsed * 1e9,
                 "window_by_time: 1 ms tumbling, sum per partition (1,000), a watermark every 10,000 events"))
    # RxPY: the same events through a Subject; windows closed by a watermark Subject (ops.window),
    # each grouped by partition and summed.
    from rx import operators as ops
    from rx.subject import Subject
    s, marks = Subject(), Subject()
    sums2 = []
    s.pipe(
        ops.window(marks),
        ops.flat_map(lambda win: win.pipe(
            ops.group_by(lambda e: e.sensor),
            ops.flat_map(lambda grp: grp.pipe(ops.map(lambda e: e.value), ops.sum())))),
    ).subscribe(sums2.append)
    on_next, on_mark = s.on_next, marks.on_next
    t0 = time.perf_counter_ns()
    for i, (e, t) in enumerate(events):
        on_next(e)
        if (i + 1) % every == 0:
            on_mark(t)
    s.on_completed()
    elapsed = time.perf_counter_ns() - t0
    assert abs(sum(sums2) - weft_total) < 1e-6 * max(1.0, weft_total)
    rows.append(("window", "rxpy", "memory", "rate", total, None, None, None, total / elapsed * 1e9,
                 "RxPY 3: Subject, ops.window(watermarks), group_by partition, sum"))
    return rows


@dataclasses.dataclass
class Side:
    key: int
    value: float


def join_rows(total):
    """Values of two streams (alternating sides, 100 keys, 100 ns apart) through an event-time
    interval join of 2 us, a watermark every 1,000 values; pairs counted (the same on both)."""
    rows = []
    within, every = 2_000, 1_000
    events = [(Side((i // 2) * 7919 % 100, float(i)), 1_000 + i * 100, i & 1) for i in range(total)]  # pairs: 2j, 2j + 1
    g = graph.Graph()
    left, right = graph.route("bench", "join", "left", Side), graph.route("bench", "join", "right", Side)
    wm = graph.route("bench", "join", "marks", int)
    out = graph.route("bench", "join", "pairs", float)
    g.interval_join(left, right, within=within / 1e9, key_left=lambda s: s.key, key_right=lambda s: s.key,
                    combine=lambda a, b: a.value + b.value, output=out, watermark=wm)
    pairs = []
    g.observe(out, pairs.append)
    pub = (g._port(left).publish_with, g._port(right).publish_with)
    mark = g.publisher(wm)
    t0 = time.perf_counter_ns()
    for i, (s, t, side) in enumerate(events):
        pub[side](s, 0, t, 0, None)
        if (i + 1) % every == 0:
            mark(t - within)
    elapsed = time.perf_counter_ns() - t0
    rows.append(("join", "weft", "memory", "rate", total, None, None, None, total / elapsed * 1e9,
                 f"interval_join: 2 us, 100 keys, a watermark every 1,000 values ({len(pairs)} pairs)"))
    # RxPY: ops.join with each value's window closed by the first watermark past its time plus
    # the interval, then the key and the interval checked.
    from rx import operators as ops
    from rx.subject import Subject
    ls, rs, marks = Subject(), Subject(), Subject()

    def closes(item):
        return marks.pipe(ops.filter(lambda w: w > item[1] + within), ops.take(1))

    pairs2 = []
    ls.pipe(
        ops.join(rs, closes, closes),
        ops.filter(lambda p: p[0][0].key == p[1][0].key and abs(p[0][1] - p[1][1]) <= within),
        ops.map(lambda p: p[0][0].value + p[1][0].value),
    ).subscribe(pairs2.append)
    on = (ls.on_next, rs.on_next)
    t0 = time.perf_counter_ns()
    for i, (s, t, side) in enumerate(events):
        on[side]((s, t))
        if (i + 1) % every == 0:
            marks.on_next(t - within)
    elapsed = time.perf_counter_ns() - t0
    rows.append(("join", "rxpy", "memory", "rate", total, None, None, None, total / elapsed * 1e9,
                 f"RxPY 3: ops.join, windows closed by the watermark, key and interval filtered ({len(pairs2)} pairs)"))
    return rows


def main():
    quick = "--quick" in sys.argv
    n, warm, total = (50_000, 5_000, 200_000) if quick else (300_000, 20_000, 2_000_000)
    rows = observe_rows(n, warm) + throughput_rows(total) + window_rows(total // 10) + join_rows(total // 100)
    if "--tsv" in sys.argv:
        for row in rows:
            print("\t".join("-" if f is None else (f"{f:.1f}" if isinstance(f, float) else str(f)) for f in row))
    else:
        for row in rows:
            print(row)


if __name__ == "__main__":
    main()
