"""A token stream from one process to a group of two consumer processes over a shm: bus.

The producer ingests tokens of 8 generation requests, keyed by request id, so each request's
tokens land on one shard and arrive in order. The two consumers join group "detok" and share the
shards; every token is delivered to exactly one of them, and each request's tokens come in
order. The producer counts what the consumers report.
"""

import json
import multiprocessing as mp
import os

import weft

URL = f"shm:example.bus.{os.getpid()}"
REQUESTS, TOKENS = 8, 500


def consumer(ready, results):
    bus = weft.Bus(URL)
    seen = {}
    with bus.subscribe("detok", timeout=2.0) as member:
        ready.put(os.getpid())
        for event in member:  # ends when no token came for 2 s
            token = event.parse()
            last = seen.get(token["request"], -1)
            assert token["index"] == last + 1, (token, last)  # in order per request
            seen[token["request"]] = token["index"]
    results.put(seen)


def main():
    bus = weft.Bus(URL, num_shards=4, capacity=1 << 16, groups=["detok"])
    ready, results = mp.Queue(), mp.Queue()
    members = [mp.Process(target=consumer, args=(ready, results)) for _ in range(2)]
    for p in members:
        p.start()
    for _ in members:
        ready.get(timeout=30)
    for index in range(TOKENS):
        for request in range(REQUESTS):
            bus.ingest({"request": request, "index": index, "text": f"tok{index}"}, key=str(request))
    reports = [results.get(timeout=60) for _ in members]
    for p in members:
        p.join(30)
    tokens = sum(len(r) and sum(i + 1 for i in r.values()) for r in reports)
    requests = set().union(*[r.keys() for r in reports])
    shared = set(reports[0]) & set(reports[1])
    stats = bus.stats()
    print(json.dumps({"tokens": tokens, "requests": len(requests), "both_members_read": all(reports),
                      "request_split": not shared, "ingested": stats.ingested}))
    bus.shutdown()
    weft.Bus.unlink(URL)
    ok = tokens == REQUESTS * TOKENS and len(requests) == REQUESTS and all(p.exitcode == 0 for p in members)
    print("bus tokens example ok" if ok else "bus tokens example FAILED")
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
