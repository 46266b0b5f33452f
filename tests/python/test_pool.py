"""weft.Pool: the binding's behaviour and error mapping."""

import os
import signal

import numpy as np
import pytest

import weft


@pytest.fixture
def pool_name(name):
    yield name
    try:
        weft.Pool.unlink(name)
    except weft.NotFound:
        pass


def test_allocate_write_read_release(pool_name):
    pool = weft.Pool(pool_name, bytes=1 << 20)
    b = pool.allocate(100)
    buf = pool.buffer(b)
    assert len(buf) == 128 and not buf.readonly
    buf[:5] = b"hello"
    assert bytes(pool.buffer(b)[:5]) == b"hello"
    assert pool.stats()["blocks_in_use"] == 1
    pool.release(b)
    assert pool.stats()["blocks_in_use"] == 0
    with pytest.raises(weft.InvalidArgument):
        pool.release(b)


def test_numpy_array_in_shared_memory(pool_name):
    pool = weft.Pool(pool_name, bytes=1 << 20)
    b = pool.allocate(32 * 32 * 4)
    a = pool.array(b, (32, 32), "float32")
    a[:] = 1.5
    again = pool.array(b, (32, 32), np.float32)
    assert np.shares_memory(a, again) and again.sum() == 1.5 * 1024
    big = pool.allocate(1 << 20)  # a large block, its own segment
    arr = pool.array(big, (1 << 18,), "int32")
    arr[:] = 7
    assert int(arr.sum()) == 7 << 18
    del a, again, arr
    pool.release(b)
    pool.release(big)


def test_errors(pool_name):
    pool = weft.Pool(pool_name, bytes=128 << 10, max_arenas=1, max_block=1 << 20)
    with pytest.raises(weft.TooLarge):
        pool.allocate((1 << 20) + 1)
    pool.allocate(65536)
    pool.allocate(65536)
    with pytest.raises(weft.WouldBlock):
        pool.allocate(64)
    with pytest.raises(weft.NotFound):
        weft.Pool(pool_name + ".none", create=False)
    with pytest.raises(weft.InvalidArgument):
        pool.hold(10 ** 9)


def test_holds_across_processes_and_recovery(pool_name, run_python):
    pool = weft.Pool(pool_name, bytes=1 << 20)
    child = run_python(
        "import os, signal, weft; p = weft.Pool(%r, create=False);"
        "[p.allocate(1000) for _ in range(10)]; os.kill(os.getpid(), signal.SIGKILL)" % pool_name)
    assert child.wait(10) == -signal.SIGKILL
    assert pool.stats()["blocks_in_use"] == 10
    assert pool.recover_dead() == 1
    assert pool.stats()["blocks_in_use"] == 0
    snap = weft.Pool.snapshot(pool_name)
    assert [h["pid"] for h in snap["holders"]] == [os.getpid()]
