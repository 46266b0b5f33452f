"""A route observed from another process: a sensor process publishes readings on a route placed
on shared memory, and this process observes them as they come, with their envelopes.

Both processes declare the same route (owner, family, stream and schema) and place it on shm;
the graph does the rest: the values cross through a Weft topic named after the route, and each
process's observers see them as if they were published locally (with the sensor's producer id).
"""

import dataclasses
import multiprocessing as mp
import os
import time

from weft import graph


@dataclasses.dataclass
class Reading:
    bar: float
    valve: str


ROUTE = graph.route("plant", "boiler", "pressure", Reading)
TOPIC = f"example.graph.{os.getpid()}"


def sensor(go):
    g = graph.Graph()
    g.place(ROUTE, topic=TOPIC)
    go.wait(10)
    for i in range(20):
        g.publish(ROUTE, Reading(1.0 + i / 10, "open" if i < 15 else "closed"), producer=os.getpid())
    time.sleep(0.5)  # let the readings be taken before this process ends


def main():
    g = graph.Graph()
    placement = g.place(ROUTE, topic=TOPIC)
    seen = []
    g.observe(ROUTE, lambda v, e: seen.append((v, e)), envelope=True)
    go = mp.Event()
    p = mp.Process(target=sensor, args=(go,))
    p.start()
    go.set()  # this process observes already: whatever the sensor publishes from now on arrives
    deadline = time.monotonic() + 10
    while len(seen) < 20 and time.monotonic() < deadline:
        time.sleep(0.01)
    p.join(10)
    assert [v.bar for v, _ in seen] == [1.0 + i / 10 for i in range(20)]
    assert seen[-1][0].valve == "closed" and all(e.producer == p.pid for _, e in seen)
    print(f"20 readings from process {p.pid}, latest {g.latest(ROUTE)}")
    placement.close()
    import weft
    weft.unlink_topic(TOPIC)
    print("across processes example ok")


if __name__ == "__main__":
    main()
