"""Contracts from Python: canonical text, hash stability across languages, mismatch details."""

import hashlib
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

    with pytest.raises(weft.ContractMismatch) as e:
        weft.connect(StoreV2, name="store", address=f"ipc://{sid}")
    assert "version 1.0 on the server, 2.0 on the client" in str(e.value)
    assert "method 'points' only on the server" in str(e.value)
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
    with pytest.raises(weft.PeerDead):
        s.nap(30.0)
    s.close()


def test_a_timeout_ends_a_call(store_server):
    sid, _ = store_server
    s = weft.connect(rpc_demo.Store, name="store", address=f"ipc://{sid}", timeout=0.05)
    with pytest.raises(weft.Timeout):
        s.nap(1.0)
    s.close()
