"""weft.Channel: the binding's behaviour and error mapping (the ring itself is tested in C++)."""

import os
import selectors
import signal
import threading
import time

import numpy as np
import pytest

import weft


def test_write_and_read_bytes(name):
    tx = weft.Channel.create(name, capacity=1 << 16)
    rx = weft.Channel.open(name)
    assert tx.role == "producer" and rx.role == "consumer"
    tx.write(b"hello")
    tx.write(bytearray(b"world"))
    tx.write(memoryview(b"!"))
    assert rx.read_bytes(timeout=1) == b"hello"
    assert rx.read_bytes(timeout=1) == b"world"
    assert rx.read_bytes(timeout=1) == b"!"


def test_reserve_commits_on_clean_exit_and_discards_on_error(name):
    tx = weft.Channel.create(name, capacity=1 << 16)
    rx = weft.Channel.open(name)
    with tx.reserve(4) as buf:
        assert isinstance(buf, memoryview) and not buf.readonly
        buf[:] = b"abcd"
    with pytest.raises(RuntimeError):
        with tx.reserve(4) as buf:
            buf[:] = b"lost"
            raise RuntimeError("abandon")
    tx.write(b"next")
    assert rx.read_bytes(timeout=1) == b"abcd"
    assert rx.read_bytes(timeout=1) == b"next"


def test_read_view_is_zero_copy_and_invalid_after_block(name):
    tx = weft.Channel.create(name, capacity=1 << 20)
    rx = weft.Channel.open(name)
    data = np.arange(1000, dtype=np.float32)
    with tx.reserve(data.nbytes) as buf:
        np.frombuffer(buf, dtype=np.float32)[:] = data  # written in place
    with rx.read(timeout=1) as view:
        assert view.readonly
        arr = np.frombuffer(view, dtype=np.float32)
        assert arr.sum() == data.sum()
        kept = view
        del arr
    with pytest.raises(ValueError):
        kept[0]  # released memoryview
    assert rx.held == 0


def test_numpy_view_points_into_shared_memory(name):
    tx = weft.Channel.create(name, capacity=1 << 20)
    rx = weft.Channel.open(name)
    with tx.reserve(8 * 16) as buf:
        a = np.frombuffer(buf, dtype=np.int64)
        a[:] = np.arange(16)
        del a
    with rx.read(timeout=1) as view:
        first = np.frombuffer(view, dtype=np.int64)
        second = np.frombuffer(view, dtype=np.int64)
        assert np.shares_memory(first, second)
        assert list(first) == list(range(16))
        del first, second


def test_batch_calls(name):
    tx = weft.Channel.create(name, capacity=1 << 16)
    rx = weft.Channel.open(name)
    assert tx.write_batch([b"a", b"bb", b"ccc"]) == 3
    assert rx.read_batch(max_records=2) == [b"a", b"bb"]
    assert rx.read_batch() == [b"ccc"]


def test_error_mapping(name):
    tx = weft.Channel.create(name, capacity=4096, max_record=100)
    rx = weft.Channel.open(name)
    with pytest.raises(weft.WouldBlock) as e:
        rx.read_bytes(timeout=0)
    assert isinstance(e.value, BlockingIOError) and isinstance(e.value, weft.Error)
    with pytest.raises(weft.Timeout) as e:
        rx.read_bytes(timeout=0.02)
    assert isinstance(e.value, TimeoutError)
    with pytest.raises(weft.TooLarge):
        tx.write(b"x" * 101, timeout=None)  # fails at once, never blocks
    with pytest.raises(weft.AlreadyExists):
        weft.Channel.create(name)
    with pytest.raises(weft.Busy):
        weft.Channel.open(name, role="consumer")
    with pytest.raises(weft.NotFound):
        weft.Channel.open(name + ".missing")
    with pytest.raises(weft.InvalidArgument) as e:
        weft.Channel.create("no/slashes")
    assert isinstance(e.value, ValueError)
    with pytest.raises(weft.InvalidArgument):
        weft.Channel.create(name + "x", on_full="sometimes")
    with pytest.raises(weft.InvalidArgument):
        rx.write(b"consumers cannot write")
    tx.close()
    with pytest.raises(weft.Closed):
        rx.read_bytes(timeout=1)
    with pytest.raises(weft.Closed):
        tx.write(b"after close")
    assert tx.closed


def test_drop_policies_are_counted(name):
    tx = weft.Channel.create(name, capacity=256, max_record=56, on_full="drop_newest")
    rx = weft.Channel.open(name)
    for i in range(10):
        tx.write(bytes([i]) * 56, timeout=0)
    assert tx.stats()["drops_newest"] == 6
    assert [r[0] for r in rx.read_batch()] == [0, 1, 2, 3]


