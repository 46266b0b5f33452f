"""Python producer and consumer, 64-byte records: one at a time and with the batch calls.

Prints JSON rows (suite channel, case pystream) for `weft bench channel`; run directly for a
quick look. Both ends are Python processes; a Unix socket pair does the same work as baseline.
"""

import json
import multiprocessing as mp
import os
import socket
import sys
import time

import weft

SIZE = 64


def _consume_weft(name, count, batch, ready, out):
    rx = weft.Channel.open(name, role="consumer")
    ready.set()
    got = 0
    total = 0
    if batch:
        while got < count:
            recs = rx.read_batch(4096, timeout=30)
            got += len(recs)
            total += sum(len(r) for r in recs)
    else:
        read = rx.read_bytes
        while got < count:
            total += len(read(30))
            got += 1
    out.put((time.monotonic_ns(), total))


def run_weft(count, batch):
    name = f"bench.py.{os.getpid()}.{int(batch)}"
    tx = weft.Channel.create(name, capacity=8 << 20)
    ready, out = mp.Event(), mp.Queue()
    p = mp.Process(target=_consume_weft, args=(name, count, batch, ready, out))
    p.start()
    ready.wait()
    rec = b"x" * SIZE
    t0 = time.monotonic_ns()
    if batch:
        chunk = [rec] * 4096
        sent = 0
        while sent < count:
            n = min(4096, count - sent)
            sent += tx.write_batch(chunk if n == 4096 else chunk[:n], timeout=30)
    else:
        write = tx.write
        for _ in range(count):
            write(rec, 30)
    t_end, total = out.get(timeout=120)
    p.join()
    tx.close()
    weft.Channel.unlink(name)
    assert total == count * SIZE
    return count / ((t_end - t0) / 1e9)


def _consume_uds(sock, count, batch, out):
    # Equal work: the consumer ends up with one bytes object per record, as weft's does.
    got = 0
    if batch:
        pending = b""
        while got < count:
            data = pending + sock.recv(4096 * SIZE)
            whole = len(data) // SIZE * SIZE
            records = [data[i:i + SIZE] for i in range(0, whole, SIZE)]
            pending = data[whole:]
            got += len(records)
    else:
        recv = sock.recv
        while got < count:
            rec = recv(SIZE)
            while len(rec) < SIZE:
                rec += recv(SIZE - len(rec))
            got += 1
    out.put(time.monotonic_ns())


def run_uds(count, batch):
    a, b = socket.socketpair()
    out = mp.Queue()
    p = mp.Process(target=_consume_uds, args=(b, count, batch, out))
    p.start()
    rec = b"x" * SIZE
    t0 = time.monotonic_ns()
    if batch:
        chunk = rec * 4096
        sent = 0
        while sent < count:
            n = min(4096, count - sent)
            a.sendall(chunk if n == 4096 else chunk[: n * SIZE])
            sent += n
    else:
        send = a.sendall
        for _ in range(count):
            send(rec)
    t_end = out.get(timeout=120)
    p.join()
    return count / ((t_end - t0) / 1e9)


def main():
    quick = "--quick" in sys.argv
    count = 1_000_000 if quick else 4_000_000
    rows = []
    for batch in (False, True):
        note = "python producer and consumer, " + ("batch calls" if batch else "one record per call")
        mode = "batch" if batch else "single"
        for transport, fn in (("weft", run_weft), ("uds", run_uds)):
            rate = fn(count, batch)
            rows.append({"suite": "channel", "case": "pystream", "transport": transport,
                         "payload_bytes": SIZE, "n": count, "mode": mode,
                         "msgs_per_s": round(rate), "bytes_per_s": round(rate * SIZE),
                         "note": note + ("" if transport == "weft" else "; socket batches are one sendall of the joined records")})
    for r in rows:
        if "--tsv" in sys.argv:  # for `weft bench channel`
            print("\t".join(str(r[k]) for k in ("transport", "mode", "n", "msgs_per_s", "note")))
        else:
            print(json.dumps(r))


if __name__ == "__main__":
    main()
