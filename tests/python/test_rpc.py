"""Contracts from Python: canonical text, hash stability across languages, mismatch details."""

import hashlib
import threading
import time
from typing import Iterator

import numpy as np
import pytest

import weft


@weft.contract(namespace="demo.counter", version="0.1.0")
class Counter:
    def increment(self, amount: int) -> int: ...

    @weft.read
    def value(self) -> int: ...

    def reset(self) -> int: ...


def test_canonical_text_and_hash_match_the_cpp_contract():
    c = Counter.__weft_contract__
    assert c.canonical() == (
        "weft-contract 1\n"
        "namespace demo.counter\n"
        "name Counter\n"
        "version 0.1.0\n"
        "method increment write i64 -> i64\n"
        "method reset write -> i64\n"
        "method value read -> i64\n")
    # The value tests/rpc/contract_test.cc expects from C++, and plain BLAKE2b-128.
    assert c.hash == "2c2859863138efe6c98aa14daa210b3b"
    assert hashlib.blake2b(c.canonical().encode(), digest_size=16).hexdigest() == c.hash


def test_codecs_come_from_annotations():
    class Matrix:
        __weft_transferable__ = "demo.Matrix"

    @weft.contract(namespace="demo.mesh", version="2")
    class Mesh:
        @weft.read
        def points(self, lo: int, hi: int) -> np.ndarray: ...

        def put(self, data: bytes, scale: float, flag: bool, note: str) -> None: ...

        def store(self, m: Matrix, anything) -> dict: ...

        @weft.read
        def chunks(self, n: int) -> Iterator[bytes]: ...

    c = Mesh.__weft_contract__
    assert c.method("points").line() == "method points read i64 i64 -> ndarray"
    assert c.method("put").line() == "method put write bytes f64 bool str -> none"
    assert c.method("store").line() == "method store write demo.Matrix pickle -> pickle"
    assert c.method("chunks").line() == "method chunks read i64 -> stream bytes"


def test_mismatch_says_what_differs():
    @weft.contract(namespace="demo.counter", version="0.2.0", name="Counter")
    class CounterV2:
        def increment(self, amount: float) -> int: ...

        def value(self) -> int: ...

        @weft.read
        def describe(self) -> str: ...

    weft.check_contract(Counter, Counter)
    with pytest.raises(weft.ContractMismatch) as e:
        weft.check_contract(Counter, CounterV2)
    msg = str(e.value)
    assert "version 0.1.0 on the server, 0.2.0 on the client" in msg
    assert "method 'describe' only on the client" in msg
    assert "method 'reset' only on the server" in msg
    assert "method 'increment' takes (i64) on the server, (f64) on the client" in msg
    assert "method 'value' is read on the server, write on the client" in msg


def test_bad_contracts_fail_at_definition():
    with pytest.raises(weft.InvalidArgument):
        @weft.contract(namespace="", version="1")
        class Bad:
            def m(self) -> int: ...
    with pytest.raises(weft.Corrupt):
        weft._native._contract_hash("weft-contract 1\nnamespace a\nname B\nversion 1\nmethod z read -> i64\nmethod a read -> i64\n")


class CounterImpl:
    def __init__(self, initial=0):
        self._value = initial
        self.shut = False

    def increment(self, amount: int) -> int:
        self._value += amount
        return self._value

    def value(self) -> int:
        return self._value

    def reset(self) -> int:
        old, self._value = self._value, 0
        return old

    def on_shutdown(self):
        self.shut = True


def test_inprocess_resource_behaves_like_the_seed_counter():
    impl = CounterImpl(initial=100)
    weft.register(Counter, impl, name="counter-a")
    try:
        with weft.connect(Counter, name="counter-a") as c:
            assert c.increment(10) == 110
            assert c.value() == 110
            assert c.reset() == 110
            assert c.value() == 0
            with pytest.raises(AttributeError):
                c.decrement(1)
        with pytest.raises(weft.Closed):
            c.value()
        with pytest.raises(weft.AlreadyExists):
            weft.register(Counter, CounterImpl(), name="counter-a")
        with pytest.raises(weft.NotFound):
            weft.connect(Counter, name="no-such-counter")
    finally:
        weft.unregister("counter-a")
    assert impl.shut  # on_shutdown ran
    with pytest.raises(weft.NotFound):
        weft.connect(Counter, name="counter-a")


