"""A rolling aggregate released by watermarks: request latencies per service in 1-second
event-time windows. Values arrive out of order; a window is released only when the watermark
passes its end, a late value is sent to a side route, and a silent partition is declared idle
so it cannot hold everyone's windows back."""

import dataclasses
import json

from weft import graph

S = 1_000_000_000


@dataclasses.dataclass
class Latency:
    service: str
    ms: float


def main():
    g = graph.Graph()
    clock = graph.ManualClock()
    lat = graph.route("api", "http", "latency", Latency)
    # Each service's watermark: (service, ns) pairs, as JSON.
    pair = graph.Schema("json watermark.pair.v1", lambda p: json.dumps(list(p)).encode(),
                        lambda b: tuple(json.loads(bytes(b))), tuple)
    wm = graph.route("api", "http", "watermark", pair)
    late = graph.route("api", "http", "latency", graph.LATE_VALUE, variant="late")
    op = g.window_aggregate_by_time(lat, width=1.0, aggregate="mean", watermark=wm,
                                    partition_by=lambda v: v.service, value=lambda v: v.ms, late="side",
                                    late_route=late, idle_after=5.0, clock=clock)
    means = []
    g.observe(op.output, means.append)
    lates = []
    g.observe(op.late_route, lates.append)

    # Out of order within the second; two services.
    for t, svc, ms in [(0.30, "auth", 10), (0.10, "auth", 30), (0.50, "search", 100), (0.90, "auth", 20),
                       (0.20, "search", 300)]:
        g.publish(lat, Latency(svc, ms), event_ns=int(t * S))
    g.publish(wm, ("auth", int(0.95 * S)))
    assert means == []  # no watermark past the end of [0, 1 s) yet
    g.publish(wm, ("auth", 1 * S))
    assert means == []  # search has not said: it holds the window
    g.publish(wm, ("search", 1 * S))
    assert sorted((m.partition, m.value) for m in means) == [("auth", 20.0), ("search", 200.0)]
    g.publish(lat, Latency("auth", 99), event_ns=int(0.5 * S))  # behind the watermark: late
    assert len(lates) == 1 and lates[0].partition == "auth"

    # search goes silent; after 5 s of it, it is idle and auth's watermark alone releases.
    g.publish(lat, Latency("auth", 40), event_ns=int(1.5 * S))
    clock.advance(6 * S)
    op.tick()
    g.publish(wm, ("auth", 2 * S))
    assert means[-1].partition == "auth" and means[-1].value == 40.0
    assert "search" in op.snapshot()["idle"]
    print(f"{len(means)} windows released, {len(lates)} late value sent aside, idle: {op.snapshot()['idle']}")
    print("rolling window example ok")


if __name__ == "__main__":
    main()
