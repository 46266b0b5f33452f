"""A write shadow for an actuator in another process. The controller asks for a valve opening
(request); the reconciler sends it (desired) to the actuator process, which applies it and says
what it did (reported); the application trusts effective. The actuator process is killed: the
next request is retried with backoff and, past the coherence deadline, the binding says it is
incoherent. A new actuator process starts, reports its rest state, and the reconciler brings it
to the desired opening: reported, effective and the device agree again.

Run as `actuator_shadow.py`; it starts `actuator_shadow.py --actuator <prefix>` itself."""

import os
import signal
import subprocess
import sys
import time

from weft import graph
from weft.topic import unlink_topic


def routes(g):
    """The binding's routes as both processes declare them."""
    return (graph.route("valve", "plant", "opening", int, variant="desired", plane="write", layer="shadow"),
            graph.route("valve", "plant", "opening", int, variant="reported", plane="read", layer="shadow"))


def actuator(prefix):
    g = graph.Graph()
    desired, reported = routes(g)
    g.place(desired, topic=prefix + ".desired")
    g.place(reported, topic=prefix + ".reported")

    def apply(opening):
        with open(prefix_file(prefix), "w") as f:  # the "hardware": what the valve is set to
            f.write(str(opening))
        g.publish(reported, opening)

    g.observe(desired, apply)
    g.publish(reported, 0)  # at rest after boot
    print("ready", flush=True)
    while True:
        time.sleep(1)


def prefix_file(prefix):
    return f"/tmp/{prefix}.valve"


def start(prefix):
    p = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--actuator", prefix], stdout=subprocess.PIPE,
                         text=True, env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    assert p.stdout.readline().strip() == "ready"
    return p


def wait(cond, what, timeout=20.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def main():
    prefix = f"example.shadow.{os.getpid()}"
    g = graph.Graph()
    w = g.write_binding("valve", "plant", "opening", int,
                        retry=graph.RetryPolicy(max_attempts=0, ack_timeout=0.1, backoff=0.02, max_backoff=0.2),
                        coherence_deadline=0.4)
    g.place(w.desired, topic=prefix + ".desired")
    g.place(w.reported, topic=prefix + ".reported")
    kinds = []
    g.observe(w.events, lambda e: kinds.append(e.kind))
    act = start(prefix)
    try:
        g.publish(w.request, 25)
        wait(lambda: w.snapshot()["phase"] == "synced", "the first opening")
        assert g.latest(w.effective) == 25

        act.send_signal(signal.SIGKILL)
        act.wait()
        g.publish(w.request, 60)
        wait(lambda: not w.snapshot()["coherent"] and w.snapshot()["retries"] >= 3, "the binding to turn incoherent")
        assert w.snapshot()["phase"] != "synced"  # no actuator, no sync
        with open(prefix_file(prefix)) as f:
            assert f.read() == "25"

        act = start(prefix)
        wait(lambda: w.snapshot()["phase"] == "synced" and w.snapshot()["coherent"], "the restarted actuator")
        v, env = g.latest(w.effective, envelope=True)
        assert v == 60 and graph.taints_of(env) == set()
        with open(prefix_file(prefix)) as f:
            assert f.read() == "60"
        s = w.snapshot()
        print(f"reconciled after a restart: {s['sends']} sends, {s['retries']} retries, "
              f"incoherent {s['incoherent']} time(s); events {sorted(set(kinds))}")
        print("actuator shadow example ok")
    finally:
        act.kill()
        act.wait()
        for t in (".desired", ".reported"):
            unlink_topic(prefix + t)
        if os.path.exists(prefix_file(prefix)):
            os.unlink(prefix_file(prefix))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--actuator":
        actuator(sys.argv[2])
    else:
        main()
