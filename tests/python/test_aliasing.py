"""Memory handed out zero-copy is never silently aliased once it is reused: topic loans after
publish, channel records after their block, descriptors asked for late."""

import select

import numpy as np
import pytest

import weft


def test_a_published_loan_cannot_be_written(topic):
    pub = weft.Publisher(topic, pool_bytes=1 << 20)
    sub = weft.Subscriber(topic)
    view = pub.loan(4)
    view[:] = b"abcd"
    pub.publish(view)
    with pytest.raises(ValueError):
        view[:] = b"zzzz"  # released
    arr = pub.loan_array((4,), np.uint8)
    arr[:] = 1
    pub.publish(arr)
    with pytest.raises(ValueError):
        arr[:] = 7  # read-only now
    with sub.take(timeout=1) as s:
        assert s.bytes() == b"abcd"
    with sub.take(timeout=1) as s:
        assert s.bytes() == b"\x01" * 4  # what was published, not a later write
    sub.close()
    pub.close()


def test_an_alias_of_a_loan_refuses_the_publish(topic):
    pub = weft.Publisher(topic, pool_bytes=1 << 20)
    view = pub.loan(8)
    alias = np.frombuffer(view, dtype=np.uint8)
    with pytest.raises(weft.InvalidArgument, match="still alive"):
        pub.publish(view)
    with pytest.raises(weft.InvalidArgument, match="still alive"):
        pub.discard(view)
    del alias
    pub.publish(view)  # the loan was kept: it publishes once the alias is gone
    pub.close()


def test_an_array_outliving_a_channel_record_is_refused(name):
    tx = weft.Channel.create(name, capacity=4096)
    rx = weft.Channel.open(name)
    tx.write(b"\x01" * 8)
    tx.write(b"\x02" * 8)
    with pytest.raises(weft.InvalidArgument, match="outlives"):
        with rx.read(timeout=1) as view:
            kept = np.frombuffer(view, dtype=np.uint8)
    assert rx.held == 0  # released all the same: the channel goes on
    assert rx.read_bytes(timeout=1) == b"\x02" * 8
    del kept
    weft.Channel.unlink(name)


def test_a_descriptor_asked_for_after_a_miss_still_wakes(name, topic):
    tx = weft.Channel.create(name, capacity=4096)
    rx = weft.Channel.open(name)
    with pytest.raises(weft.WouldBlock):
        rx.read_bytes(timeout=0)
    fd = rx.fileno()
    tx.write(b"x")
    assert select.select([fd], [], [], 5.0)[0] == [fd]
    assert rx.read_bytes(timeout=0) == b"x"
    weft.Channel.unlink(name)
    pub = weft.Publisher(topic, pool_bytes=1 << 20)
    sub = weft.Subscriber(topic)
    with pytest.raises(weft.WouldBlock):
        sub.take(timeout=0)
    sfd = sub.fileno()
    view = pub.loan(1)
    view[:] = b"y"
    pub.publish(view)
    assert select.select([sfd], [], [], 5.0)[0] == [sfd]
    with sub.take(timeout=0) as s:
        assert s.bytes() == b"y"
    sub.close()
    pub.close()


def test_objects_say_what_they_are(name, topic, tmp_path):
    pub = weft.Publisher(topic, pool_bytes=1 << 20)
    sub = weft.Subscriber(topic, on_full="drop_oldest")
    assert repr(pub) == f"<weft.Publisher {topic!r} subscribers=1 loans=0>"
    assert repr(sub) == f"<weft.Subscriber {topic!r} on_full='drop_oldest'>"
    view = pub.loan(3)
    view[:] = b"abc"
    pub.publish(view)
    sample = sub.take(timeout=1)
    assert repr(sample) == "<weft.Sample seq=1 publisher=0 3 bytes>"
    sample.release()
    assert repr(sample).endswith("released>")
    with weft.Log(str(tmp_path / "log")) as log:
        log.append(b"x")
        tail = log.tail(0)
        assert repr(tail) == "<weft.Tail position=0>"
        tail.close()
    server = weft.Server(name)
    assert repr(server) == f"<weft.Server ipc://{name} resources=[] not started>"
    server.shutdown()
    assert repr(server).endswith("shut down>")
    sub.close()
    pub.close()
