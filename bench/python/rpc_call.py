"""Python small-call round trips for `weft bench rpc`: a counter's increment(1), in-process
(a direct call), over Weft's ipc:// to a server in another process, over gRPC on loopback
(Debian's python3-grpcio, the same 8-byte request and reply), and over a Unix-socket pickle
RPC (length-prefixed pickled requests and replies, server in another process).

Prints TSV rows (see rpc_bench.cc: PythonRows) for `weft bench rpc`, or JSON rows when run
directly. `--grpc-server PORT` runs the gRPC server (a process of its own: gRPC and fork() do
not mix).
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


_KEYS = None


def tls_keys():
    """Host keys for a server and a client (made once with `weft keygen`), pinned to each other:
    (server options, client options)."""
    global _KEYS
    if _KEYS is None:
        import atexit
        import shutil
        import subprocess
        import tempfile
        d = tempfile.mkdtemp(prefix="weft-bench-keys-")
        atexit.register(shutil.rmtree, d, True)  # the keys go with this run
        cli = os.path.join(os.environ.get("WEFT_BINARY_DIR", "build"), "tools", "weft", "weft")
        ids = {}
        for name in ("server", "client"):
            out = subprocess.run([cli, "keygen", "--out", f"{d}/{name}.key"], check=True, capture_output=True, text=True)
            ids[name] = out.stdout.split()[-1]
        _KEYS = (dict(key=f"{d}/server.key", trust=[ids["client"]]), dict(key=f"{d}/client.key", trust=[ids["server"]]))
    return _KEYS


def tcp_options(tls):
    """(server options, client options) of tcp://: TLS with pinned keys, or plaintext."""
    return tls_keys() if tls else (dict(plaintext=True), dict(plaintext=True))


def serve_tcp(contract, impl_factory, name, tls):
    """A Weft server in a forked process listening on tcp://127.0.0.1:<any>: (pid, address)."""
    sid = f"pytcp-{os.getpid()}-{name}-{int(tls)}"
    server_opts, _ = tcp_options(tls)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            server = weft.Server(sid, listen="tcp://127.0.0.1:0", **server_opts)
            server.register(contract, impl_factory(server), name=name)
            server.start()
            signal.signal(signal.SIGTERM, lambda *_: (server.shutdown(), os._exit(0)))
            os.write(w, server.addresses[1].encode() + b"\n")
            while True:
                time.sleep(1)
        finally:
            os._exit(0)
    os.close(w)
    address = b""
    while not address.endswith(b"\n"):
        chunk = os.read(r, 256)
        if not chunk:
            raise RuntimeError("the tcp server did not start")
        address += chunk
    os.close(r)
    return pid, address.decode().strip()


def run_tcp(tls):
    def run(warm, n):
        pid, address = serve_tcp(Counter, lambda _: CounterImpl(), "counter", tls)
        try:
            with weft.connect(Counter, name="counter", address=address, timeout=30, **tcp_options(tls)[1]) as c:
                return time_calls(c.increment, warm, n)
        finally:
            os.kill(pid, signal.SIGTERM)
            os.waitpid(pid, 0)
    return run


def serve_grpc(port):
    import grpc
    from concurrent import futures
    impl = CounterImpl()

    def increment(request, context):
        return struct.pack("<q", impl.increment(struct.unpack("<q", request)[0]))

    handler = grpc.method_handlers_generic_handler(
        "bench.Counter", {"Increment": grpc.unary_unary_rpc_method_handler(increment)})
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1), handlers=[handler])
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    print("ready", flush=True)
    server.wait_for_termination()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(args, script=__file__):
    """A server process of its own (`script` with `args`), once it has printed "ready"."""
    import subprocess
    p = subprocess.Popen([sys.executable, os.path.abspath(script), *args], stdout=subprocess.PIPE, text=True)
    if p.stdout.readline().strip() != "ready":
        p.kill()
        raise RuntimeError(f"server {args} did not start")
    return p


def run_grpc(warm, n):
    port = free_port()
    server = start_server(["--grpc-server", str(port)])
    import grpc
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=30)
            stub = channel.unary_unary("/bench.Counter/Increment")
            return time_calls(lambda a: struct.unpack("<q", stub(struct.pack("<q", a)))[0], warm, n)
    finally:
        server.kill()
        server.wait()


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


def emit(rows):
    """Prints rows (dicts: case, transport, via, mode, rows, n, p50, p99, p999, note)."""
    for r in rows:
        if "--tsv" in sys.argv:
            print("\t".join(str(r.get(k) or "-") for k in
                            ("case", "transport", "via", "mode", "rows", "n", "p50", "p99", "p999", "note")), flush=True)
        else:
            print(json.dumps(dict(suite="rpc", lang="python", **{k: v for k, v in r.items() if v not in ("", None)})))


def main():
    if "--grpc-server" in sys.argv:
        return serve_grpc(int(sys.argv[sys.argv.index("--grpc-server") + 1]))
    quick = "--quick" in sys.argv
    n = 2000 if quick else 20000
    rows = []
    for transport, via, fn, count, note in (
            ("weft", "inproc", run_inproc, n, "python proxy, direct call, no serialization"),
            ("weft", "ipc", run_ipc, n, "python client and server in two processes"),
            ("grpc", "", run_grpc, n // 4, "python3-grpcio, the same 8-byte request and reply, TCP on 127.0.0.1"),
            ("uds-pickle", "", run_uds_pickle, n, "pickled requests and replies over a Unix socket, server in another process"),
            ("weft", "tcp", run_tcp(False), n, "python client and server in two processes, tcp:// on 127.0.0.1, plaintext"),
            ("weft", "tcp+tls", run_tcp(True), n, "python client and server in two processes, tcp:// on 127.0.0.1, TLS 1.3, keys pinned")):
        p50, p99, p999 = percentiles(fn(500, count))
        rows.append(dict(case="call", transport=transport, via=via, n=count, p50=p50, p99=p99, p999=p999, note=note))
    emit(rows)


if __name__ == "__main__":
    main()
