"""The bus from Python, 64-byte events (rows for `weft bench bus`; run directly for a look).

ingest: a Python producer, ingest_raw one at a time and ingest_raw_batch of 1000, into a memory:
        bus with no group (nothing to deliver: the producer's side alone).
python: a Python producer process to a Python consumer process over a shm: bus; the consumer
        polls batches and copies every event's bytes out (batch.join(): every byte touched);
        beside a Unix socket pair doing the same work (joined records, one recv per batch).
"""

import json
import multiprocessing as mp
import os
import socket
import sys
import time

import weft

SIZE = 64
EVENT = b"x" * SIZE


def ingest_rows(count):
    rows = []
    with weft.Bus(num_shards=1, capacity=1 << 24, backpressure="drop_oldest") as bus:
        ingest = bus.ingest_raw
        for _ in range(10000):
            ingest(EVENT)
        t0 = time.perf_counter()
        for _ in range(count):
            ingest(EVENT)
        rate = count / (time.perf_counter() - t0)
        rows.append(("ingest", "weft", 0, 0, count, rate, "ingest_raw one at a time (bytes), no consumer"))
        batch = [EVENT] * 1000
        ingest_batch = bus.ingest_raw_batch
        t0 = time.perf_counter()
        for _ in range(count // 1000):
            ingest_batch(batch)
        rate = (count // 1000 * 1000) / (time.perf_counter() - t0)
        rows.append(("ingest", "weft", 1, 0, count // 1000 * 1000, rate,
                     "ingest_raw_batch of 1000 (a list of bytes), no consumer"))
    return rows


def _consume_weft(url, count, ready, out):
    bus = weft.Bus(url)
    member = bus.subscribe("g")
    ready.set()
    got = total = 0
    while got < count:
        batch = member.poll(1024, timeout=30)
        got += len(batch)
        total += len(batch.join())
    member.close()
    out.put((time.monotonic_ns(), total))


def run_weft(count, batch):
    url = f"shm:bench.pybus.{os.getpid()}.{int(batch)}"
    try:
        weft.Bus.unlink(url)
    except weft.NotFound:
        pass
    bus = weft.Bus(url, num_shards=1, capacity=8 << 20, groups=["g"])
    ready, out = mp.Event(), mp.Queue()
    p = mp.Process(target=_consume_weft, args=(url, count, ready, out))
    p.start()
    ready.wait(30)
    t0 = time.monotonic_ns()
    if batch:
        chunk = [EVENT] * 1000
        sent = 0
        while sent < count:
            sent += bus.ingest_raw_batch(chunk if count - sent >= 1000 else chunk[:count - sent], timeout=30)
    else:
        ingest = bus.ingest_raw
        for _ in range(count):
            ingest(EVENT)
    t_end, total = out.get(timeout=300)
    p.join()
    bus.shutdown()
    weft.Bus.unlink(url)
    assert total == count * SIZE, total
    return count / ((t_end - t0) / 1e9)


def _consume_uds(sock, count, out):
    got = total = 0
    pending = b""
    while got < count:
        data = pending + sock.recv(1024 * SIZE)
        whole = len(data) // SIZE * SIZE
        total += len(data[:whole])  # the records' bytes, copied once, as batch.join() does
        pending = data[whole:]
        got += whole // SIZE
    out.put((time.monotonic_ns(), total))


def run_uds(count, batch):
    a, b = socket.socketpair()
    out = mp.Queue()
    p = mp.Process(target=_consume_uds, args=(b, count, out))
    p.start()
    t0 = time.monotonic_ns()
    if batch:
        # Equal work: the events are separate objects, as the bus producer's list holds them;
        # a batch is joined and sent with one call.
        chunk = [EVENT] * 1000
        join = b"".join
        sent = 0
        while sent < count:
            n = min(1000, count - sent)
            a.sendall(join(chunk if n == 1000 else chunk[:n]))
            sent += n
    else:
        send = a.sendall
        for _ in range(count):
            send(EVENT)
    t_end, total = out.get(timeout=300)
    p.join()
    assert total == count * SIZE
    return count / ((t_end - t0) / 1e9)


def main():
    quick = "--quick" in sys.argv
    count = 1_000_000 if quick else 4_000_000
    rows = ingest_rows(count)
    for batch in (False, True):
        how = "ingest_raw_batch of 1000" if batch else "ingest_raw one at a time"
        rows.append(("python", "weft", int(batch), 1, count, run_weft(count, batch),
                     f"{how} to a shm: bus; a consumer process polls 1024 and joins every event's bytes"))
        rows.append(("python", "uds", int(batch), 1, count, run_uds(count, batch),
                     ("sendall of 1000 events joined (b''.join of the list)" if batch else "sendall per event") +
                     "; the consumer process receives and copies the records' bytes"))
    for case, transport, batch, consumers, n, rate, note in rows:
        if "--tsv" in sys.argv:  # for `weft bench bus`
            print("\t".join(str(x) for x in (case, transport, batch, consumers, n, round(rate), note)))
        else:
            print(json.dumps({"suite": "bus", "case": case, "transport": transport, "batch": bool(batch),
                              "consumers": consumers, "lang": "python", "payload_bytes": SIZE, "n": n,
                              "msgs_per_s": round(rate), "note": note}))


if __name__ == "__main__":
    main()
