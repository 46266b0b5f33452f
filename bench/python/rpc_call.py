"""Python small-call round trips for `weft bench rpc`: a counter's increment(1), in-process
(a direct call), over Weft's ipc:// to a server in another process, and over a Unix-socket
pickle RPC (length-prefixed pickled requests and replies, server in another process).

Prints TSV rows (transport, via, n, p50, p99, p999 in ns, note) for `weft bench rpc`, or JSON
rows when run directly.
"""

import json
import os
import pickle
import signal
import socket
import struct
import sys
import time

import weft


@weft.contract(namespace="bench.counter", version="1")
class Counter:
    def increment(self, amount: int) -> int: ...


class CounterImpl:
    def __init__(self):
        self.value = 0

    def increment(self, amount: int) -> int:
        self.value += amount
        return self.value


def percentiles(samples):
    s = sorted(samples)
    pick = lambda q: s[min(len(s) - 1, int(q * len(s)))]
    return pick(0.5), pick(0.99), pick(0.999)


def time_calls(fn, warm, n):
    for _ in range(warm):
        fn(1)
    out = []
    clock = time.perf_counter_ns
    for _ in range(n):
        t0 = clock()
        fn(1)
        out.append(clock() - t0)
    return out


def fork_server(body):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            body(w)
        finally:
            os._exit(0)
    os.close(w)
    assert os.read(r, 1) == b"1"
    os.close(r)
    return pid


def run_inproc(warm, n):
    weft.register(Counter, CounterImpl(), name="bench-counter")
    try:
        with weft.connect(Counter, name="bench-counter") as c:
            return time_calls(c.increment, warm, n)
    finally:
        weft.unregister("bench-counter")


def run_ipc(warm, n):
    sid = f"pybench-{os.getpid()}"

    def serve(w):
        server = weft.Server(sid)
        server.register(Counter, CounterImpl(), name="counter")
        server.start()
        signal.signal(signal.SIGTERM, lambda *_: (server.shutdown(), os._exit(0)))
        os.write(w, b"1")
        while True:
            time.sleep(1)

    pid = fork_server(serve)
    try:
        with weft.connect(Counter, name="counter", address=f"ipc://{sid}", timeout=30) as c:
            return time_calls(c.increment, warm, n)
    finally:
        os.kill(pid, signal.SIGTERM)
        os.waitpid(pid, 0)


def _recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return bytes(buf)


def run_uds_pickle(warm, n):
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)

    def serve(w):
        a.close()
        impl = CounterImpl()
        os.write(w, b"1")
        try:
            while True:
                size = struct.unpack("<I", _recv_exact(b, 4))[0]
                method, args = pickle.loads(_recv_exact(b, size))
                reply = pickle.dumps(getattr(impl, method)(*args))
                b.sendall(struct.pack("<I", len(reply)) + reply)
        except EOFError:
            pass

    pid = fork_server(serve)
    b.close()

    def call(amount):
        req = pickle.dumps(("increment", (amount,)))
        a.sendall(struct.pack("<I", len(req)) + req)
        size = struct.unpack("<I", _recv_exact(a, 4))[0]
        return pickle.loads(_recv_exact(a, size))

    try:
        return time_calls(call, warm, n)
    finally:
        a.close()
        os.waitpid(pid, 0)


def main():
    quick = "--quick" in sys.argv
    n = 2000 if quick else 20000
    rows = []
    for transport, via, fn, note in (
            ("weft", "inproc", run_inproc, "python proxy, direct call, no serialization"),
            ("weft", "ipc", run_ipc, "python client and server in two processes"),
            ("uds-pickle", "", run_uds_pickle, "pickled requests and replies over a Unix socket, server in another process")):
        p50, p99, p999 = percentiles(fn(500, n))
        rows.append(dict(transport=transport, via=via, n=n, p50=p50, p99=p99, p999=p999, note=note))
    for r in rows:
        if "--tsv" in sys.argv:
            print("\t".join(str(r[k]) for k in ("transport", "via", "n", "p50", "p99", "p999", "note")))
        else:
            print(json.dumps(dict(suite="rpc", case="call", lang="python", **r)))


if __name__ == "__main__":
    main()