def test_connect_with_another_contract_is_refused_before_any_call():
    @weft.contract(namespace="demo.counter", version="0.1.0", name="Counter")
    class OtherCounter:
        def increment(self, amount: float) -> int: ...

        @weft.read
        def value(self) -> int: ...

        def reset(self) -> int: ...

    weft.register(Counter, CounterImpl(), name="counter-b")
    try:
        with pytest.raises(weft.ContractMismatch) as e:
            weft.connect(OtherCounter, name="counter-b")
        assert "method 'increment' takes (i64) on the server, (f64) on the client" in str(e.value)
    finally:
        weft.unregister("counter-b")


def test_reads_run_together_writes_run_alone():
    import threading
    import time

    @weft.contract(namespace="demo.probe", version="1")
    class Probe:
        @weft.read
        def look(self) -> int: ...

        def change(self) -> int: ...

    class ProbeImpl:
        def __init__(self):
            self.lock = threading.Lock()
            self.readers = self.writers = self.max_readers = self.bad = 0

        def _enter(self, write):
            with self.lock:
                if write:
                    self.writers += 1
                    self.bad += self.readers != 0 or self.writers != 1
                else:
                    self.readers += 1
                    self.max_readers = max(self.max_readers, self.readers)
                    self.bad += self.writers != 0

        def _leave(self, write):
            with self.lock:
                if write:
                    self.writers -= 1
                else:
                    self.readers -= 1

        def look(self) -> int:
            self._enter(False)
            time.sleep(0.02)  # releases the GIL: other reads may run meanwhile
            self._leave(False)
            return 0

        def change(self) -> int:
            self._enter(True)
            time.sleep(0.005)
            self._leave(True)
            return 0

    impl = ProbeImpl()
    weft.register(Probe, impl, name="probe")
    try:
        def worker(i):
            with weft.connect(Probe, name="probe") as p:
                for k in range(10):
                    (p.change if (i + k) % 4 == 0 else p.look)()

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        weft.unregister("probe")
    assert impl.bad == 0
    assert impl.max_readers >= 2


# ---- across processes -----------------------------------------------------------------------------

import os as _os
import signal as _signal
import subprocess as _subprocess

import rpc_demo


