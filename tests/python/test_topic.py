"""weft.Publisher / weft.Subscriber: the binding's behaviour and error mapping."""

import os
import signal

import numpy as np
import pytest

import weft


def test_publish_and_take_zero_copy(topic):
    pub = weft.Publisher(topic, pool_bytes=1 << 20)
    sub = weft.Subscriber(topic)
    view = pub.loan(5)
    view[:] = b"hello"
    pub.publish(view)
    with sub.take(timeout=1) as sample:
        assert sample.bytes() == b"hello" and sample.seq == 1
        assert sample.view.readonly
    with pytest.raises(weft.InvalidArgument):
        pub.publish(view)  # consumed


def test_numpy_loan_array(topic):
    pub = weft.Publisher(topic, pool_bytes=1 << 20)
    sub = weft.Subscriber(topic)
    frame = pub.loan_array((48, 64, 3), np.uint8)
    frame[:] = 7
    pub.publish(frame)
    with sub.take(timeout=1) as sample:
        img = sample.array(np.uint8, (48, 64, 3))
        assert img.shape == (48, 64, 3) and int(img.sum()) == 7 * 48 * 64 * 3
        del img


def test_history_policies_and_errors(topic):
    pub = weft.Publisher(topic, queue_depth=4, keep_history=2, pool_bytes=1 << 20)
    for i in range(5):
        v = pub.loan(1)
        v[0] = i
        pub.publish(v)
    late = weft.Subscriber(topic, history=2, on_full="drop_newest")
    assert [late.take(timeout=1).bytes()[0] for _ in range(2)] == [3, 4]
    for i in range(6):
        v = pub.loan(1)
        v[0] = i
        pub.publish(v, timeout=0)
    assert late.counters()["drops_newest"] == 2
    with pytest.raises(weft.InvalidArgument):
        weft.Subscriber(topic, on_full="sometimes")
    with pytest.raises(weft.InvalidArgument):
        weft.Publisher(topic + "x", queue_depth=100)
    blocked = weft.Subscriber(topic)
    for i in range(4):
        pub.publish(pub.loan(1), timeout=0)
    with pytest.raises(weft.Timeout):
        pub.publish(pub.loan(1), timeout=0.02)
    with pytest.raises(weft.WouldBlock):
        weft.Subscriber(topic).take(timeout=0)
    del blocked


def test_subscriber_in_another_process(topic, run_python):
    sub = weft.Subscriber(topic, pool_bytes=1 << 20)
    child = run_python(
        "import weft; pub = weft.Publisher(%r);"
        "[pub.publish(pub.loan_array(4, 'int32')) for _ in range(3)]" % topic)
    assert child.wait(20) == 0
    got = [sub.take(timeout=5).seq for _ in range(3)]
    assert got == [1, 2, 3]


def test_fileno_with_selectors(topic):
    import selectors
    pub = weft.Publisher(topic, pool_bytes=1 << 20)
    sub = weft.Subscriber(topic)
    sel = selectors.DefaultSelector()
    sel.register(sub.fileno(), selectors.EVENT_READ)
    with pytest.raises(weft.WouldBlock):
        sub.take(timeout=0)  # arms the descriptor
    assert sel.select(timeout=0) == []
    pub.publish(pub.loan(3))
    assert len(sel.select(timeout=5)) == 1
    with sub.take(timeout=0) as sample:
        assert sample.seq == 1


def test_a_topic_can_be_removed(topic):
    pub = weft.Publisher(topic, pool_bytes=1 << 20)
    sub = weft.Subscriber(topic)
    assert os.path.exists("/dev/shm/weft." + topic) and os.path.exists("/dev/shm/weft." + topic + ".pool")
    weft.unlink_topic(topic)
    assert not os.path.exists("/dev/shm/weft." + topic)
    assert not os.path.exists("/dev/shm/weft." + topic + ".pool")
    view = pub.loan(3)  # attached endpoints keep working
    view[:] = b"abc"
    pub.publish(view, timeout=1)
    with sub.take(timeout=1) as s:
        assert s.bytes() == b"abc"
    with pytest.raises(weft.NotFound):
        weft.unlink_topic(topic)
    pub.close()
    sub.close()


def test_options_that_differ_from_an_existing_topic_are_refused(topic):
    pub = weft.Publisher(topic, queue_depth=8, pool_bytes=1 << 20)
    with pytest.raises(weft.InvalidArgument, match="queue depth 8"):
        weft.Publisher(topic, queue_depth=16)
    with pytest.raises(weft.InvalidArgument, match="queue depth 8"):
        weft.Subscriber(topic, queue_depth=64)
    weft.Subscriber(topic).close()  # control: joining without asking for options works
    weft.Subscriber(topic, queue_depth=8).close()  # and so does asking for what it has
    pub.close()
