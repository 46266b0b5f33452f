"""A durable bus replayed after a restart: agent steps survive every process.

A producer process records 1000 steps of 10 agents on a log: bus (fsync="always": each
ingest returns once on disk) and exits. A consumer process handles 400 of them, commits, and is
killed. After that "restart", a new consumer process resumes exactly where the group
committed, and an audit group created later replays everything from the oldest step.
"""

import json
import multiprocessing as mp
import os
import shutil
import signal
import tempfile

import weft

STEPS, AGENTS = 1000, 10


def produce(url):
    with weft.Bus(url, num_shards=4, fsync="always") as bus:
        for step in range(STEPS):
            agent = step % AGENTS
            bus.ingest({"agent": agent, "step": step}, key=f"agent-{agent}")


def consume_then_die(url, handled):
    bus = weft.Bus(url)
    consumer = bus.subscribe("planner", auto_commit=False)
    n = 0
    while n < 400:
        for event in consumer.poll(limit=min(50, 400 - n), timeout=1.0):
            n += 1
    consumer.commit()  # durable: the group resumes after these 400
    handled.put(n)
    os.kill(os.getpid(), signal.SIGKILL)  # no clean shutdown


def resume(url, results):
    bus = weft.Bus(url)
    with bus.subscribe("planner", timeout=0.5) as consumer:
        steps = [event.parse()["step"] for event in consumer]
    with bus.subscribe("audit", timeout=0.5) as audit:
        replayed = [event.parse() for event in audit]
    per_agent = {}
    for e in replayed:
        per_agent.setdefault(e["agent"], []).append(e["step"])
    in_order = all(v == sorted(v) for v in per_agent.values())
    results.put({"resumed": len(steps), "replayed": len(replayed), "in_order_per_agent": in_order,
                 "ingested": bus.stats().ingested})


def main():
    root = tempfile.mkdtemp(prefix="weft-bus-durable-")
    url = f"log:{root}/steps"
    try:
        p = mp.Process(target=produce, args=(url,))
        p.start()
        p.join(60)
        handled = mp.SimpleQueue()  # put() writes at once (the process is killed right after)
        c = mp.Process(target=consume_then_die, args=(url, handled))
        c.start()
        c.join(60)
        first = handled.get() if not handled.empty() else 0
        results = mp.Queue()
        r = mp.Process(target=resume, args=(url, results))
        r.start()
        report = results.get(timeout=60)
        r.join(30)
        report["handled_before_kill"] = first
        report["killed"] = c.exitcode == -signal.SIGKILL
        print(json.dumps(report, sort_keys=True))
        ok = (report["resumed"] + first == STEPS and report["replayed"] == STEPS and report["in_order_per_agent"]
              and report["killed"] and p.exitcode == 0 and r.exitcode == 0)
        print("bus durable example ok" if ok else "bus durable example FAILED")
        raise SystemExit(0 if ok else 1)
    finally:
        try:
            weft.Bus.unlink(url)
        except weft.NotFound:
            pass
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