@pytest.fixture
def store_server(run_python):
    sid = f"pytest-{_os.getpid()}-{id(object())}"
    p = run_python(f"import rpc_demo; rpc_demo.serve({sid!r})", stdout=_subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    yield sid, p
    if p.poll() is None:
        p.kill()
    p.wait(timeout=30)
    try:  # a killed server leaves its pool for `weft gc`; the test removes it itself
        weft.Pool.unlink(f"rpc.{sid}.pool")
    except weft.NotFound:
        pass


def test_calls_across_processes_with_every_codec(store_server):
    sid, _ = store_server
    with weft.connect(rpc_demo.Store, name="store", address=f"ipc://{sid}") as s:
        assert s.increment(5) == 5
        assert s.increment(7) == 12
        assert s.value() == 12
        pts = s.points(1000)
        assert pts.shape == (1000, 3) and pts.dtype == np.float64
        assert np.array_equal(pts, np.arange(3000, dtype=np.float64).reshape(1000, 3))
        assert s.echo("grüße", b"\x00\xff", 2.5, True) == "grüße|00ff|2.5|True"
        assert s.stash({"a": [1, 2, (3, 4)]}) == 1
        q = s.shifted(rpc_demo.Point(1.0, 2.0), 0.5)
        assert (q.x, q.y) == (1.5, 2.0)


def test_errors_from_the_resource_reach_the_caller(store_server):
    sid, _ = store_server
    with weft.connect(rpc_demo.Store, name="store", address=f"ipc://{sid}") as s:
        with pytest.raises(weft.NotFound) as e:
            s.lookup("x")
        assert "no key 'x'" in str(e.value)
        with pytest.raises(weft.InternalError) as e:
            s.lookup("boom")
        assert "RuntimeError: the resource failed" in str(e.value)
        assert s.value() == 0  # and it keeps serving


def test_contract_mismatch_and_unknown_resource_at_connect(store_server):
    sid, _ = store_server

    @weft.contract(namespace="demo.store", version="2.0", name="Store")
    class StoreV2:
        def increment(self, amount: int) -> int: ...

    # A server may have more methods than the client knows, and another version.
    with weft.connect(StoreV2, name="store", address=f"ipc://{sid}") as s:
        assert isinstance(s.increment(1), int)

    @weft.contract(namespace="demo.store", version="2.0", name="Store")
    class StoreV3:
        def increment(self, amount: float) -> int: ...
        def extra(self) -> int: ...

    with pytest.raises(weft.ContractMismatch) as e:
        weft.connect(StoreV3, name="store", address=f"ipc://{sid}")
    assert "method 'increment' takes (i64) on the server, (f64) on the client" in str(e.value)
    assert "method 'extra' only on the client" in str(e.value)
    with pytest.raises(weft.NotFound):
        weft.connect(rpc_demo.Store, name="nothing", address=f"ipc://{sid}")
    with pytest.raises(weft.NotFound):
        weft.connect(rpc_demo.Store, name="store", address="ipc://no-such-server")


def test_a_client_learns_at_once_that_its_server_died(store_server):
    sid, proc = store_server
    s = weft.connect(rpc_demo.Store, name="store", address=f"ipc://{sid}", timeout=60)
    assert s.nap(0.01) == 0.01  # control: the server answers
    import threading
    threading.Timer(0.2, proc.kill).start()
    with pytest.raises(weft.PeerDead) as e:
        s.nap(30.0)
    # Told in the caller's terms: the method, the resource, the server; not internal channels.
    assert f"nap() on resource 'store' at ipc://{sid}" in str(e.value) and "rpc-" not in str(e.value)
    s.close()


def test_a_timeout_ends_a_call(store_server):
    sid, _ = store_server
    s = weft.connect(rpc_demo.Store, name="store", address=f"ipc://{sid}", timeout=0.05)
    with pytest.raises(weft.Timeout) as e:
        s.nap(1.0)
    assert str(e.value) == f"no answer to nap() on resource 'store' at ipc://{sid} before the deadline"
    s.close()


def test_keywords_and_wrong_types_behave_as_in_process(store_server):
    sid, _ = store_server
    weft.register(rpc_demo.Store, rpc_demo.StoreImpl(), name="store-kw")
    try:
        local = weft.connect(rpc_demo.Store, name="store-kw")
        with weft.connect(rpc_demo.Store, name="store", address=f"ipc://{sid}") as remote:
            for proxy in (local, remote):
                assert proxy.echo("a", b"b", f=1.5, flag=False) == "a|62|1.5|False"
                assert proxy.increment(amount=2) >= 2
            with pytest.raises(weft.InvalidArgument, match="argument 'amount' must be i64, not str"):
                remote.increment("two")  # not struct.error
            with pytest.raises(weft.InvalidArgument, match="unexpected keyword"):
                remote.increment(amount=1, extra=2)
            with pytest.raises(TypeError):  # weft.InvalidArgument is also a TypeError
                remote.increment("two")
        local.close()
    finally:
        weft.unregister("store-kw")


# ---- hold mode, loans, streams, cancellation -----------------------------------------------------

def _block_id(a):
    return str(weft.block_id(a) or 0)


def test_hold_mode_views_the_resources_own_shared_memory(store_server):
    sid, _ = store_server
    with weft.connect(rpc_demo.Grid, name="grid", address=f"ipc://{sid}") as g:
        want = np.arange(30_000, dtype=np.float64).reshape(10_000, 3)
        assert weft.hold_stats()["active_holds"] == 0
        with weft.hold(g.mesh)() as held:
            v = held.value
            assert held.in_shared_memory and not v.flags.writeable
            assert np.array_equal(v, want)
            assert weft.hold_stats()["active_holds"] == 1
            assert weft.hold_stats()["total_held_bytes"] >= want.nbytes
        with pytest.raises(weft.Closed):
            held.value
        assert weft.hold_stats()["active_holds"] == 1  # `v` still views the block: it stays
        del v
        assert weft.hold_stats()["active_holds"] == 0
        copy = g.mesh()  # without hold: a copy of its own
        assert np.array_equal(copy, want) and weft.block_id(copy) is None
        # A from_buffer type is built over shared memory in hold mode, from bytes otherwise.
        held = weft.hold(g.table)()
        t = held.value
        assert t.rows == 10_000 and t.row_id[9999] == 9999 and t.x[10] == 5.0
        assert isinstance(t.buf, memoryview)
        held.release()
        del t
        t = g.table()
        assert isinstance(t.buf, bytes) and float(t.x.sum() + t.y.sum() + t.z.sum()) == 24_997_500.0 + 10_000 - 2_500
        assert weft.hold_stats()["active_holds"] == 0


def test_an_unreleased_hold_warns_when_collected(store_server):
    sid, _ = store_server
    with weft.connect(rpc_demo.Grid, name="grid", address=f"ipc://{sid}") as g:
        held = weft.hold(g.mesh)()
        with pytest.warns(ResourceWarning):
            del held
            import gc
            gc.collect()
        assert weft.hold_stats()["active_holds"] == 0


def test_a_loaned_array_is_read_in_place_by_the_resource(store_server):
    sid, _ = store_server
    with weft.connect(rpc_demo.Grid, name="grid", address=f"ipc://{sid}") as g:
        a = weft.loan_array(g, (200_000,), "float64")
        a[:] = 0.5
        assert g.total(a) == 100_000.0
        assert g.last_block() == _block_id(a)  # the server read the very block we wrote
        b = np.full(200_000, 0.5)
        assert g.total(b) == 100_000.0  # an ordinary array is copied into a block of its own
        assert g.last_block() not in ("0", _block_id(a))
        small = np.ones(10)
        assert g.total(small) == 10.0 and g.last_block() == "0"  # small values travel inline
        # A held result is passed on as it is, too.
        with weft.hold(g.mesh)() as held:
            assert g.total(held.value) == float(np.arange(30_000).sum())
            assert g.last_block() == _block_id(held.value)


def test_streams_deliver_in_order_and_stop_when_closed(store_server):
    sid, _ = store_server
    with weft.connect(rpc_demo.Grid, name="grid", address=f"ipc://{sid}") as g:
        assert list(g.count(100)) == list(range(100))
        for i, c in enumerate(g.chunks(5, 100_000)):
            assert c.shape == (100_000,) and c[0] == i and c[-1] == i
        held = weft.call(g.chunks, 3, 100_000, hold=True)
        assert [int(c[0]) for c in held] == [0, 1, 2]
        before = g.produced()
        s = g.count(10**9)
        assert [next(s) for _ in range(3)] == [0, 1, 2]
        with pytest.raises(weft.Busy):  # one call at a time on a connection
            g.produced()
        s.close()
        ran = g.produced() - before
        assert 3 <= ran < 10**6  # the producer stopped (it may have run ahead by its credit)
        time.sleep(0.2)
        assert g.produced() - before == ran
        assert list(g.count(3)) == [0, 1, 2]
        open_stream = g.count(10)
        assert next(open_stream) == 0
    with pytest.raises(weft.Closed):  # its proxy closed (the stream was ended first)
        next(open_stream)


def test_cancel_ends_a_call_and_the_resource_sees_it(store_server):
    sid, _ = store_server
    with weft.connect(rpc_demo.Grid, name="grid", address=f"ipc://{sid}", timeout=60) as g:
        token = weft.CancelToken()
        threading.Timer(0.2, token.cancel).start()
        with pytest.raises(weft.Cancelled):
            weft.call(g.spin, 60.0, cancel=token)
        for _ in range(1000):
            if g.spins_cancelled() == 1:
                break
            time.sleep(0.01)
        assert g.spins_cancelled() == 1
        assert weft.call(g.spin, 0.01, cancel=weft.CancelToken()) is False  # control: not cancelled
        assert g.spins_cancelled() == 1


def test_the_same_options_work_in_process():
    weft.register(rpc_demo.Grid, rpc_demo.GridImpl(), name="grid-local")
    try:
        g = weft.connect(rpc_demo.Grid, name="grid-local")
        with weft.hold(g.mesh)() as held:
            assert not held.in_shared_memory and held.value.shape == (10_000, 3)
        assert list(g.count(5)) == [0, 1, 2, 3, 4]
        stop = weft.CancelToken()
        s = weft.call(g.count, 10**9, cancel=stop)
        assert next(s) == 0 and next(s) == 1
        stop.cancel()
        with pytest.raises(weft.Cancelled):
            next(s)
        token = weft.CancelToken()
        threading.Timer(0.1, token.cancel).start()
        with pytest.raises(weft.Cancelled):
            weft.call(g.spin, 60.0, cancel=token)
        assert g.spins_cancelled() == 1
        assert weft.loan_array(g, (4,), "int32").dtype == np.int32
    finally:
        weft.unregister("grid-local")


def test_a_server_reclaims_what_a_killed_python_client_held(store_server, run_python):
    sid, _ = store_server

    def in_use():
        s = weft.Pool.snapshot(f"rpc.{sid}.pool")
        return s["blocks_in_use"] + s["large_in_use"]

    with weft.connect(rpc_demo.Grid, name="grid", address=f"ipc://{sid}") as g:
        g.mesh()  # the resource's own blocks exist from here on
    base = in_use()
    client = run_python(
        "import sys, time, weft, rpc_demo\n"
        f"g = weft.connect(rpc_demo.Grid, name='grid', address='ipc://{sid}')\n"
        "mesh = weft.hold(g.mesh)()\n"                       # a grant of the resource's block
        "chunk = next(iter(weft.call(g.chunks, 1, 100_000, hold=True)))\n"  # a block of its own
        "loan = weft.loan_array(g, (100_000,), 'float64')\n"  # and a loan
        "assert weft.hold_stats()['active_holds'] == 3\n"
        "print('ready', flush=True)\n"
        "time.sleep(600)\n", stdout=_subprocess.PIPE, text=True)
    try:
        assert client.stdout.readline().strip() == "ready"
        time.sleep(0.3)
        assert in_use() == base + 2  # negative control: the chunk and the loan, held while it lives
        client.kill()
        client.wait(timeout=30)
        for _ in range(6000):
            if in_use() == base:
                break
            time.sleep(0.01)
        assert in_use() == base  # all of it back; the resource's own blocks stay its own
        with weft.connect(rpc_demo.Grid, name="grid", address=f"ipc://{sid}") as g:
            with weft.hold(g.mesh)() as held:  # and the block it had a grant on is intact
                assert held.value[1, 2] == 5.0
    finally:
        if client.poll() is None:
            client.kill()


# ---- pickle across processes (docs/security.md) ---------------------------------------------------

@weft.contract(namespace="demo.unsafe", version="1.0.0")
class Unsafe:
    def keep(self, anything) -> int: ...

    @weft.read
    def give(self) -> object: ...


class UnsafeImpl:
    def keep(self, anything) -> int:
        return 1

    def give(self):
        return {"x": 1}


def test_pickle_from_another_process_is_refused_unless_named():
    sid = f"pytest-pickle-{_os.getpid()}"
    server = weft.Server(sid)
    try:
        with pytest.raises(weft.InvalidArgument, match="keep.anything"):
            server.register(Unsafe, UnsafeImpl(), name="unsafe")
        # Nothing was registered: the name is free for the opt-in below.
        server.register(Unsafe, UnsafeImpl(), name="unsafe", allow_pickle=["keep.anything"])
        server.start()
        with pytest.raises(weft.InvalidArgument, match="'give'"):
            weft.connect(Unsafe, name="unsafe", address=f"ipc://{sid}")
        with weft.connect(Unsafe, name="unsafe", address=f"ipc://{sid}", allow_pickle=["give"]) as u:
            assert u.keep([1, 2]) == 1
            assert u.give() == {"x": 1}
    finally:
        server.shutdown()


def test_an_allowed_pickle_parameter_runs_the_clients_code(tmp_path, run_python):
    # Why the default refuses: once a parameter is allowed, a client's bytes run as the server.
    sid = f"pytest-pickle2-{_os.getpid()}"
    server = weft.Server(sid)
    server.register(Unsafe, UnsafeImpl(), name="unsafe", allow_pickle=["keep.anything"])
    server.start()
    marker = tmp_path / "ran"
    try:
        code = (
            "import os, weft, test_rpc\n"
            "class Evil:\n"
            f"    def __reduce__(self): return (os.system, ('touch {marker}',))\n"
            f"with weft.connect(test_rpc.Unsafe, name='unsafe', address='ipc://{sid}', allow_pickle=['give']) as u:\n"
            "    u.keep(Evil())\n"
        )
        p = run_python(code)
        assert p.wait(timeout=60) == 0
        assert marker.exists()
    finally:
        server.shutdown()


@pytest.mark.skipif(_os.geteuid() != 0, reason="needs root to become another uid (CI runs as root)")
def test_another_uid_is_refused_unless_allowed_and_then_works_without_the_pool(run_python):
    code = (
        "import os, numpy as np, weft, rpc_demo\n"
        "os.setgroups([]); os.setgid(65534); os.setuid(65534)\n"
        "try:\n"
        "    s = weft.connect(rpc_demo.Store, name='store', address='ipc://{sid}')\n"
        "except weft.PermissionDenied:\n"
        "    print('refused', flush=True); raise SystemExit(0)\n"
        "with s:\n"
        "    assert s.increment(3) == 3\n"
        "    pts = s.points(20000)\n"  # 480 KB: inline, not through the pool
        "    assert pts.shape == (20000, 3) and pts[-1, -1] == 59999\n"
        "print('served', flush=True)\n"
    )
    for allow, expect in (((), "refused"), ((65534,), "served")):
        sid = f"pytest-uid-{_os.getpid()}-{len(allow)}"
        server = weft.Server(sid, allow_uids=allow)
        server.register(rpc_demo.Store, rpc_demo.StoreImpl(), name="store", allow_pickle=["stash.anything"])
        server.start()
        try:
            p = run_python(code.replace("{sid}", sid), stdout=_subprocess.PIPE, text=True)
            out, _ = p.communicate(timeout=60)
            assert p.returncode == 0 and out.strip() == expect, out
        finally:
            server.shutdown()


# ---- a transferable written in the seed's style: annotated fields, no __init__, no @dataclass -----

import struct as _struct


@weft.transferable
class SeedMatrix:
    rows: int
    cols: int
    data: np.ndarray

    def serialize(mat: "SeedMatrix") -> bytes:
        return _struct.pack(">II", mat.rows, mat.cols) + mat.data.tobytes()

    def deserialize(raw: bytes) -> "SeedMatrix":
        rows, cols = _struct.unpack_from(">II", raw)
        arr = np.frombuffer(raw, dtype=np.float64, offset=8).reshape(rows, cols)
        return SeedMatrix(rows=rows, cols=cols, data=arr.copy())


@weft.contract(namespace="demo.compute", version="0.1.0")
class Compute:
    def transform(self, mat: SeedMatrix) -> SeedMatrix: ...


class ComputeImpl:
    def transform(self, mat: SeedMatrix) -> SeedMatrix:
        return SeedMatrix(rows=mat.rows, cols=mat.cols, data=mat.data * 2)


def test_a_transferable_in_the_seed_style_crosses_processes():
    sid = f"pytest-seed-{_os.getpid()}"
    server = weft.Server(sid)
    server.register(Compute, ComputeImpl(), name="compute")
    server.start()
    try:
        m = SeedMatrix(rows=2, cols=3, data=np.arange(6, dtype=np.float64).reshape(2, 3))
        with weft.connect(Compute, name="compute", address=f"ipc://{sid}") as c:
            out = c.transform(m)
        assert (out.rows, out.cols) == (2, 3)
        assert np.array_equal(out.data, m.data * 2)
    finally:
        server.shutdown()


def test_register_after_shutdown_is_refused():
    sid = f"pytest-shut-{_os.getpid()}"
    server = weft.Server(sid)
    server.register(Counter, CounterImpl(), name="before")  # control: before shutdown it works
    server.start()
    server.shutdown()
    with pytest.raises(weft.Closed):
        server.register(Counter, CounterImpl(), name="after")
    with pytest.raises(weft.NotFound):
        weft.connect(Counter, name="after")  # nothing was registered in this process either


def test_a_server_never_shut_down_leaves_no_shared_memory(run_python):
    sid = f"pytest-noshut-{_os.getpid()}"
    pool = f"/dev/shm/weft.rpc.{sid}.pool"
    code = (
        "import os, sys, weft, test_rpc\n"
        f"s = weft.Server({sid!r})\n"
        "s.register(test_rpc.Counter, test_rpc.CounterImpl(), name='c')\n"
        "s.start()\n"
        f"print(os.path.exists({pool!r}), flush=True)\n"  # control: it exists while serving
    )
    p = run_python(code, stdout=_subprocess.PIPE, text=True)
    out, _ = p.communicate(timeout=60)
    assert p.returncode == 0 and out.strip() == "True", out
    assert not _os.path.exists(pool)


def test_a_hand_built_contract_cannot_slip_pickle_past_register():
    c = weft.Contract("demo.hand", "Hand", "1.0.0", [weft.rpc.Method("keep", "write", ["pickle"], "i64")])

    class Hand:
        __weft_contract__ = c

        def keep(self, x):
            return 1

    server = weft.Server(f"pytest-hand-{_os.getpid()}")
    try:
        with pytest.raises(weft.InvalidArgument, match="keep.arg0"):
            server.register(Hand, Hand(), name="hand")
    finally:
        server.shutdown()


@weft.contract(namespace="test.parity", version="1")
class Typed:
    def f(self, a: int) -> int: ...

    def g(self, s: str, x: float) -> str: ...

    def h(self, b: bytes) -> int: ...

    def n(self, a: np.ndarray) -> float: ...


class TypedImpl:
    def f(self, a):
        return "not an int" if a == 7 else a

    def g(self, s, x):
        return f"{s}:{x}"

    def h(self, b):
        return len(bytes(b))

    def n(self, a):
        return float(np.asarray(a).sum())


def test_the_in_process_proxy_checks_arguments_and_results_as_a_remote_one():
    """One codec layer for every transport: the same calls succeed, and fail with the same
    errors, in this process and from another one."""
    name = f"parity-{_os.getpid()}"
    server = weft.Server(name)
    server.register(Typed, TypedImpl(), name="typed")
    server.start()
    calls = [("f", (5,), {}), ("f", (np.int64(6),), {}), ("f", (True,), {}), ("f", ("x",), {}), ("f", (1.5,), {}),
             ("f", (2 ** 70,), {}), ("f", (7,), {}), ("g", ("a",), {"x": 2}), ("g", ("a", "b"), {}),
             ("g", ("a",), {"y": 1.0}), ("h", (b"abc",), {}), ("h", (bytearray(4),), {}), ("h", (5,), {}),
             ("h", ([1, 2],), {}), ("n", ([1.0, 2.5],), {}), ("n", (np.ones(3),), {}), ("n", (["a"],), {})]

    def outcomes(proxy):
        out = []
        for method, args, kwargs in calls:
            try:
                r = getattr(proxy, method)(*args, **kwargs)
                out.append(("ok", type(r).__name__, r))
            except weft.Error as e:
                out.append((type(e).__name__,))
        return out

    try:
        with weft.connect(Typed, name="typed") as local, weft.connect(Typed, name="typed", address=server.address) as remote:
            assert isinstance(local, weft.Proxy) and isinstance(remote, weft.Proxy)  # one proxy type
            here, there = outcomes(local), outcomes(remote)
        assert here == there
        assert here[0] == ("ok", "int", 5) and here[2] == ("ok", "int", 1)  # True arrives as 1, as it would remotely
        assert here[3] == ("InvalidArgument",) and here[6] == ("InternalError",)  # a result that is not an i64
        assert here[12] == ("InvalidArgument",) and here[16] == ("InvalidArgument",)
    finally:
        server.shutdown()
