"""When calls fail, from Python: weft.connect(..., retry=, hedge=, breaker=) against a server in
this process reached over ipc:// (the same code serves tcp:// and nats://)."""

import os
import threading
import time

import pytest

import weft


@weft.contract(namespace="test.resilience", version="1")
class Flaky:
    @weft.read
    def get(self) -> str: ...

    def put(self) -> str: ...

    @weft.read
    def slow(self) -> str: ...


class FlakyImpl:
    def __init__(self):
        self.failures = 0
        self.calls = 0
        self.slow_calls = 0
        self.cancelled = 0

    def _flaky(self) -> str:
        self.calls += 1
        if self.failures > 0:
            self.failures -= 1
            raise weft.Unavailable("not now")
        return "ok"

    def get(self) -> str:
        return self._flaky()

    def put(self) -> str:
        return self._flaky()

    def slow(self) -> str:
        self.slow_calls += 1
        if self.slow_calls == 1:
            until = time.monotonic() + 4.0
            while time.monotonic() < until:
                if weft.cancelled():
                    self.cancelled += 1
                    return "cancelled"
                time.sleep(0.001)
            return "slow"
        return "fast"


@pytest.fixture
def served():
    impl = FlakyImpl()
    server = weft.Server(f"pyresil-{os.getpid()}-{threading.get_ident() % 100000}")
    server.register(Flaky, impl, name="flaky")
    server.start()
    yield server, impl
    server.shutdown()


def test_reads_are_retried_and_writes_never(served):
    server, impl = served
    with weft.connect(Flaky, name="flaky", address=server.address) as plain:
        impl.failures = 1
        with pytest.raises(weft.Unavailable):
            plain.get()  # control: no retry
    with weft.connect(Flaky, name="flaky", address=server.address, retry=weft.Retry(attempts=3, backoff=0.005)) as p:
        impl.calls, impl.failures = 0, 2
        assert p.get() == "ok" and impl.calls == 3
        impl.calls, impl.failures = 0, 1
        with pytest.raises(weft.Unavailable):
            p.put()
        assert impl.calls == 1
    with pytest.raises(weft.InvalidArgument):
        weft.connect(Flaky, name="flaky", address=server.address, retry="often")


def test_a_slow_read_is_answered_by_its_hedge(served):
    server, impl = served
    with weft.connect(Flaky, name="flaky", address=server.address, hedge=0.05) as p:
        assert p.slow() == "fast"
        for _ in range(300):
            if impl.cancelled:
                break
            time.sleep(0.01)
        assert impl.cancelled == 1 and impl.slow_calls == 2


def test_the_breaker_fails_fast_while_the_server_is_gone(served):
    server, impl = served
    p = weft.connect(Flaky, name="flaky", address=server.address, breaker=weft.Breaker(failures=2, reset=60.0))
    assert p.get() == "ok"
    server.shutdown()
    for _ in range(2):
        with pytest.raises((weft.Unavailable, weft.PeerDead, weft.Closed, weft.NotFound)):
            p.get()
    with pytest.raises(weft.Unavailable, match="circuit open"):
        p.get()
    p.close()