def test_iteration_ends_when_producer_closes(name):
    tx = weft.Channel.create(name, capacity=1 << 16)
    rx = weft.Channel.open(name)
    tx.write_batch([b"1", b"2", b"3"])
    tx.close()
    assert list(rx) == [b"1", b"2", b"3"]


def test_gil_is_released_while_waiting(name):
    tx = weft.Channel.create(name, capacity=1 << 16)
    rx = weft.Channel.open(name)
    got = []

    def reader():
        try:
            got.append(rx.read_bytes(timeout=10))
        except weft.Error as e:  # pragma: no cover - reported below
            got.append(e)

    t = threading.Thread(target=reader)
    t.start()
    time.sleep(0.1)  # the reader is blocked inside read_bytes; this thread still runs Python
    tx.write(b"from another thread")
    t.join(10)
    assert got == [b"from another thread"]


def test_fileno_works_with_selectors(name, run_python):
    rx = weft.Channel.create(name, capacity=1 << 16, role="consumer")
    sel = selectors.DefaultSelector()
    sel.register(rx.fileno(), selectors.EVENT_READ)
    with pytest.raises(weft.WouldBlock):
        rx.read_bytes(timeout=0)  # arms the descriptor
    assert sel.select(timeout=0) == []
    child = run_python(
        "import weft, time; tx = weft.Channel.open(%r, role='producer');"
        "time.sleep(0.05); tx.write(b'ping'); time.sleep(0.2)" % name)
    events = sel.select(timeout=10)
    assert len(events) == 1
    assert rx.read_bytes(timeout=0) == b"ping"
    child.wait(10)


def test_peer_death_raises_peer_dead_after_committed_records(name, run_python):
    rx = weft.Channel.create(name, capacity=1 << 16, role="consumer")
    child = run_python(
        "import os, signal, weft; tx = weft.Channel.open(%r, role='producer');"
        "tx.write(b'one'); tx.write(b'two'); os.kill(os.getpid(), signal.SIGKILL)" % name)
    assert child.wait(10) == -signal.SIGKILL
    assert rx.read_bytes(timeout=5) == b"one"
    assert rx.read_bytes(timeout=5) == b"two"
    with pytest.raises(weft.PeerDead):
        rx.read_bytes(timeout=10)
    # A restarted producer re-attaches.
    again = run_python("import weft; weft.Channel.open(%r, role='producer').write(b'three')" % name)
    assert again.wait(10) == 0
    assert rx.read_bytes(timeout=5) == b"three"


def test_stats_and_snapshot(name):
    tx = weft.Channel.create(name, capacity=1 << 16)
    rx = weft.Channel.open(name)
    tx.write(b"abc")
    rx.read_bytes(timeout=1)
    s = tx.stats()
    assert s["records_in"] == 1 and s["bytes_in"] == 3 and s["records_out"] == 1
    snap = weft.Channel.snapshot(name)
    assert snap["producer_pid"] == os.getpid()
    assert snap["producer_state"] == "attached"
    assert "Channel" in repr(tx)


def test_asyncio_read_and_write(name):
    import asyncio
    tx = weft.Channel.create(name, capacity=256, max_record=56)
    rx = weft.Channel.open(name)

    async def main():
        async def produce():
            for i in range(20):  # more than the ring holds: write_async must wait for room
                await tx.write_async(bytes([i]) * 56, timeout=10)

        async def consume():
            got = []
            for _ in range(20):
                got.append((await rx.read_bytes_async(timeout=10))[0])
            return got

        _, got = await asyncio.gather(produce(), consume())
        return got

    assert asyncio.run(main()) == list(range(20))
    with pytest.raises(weft.Timeout):
        asyncio.run(rx.read_bytes_async(timeout=0.05))

    async def zero_copy():  # the borrowing forms: reserve in place, read in place
        async def produce():
            for i in range(20):
                with await tx.reserve_async(56, timeout=10) as buf:
                    buf[:] = bytes([i]) * 56

        async def consume():
            got = []
            for _ in range(20):
                with await rx.read_async(timeout=10) as view:
                    got.append(view[0] + view[55])
            return got

        _, got = await asyncio.gather(produce(), consume())
        return got

    assert asyncio.run(zero_copy()) == [2 * i for i in range(20)]


def test_a_capacity_too_small_for_any_record_is_refused(name):
    for capacity in (8, 64, 128):
        with pytest.raises(weft.InvalidArgument, match="144"):
            weft.Channel.create(name, capacity=capacity)
    ch = weft.Channel.create(name, capacity=144)
    assert ch.max_record == 8
    ch.close()
