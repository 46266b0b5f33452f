"""A bursty sensor and a slow display: a one-slot capacitor between them keeps the freshest
reading, and each refresh tick of the display takes exactly one.

The sensor publishes bursts of readings far faster than the display refreshes. Without the
capacitor, the display would see every reading (or its code would have to drop them itself);
with it, the graph coalesces: each tick releases the newest reading, the rest are counted as
coalesced, and every reading shown carries the trace of the sensor value it came from.
"""

import dataclasses

from weft import graph


@dataclasses.dataclass
class Reading:
    celsius: float
    burst: int


def main():
    g = graph.Graph()
    raw = graph.route("sensor", "env", "temperature", Reading, layer="raw")
    shown = graph.route("display", "env", "temperature", Reading)
    tick = graph.route("display", "ui", "refresh", int)

    cap = g.capacitor(source=graph.source(raw), sink=graph.sink(shown), capacity=1, demand=tick)
    screen = []
    g.observe(shown, lambda v, e: screen.append((v, e)), envelope=True)

    for burst in range(5):
        for i in range(100):  # a burst: 100 readings between two refreshes
            g.publish(raw, Reading(20.0 + burst + i / 100, burst))
        g.publish(tick, burst)  # the display refreshes: it takes one reading, the freshest

    assert [v.burst for v, _ in screen] == [0, 1, 2, 3, 4]
    assert all(abs(v.celsius - (20.0 + v.burst + 0.99)) < 1e-9 for v, _ in screen)  # the freshest of each burst
    snap = g.flow_snapshot(cap)
    assert snap["coalesced"] == 5 * 99 and snap["delivered"] == 5
    _, first = screen[0]
    assert first.causality != 0  # it came from a sensor reading
    print(f"5 refreshes showed the freshest of 500 readings; {snap['coalesced']} coalesced")
    print("bursty sensor example ok")


if __name__ == "__main__":
    main()
