"""Misuse from Python that used to crash or mislead (docs/security.md): close() from another
thread while a call waits, publish() timeouts and dead subscribers."""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

import weft


def _close_while_waiting(obj, wait):
    """Runs wait() in a thread, closes obj from this one while it waits; returns what wait raised."""
    out = {}

    def run():
        try:
            wait()
            out["error"] = None
        except BaseException as e:  # noqa: BLE001 - the test inspects it
            out["error"] = e

    t = threading.Thread(target=run)
    t.start()
    time.sleep(0.2)  # the call is waiting by now (its timeout is far away)
    assert t.is_alive()
    obj.close()
    t.join(timeout=10)
    assert not t.is_alive(), "close() did not end the wait"
    return out["error"]


@pytest.mark.parametrize("round_", range(10))
def test_closing_a_channel_while_read_bytes_waits_raises_closed(name, round_):
    tx = weft.Channel.create(name, capacity=1 << 16)
    rx = weft.Channel.open(name)
    err = _close_while_waiting(rx, lambda: rx.read_bytes(timeout=30))
    assert isinstance(err, weft.Closed), err
    with pytest.raises(weft.Closed):
        rx.read_bytes(timeout=0)
    tx.close()


@pytest.mark.parametrize("round_", range(10))
def test_closing_a_channel_while_write_waits_raises_closed(name, round_):
    tx = weft.Channel.create(name, capacity=4096)
    rx = weft.Channel.open(name)
    while True:  # fill the ring
        try:
            tx.write(b"x" * 512, timeout=0)
        except weft.WouldBlock:
            break
    err = _close_while_waiting(tx, lambda: tx.write(b"y" * 512, timeout=30))
    assert isinstance(err, weft.Closed), err
    # The consumer learns of it as of any close.
    while True:
        try:
            rx.read_bytes(timeout=0)
        except weft.WouldBlock:
            pytest.fail("the producer's close was not seen")
        except weft.Closed:
            break
    rx.close()


def _topic(name):
    return name


@pytest.fixture
def topic(name):
    yield name
    for n, kind in ((name, "segment"), (name + ".pool", "pool")):
        try:
            (weft.Pool.unlink if kind == "pool" else weft.Channel.unlink)(n)
        except weft.Error:
            pass


@pytest.mark.parametrize("round_", range(10))
def test_closing_a_subscriber_while_take_waits_raises_closed(topic, round_):
    pub = weft.Publisher(topic, pool_bytes=1 << 20)
    sub = weft.Subscriber(topic)
    err = _close_while_waiting(sub, lambda: sub.take(timeout=30))
    assert isinstance(err, weft.Closed), err
    # The publisher goes on without it.
    view = pub.loan(4)
    view[:] = b"ping"
    pub.publish(view, timeout=1)
    pub.close()


def test_closing_a_publisher_while_publish_waits_for_room_raises_closed(topic):
    pub = weft.Publisher(topic, queue_depth=2, pool_bytes=1 << 20)
    sub = weft.Subscriber(topic)
    for _ in range(2):
        pub.publish(pub.loan(8), timeout=1)
    view = pub.loan(8)
    err = _close_while_waiting(pub, lambda: pub.publish(view, timeout=30))
    assert isinstance(err, weft.Closed), err
    sub.close()


def test_publish_waits_for_room_until_its_timeout(topic):
    pub = weft.Publisher(topic, queue_depth=2, pool_bytes=1 << 20)
    sub = weft.Subscriber(topic)
    for _ in range(2):
        pub.publish(pub.loan(8), timeout=1)
    # The subscriber makes room after 0.3 s: a publish with a 5 s timeout waits for it.
    threading.Timer(0.3, lambda: sub.take(timeout=1).release()).start()
    start = time.monotonic()
    pub.publish(pub.loan(8), timeout=5)
    assert time.monotonic() - start >= 0.2  # it waited rather than failing at once
    # With nobody making room, the timeout is honoured and says Timeout.
    with pytest.raises(weft.Timeout):
        pub.publish(pub.loan(8), timeout=0.3)
    sub.close()
    pub.close()


def test_publish_skips_a_full_subscriber_that_died(topic, run_python):
    pub = weft.Publisher(topic, queue_depth=2, pool_bytes=1 << 20)
    child = run_python(f"import weft, time\ns = weft.Subscriber({topic!r})\nprint('ready', flush=True)\ntime.sleep(60)",
                       stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "ready"
    for _ in range(2):
        pub.publish(pub.loan(8), timeout=1)
    # Control: while it lives, its full queue holds the publisher back.
    with pytest.raises(weft.Timeout):
        pub.publish(pub.loan(8), timeout=0.2)
    threading.Timer(0.2, lambda: os.kill(child.pid, signal.SIGKILL)).start()
    pub.publish(pub.loan(8), timeout=10)  # skips the dead subscriber instead of timing out
    child.wait(timeout=10)
    pub.close()


# ---- misuse raises weft.Error subclasses ----------------------------------------------------------

def _misuses(name):
    pool = weft.Pool(name + ".p", bytes=1 << 20)
    ch = weft.Channel.create(name)
    block = pool.allocate(100)
    return [
        ("negative capacity", lambda: weft.Channel.create(name + ".x", capacity=-1)),
        ("capacity as text", lambda: weft.Channel.create(name + ".y", capacity="big")),
        ("timeout as text", lambda: ch.write(b"x", timeout="soon")),
        ("an int written", lambda: ch.write(5)),
        ("None written", lambda: ch.write(None)),
        ("negative allocation", lambda: pool.allocate(-1)),
        ("a bad dtype", lambda: pool.array(block, (5,), "nonsense")),
        ("an array larger than its block", lambda: pool.array(block, (500,), "float64")),
        ("a negative dimension", lambda: pool.array(block, (-1,), "uint8")),
        ("a non-contract class", lambda: weft.connect(object, "x")),
        ("hold of a non-method", lambda: weft.hold(5)),
    ], (pool, ch)


def test_every_misuse_raises_a_weft_error(name):
    cases, (pool, ch) = _misuses(name)
    try:
        for label, fn in cases:
            with pytest.raises(weft.InvalidArgument) as info:
                fn()
            # Still what Python code written against TypeError / ValueError expects.
            assert isinstance(info.value, TypeError) and isinstance(info.value, ValueError), label
            assert str(info.value), label
    finally:
        ch.close()
        pool.close()
        weft.Pool.unlink(name + ".p")
