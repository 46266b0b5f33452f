"""NumPy round trips for `weft bench rpc`, case `numpy`: a table of N rows (row_id u32 and x, y,
z f64, stored by column) fetched from a resource in another process, then the client's
aggregation sum(x) + sum(y) + sum(z) over it, the same in every row. Modes:

  hold  the table is viewed in place in the server's shared memory (weft.hold)
  copy  the client gets a copy of its own
  loan  the other direction: the client's table, built in shared memory (weft.loan_buffer),
        aggregated by the resource in place; only the sum comes back

Baselines: gRPC (python3-grpcio; the table's bytes in one message, the server in a process of
its own), a Unix-socket pickle RPC (the columns pickled, protocol 5), and the floor: the
aggregation alone, on a table in local memory.

Prints TSV rows (see rpc_bench.cc: PythonRows), or JSON rows when run directly.
"""

import os
import pickle
import signal
import socket
import struct
import sys
import time

import numpy as np

import weft

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rpc_call import emit, fork_server, free_port, percentiles, serve_tcp, start_server, tcp_options, _recv_exact  # noqa: E402
from tables import Table  # noqa: E402


def aggregate(t):
    return float(t.x.sum() + t.y.sum() + t.z.sum())


@weft.contract(namespace="bench.tables", version="1")
class Tables:
    @weft.read
    def table(self, rows: int) -> Table: ...

    @weft.read
    def aggregate(self, t: Table) -> float: ...


class TablesImpl:
    """Keeps its tables in the server's shared memory, where clients can view them."""

    def __init__(self, server, sizes):
        self.tables = {n: Table.build(n, weft.loan_buffer(server, Table.nbytes(n))) for n in sizes}

    def table(self, rows: int) -> Table:
        return self.tables[rows]

    def aggregate(self, t: Table) -> float:
        return aggregate(t)


def reps(rows, quick):
    n = 200 if rows <= 10_000 else 60 if rows <= 100_000 else 20 if rows <= 1_000_000 else 8
    return max(3, n // 4) if quick else n


def timed(fn, n, warm=3):
    for _ in range(warm):
        fn()
    out = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        fn()
        out.append(time.perf_counter_ns() - t0)
    return out


def row(transport, mode, rows, samples, note, via=""):
    p50, p99, p999 = percentiles(samples)
    return dict(case="numpy", transport=transport, via=via, mode=mode, rows=rows, n=len(samples), p50=p50, p99=p99,
                p999=p999, note=note)


def _recv_buffer(sock, size):
    """`size` bytes from `sock`, received straight into a buffer of their own."""
    buf = bytearray(size)
    view, got = memoryview(buf), 0
    while got < size:
        n = sock.recv_into(view[got:])
        if n == 0:
            raise EOFError
        got += n
    return buf


class WeftSide:
    """A Weft server in another process; hold, copy and loan round trips to it."""

    def __init__(self, sizes):
        sid = f"pynumpy-{os.getpid()}"

        def serve(w):
            server = weft.Server(sid)
            server.register(Tables, TablesImpl(server, sizes), name="tables")
            server.start()
            signal.signal(signal.SIGTERM, lambda *_: (server.shutdown(), os._exit(0)))
            os.write(w, b"1")
            while True:
                time.sleep(1)

        self.pid = fork_server(serve)
        self.proxy = weft.connect(Tables, name="tables", address=f"ipc://{sid}", timeout=60)

    def cases(self, rows):
        p = self.proxy
        held_call = weft.hold(p.table)
        want = aggregate(p.table(rows))

        def hold():
            with held_call(rows) as h:
                assert aggregate(h.value) == want

        def copy():
            assert aggregate(p.table(rows)) == want

        mine = Table.build(rows, weft.loan_buffer(p, Table.nbytes(rows)))
        mine_sum = aggregate(mine)

        def loan():
            assert p.aggregate(mine) == mine_sum

        return [("weft", "hold", hold, "the table viewed in the server's shared memory (weft.hold), then aggregated"),
                ("weft", "copy", copy, "the table copied out of shared memory into the client's own bytes, then aggregated"),
                ("weft", "loan", loan, "the client's table (built in a loaned block) aggregated by the resource in place")]

    def close(self):
        self.proxy.close()
        os.kill(self.pid, signal.SIGTERM)
        os.waitpid(self.pid, 0)


def serve_grpc(port, sizes):
    import grpc
    from concurrent import futures
    tables = {n: bytes(Table.build(n).buf) for n in sizes}

    def table(request, context):
        return tables[struct.unpack("<q", request)[0]]

    handler = grpc.method_handlers_generic_handler("bench.Tables",
                                                   {"Table": grpc.unary_unary_rpc_method_handler(table)})
    opts = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1), handlers=[handler], options=opts)
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    print("ready", flush=True)
    server.wait_for_termination()


class GrpcSide:
    def __init__(self, sizes):
        port = free_port()
        self.proc = start_server(["--grpc-server", str(port), ",".join(map(str, sizes))], __file__)
        import grpc
        opts = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=opts)
        grpc.channel_ready_future(self.channel).result(timeout=30)
        self.stub = self.channel.unary_unary("/bench.Tables/Table")

    def cases(self, rows):
        req = struct.pack("<q", rows)
        return [("grpc", "copy", lambda: aggregate(Table.deserialize(self.stub(req))),
                 "python3-grpcio, the table's bytes in one message, TCP on 127.0.0.1")]

    def close(self):
        self.channel.close()
        self.proc.kill()
        self.proc.wait()


class PickleSide:
    def __init__(self, sizes):
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)

        def serve(w):
            a.close()
            tables = {n: Table.build(n) for n in sizes}
            os.write(w, b"1")
            try:
                while True:
                    rows = struct.unpack("<q", _recv_exact(b, 8))[0]
                    t = tables[rows]
                    data = pickle.dumps((t.row_id, t.x, t.y, t.z), protocol=5)
                    b.sendall(struct.pack("<Q", len(data)) + data)
            except EOFError:
                pass

        self.pid = fork_server(serve)
        b.close()
        self.sock = a

    def fetch(self, rows):
        self.sock.sendall(struct.pack("<q", rows))
        size = struct.unpack("<Q", _recv_exact(self.sock, 8))[0]
        return Cols(pickle.loads(_recv_buffer(self.sock, size)))

    def cases(self, rows):
        return [("uds-pickle", "copy", lambda: aggregate(self.fetch(rows)),
                 "the columns pickled (protocol 5) over a Unix socket, server in another process")]

    def close(self):
        self.sock.close()
        os.waitpid(self.pid, 0)


class TcpSide:
    """A Weft server in another process over tcp:// (plaintext, or TLS with pinned keys): the
    table arrives by value, straight into the client's memory, which the columns then view."""

    def __init__(self, sizes, tls):
        self.tls = tls
        self.pid, address = serve_tcp(Tables, lambda server: TablesImpl(server, sizes), "tables", tls)
        self.proxy = weft.connect(Tables, name="tables", address=address, timeout=60, **tcp_options(tls)[1])

    def cases(self, rows):
        p = self.proxy
        want = aggregate(p.table(rows))

        def copy():
            assert aggregate(p.table(rows)) == want

        how = "TLS 1.3" if self.tls else "plaintext"
        return [("weft", "copy", copy, f"the table over tcp:// on 127.0.0.1 ({how}) into the client's memory, viewed "
                                       f"there, then aggregated")]

    def close(self):
        self.proxy.close()
        os.kill(self.pid, signal.SIGTERM)
        os.waitpid(self.pid, 0)


class TcpFloorSide:
    """The same table bytes over a plain TCP socket pair (no library): the server sends them,
    the client receives them into a buffer of its own and aggregates."""

    def __init__(self, sizes):
        ls = socket.socket()
        ls.bind(("127.0.0.1", 0))
        ls.listen(1)
        port = ls.getsockname()[1]

        def serve(w):
            tables = {n: bytes(Table.build(n).buf) for n in sizes}
            os.write(w, b"1")
            conn, _ = ls.accept()
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                while True:
                    rows = struct.unpack("<q", _recv_exact(conn, 8))[0]
                    conn.sendall(tables[rows])
            except EOFError:
                pass

        self.pid = fork_server(serve)
        ls.close()
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def fetch(self, rows):
        self.sock.sendall(struct.pack("<q", rows))
        return Table(rows, _recv_buffer(self.sock, Table.nbytes(rows)))

    def cases(self, rows):
        return [("floor", "", lambda: aggregate(self.fetch(rows)),
                 "the table's bytes over a TCP socket pair on 127.0.0.1 into the client's memory, then aggregated")]

    def close(self):
        self.sock.close()
        os.waitpid(self.pid, 0)


class Cols:
    def __init__(self, cols):
        self.row_id, self.x, self.y, self.z = cols


class FloorSide:
    def __init__(self, sizes):
        self.tables = {n: Table.build(n) for n in sizes}

    def cases(self, rows):
        t = self.tables[rows]
        return [("floor", "", lambda: aggregate(t), "the aggregation alone, on a table in local memory")]

    def close(self):
        pass


SIZES = [1_000, 10_000, 100_000, 1_000_000, 3_000_000]


def main():
    if "--grpc-server" in sys.argv:
        i = sys.argv.index("--grpc-server")
        return serve_grpc(int(sys.argv[i + 1]), [int(x) for x in sys.argv[i + 2].split(",")])
    quick = "--quick" in sys.argv
    # Servers are forked processes that inherit the sockets made before them: the sides close in
    # the reverse order, so that no server waits for an end of file another one holds up.
    sides = [FloorSide(SIZES), WeftSide(SIZES), GrpcSide(SIZES), TcpSide(SIZES, False), TcpSide(SIZES, True),
             TcpFloorSide(SIZES), PickleSide(SIZES)]
    vias = {id(s): v for s, v in zip(sides, ["", "ipc", "", "tcp", "tcp+tls", "tcp", ""])}
    rows = []
    try:
        for side in sides:  # every path once, then a pause for the servers' start-up work to end
            for _, _, fn, _ in side.cases(SIZES[0]):
                fn()
        time.sleep(1.0)
        for n in SIZES:
            # Every case of a size in turns, a few repetitions at a time: the machine's memory
            # bandwidth drifts over seconds here, and every row should see the same drift.
            cases = [(*c, vias[id(side)]) for side in sides for c in side.cases(n)]
            samples = {i: [] for i in range(len(cases))}
            total = reps(n, quick)
            turns = 5 if total >= 5 else 1
            for _ in range(turns):
                for i, (_, _, fn, _, _) in enumerate(cases):
                    samples[i] += timed(fn, max(1, total // turns), warm=1)
            for i, (transport, mode, _, note, via) in enumerate(cases):
                rows.append(row(transport, mode, n, samples[i], note, via))
    finally:
        for side in reversed(sides):
            side.close()
    emit(rows)


if __name__ == "__main__":
    main()
