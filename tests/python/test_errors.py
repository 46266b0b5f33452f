"""The status code table as Python sees it, and the one overflow vocabulary."""

import pytest

import weft
from weft import _errors, _native


def test_every_code_has_its_class_and_retry_guidance():
    table = _native.codes()
    assert [row[0] for row in table] == list(range(1, len(table) + 1))
    retry = ("no", "when_ready", "backoff", "reconnect")
    for number, name, class_name, r, description in table:
        cls = getattr(weft, class_name)
        assert issubclass(cls, weft.Error) and cls.code == number and cls.retry == retry[r]
        assert description
    assert weft.ResourceExhausted.code == 21 and weft.ResourceExhausted.retry == "backoff"
    assert weft.Unavailable.retry == "backoff" and weft.WouldBlock.retry == "when_ready"


def test_the_import_check_catches_a_class_that_differs(monkeypatch):
    monkeypatch.setattr(_errors.Busy, "code", 99)
    with pytest.raises(ImportError, match="Busy says code 99"):
        _errors._check_against_native()
    monkeypatch.undo()
    _errors._check_against_native()  # and passes again


def test_connection_errors_are_connection_errors():
    for cls in (weft.PeerDead, weft.Closed, weft.Unavailable):
        assert issubclass(cls, ConnectionError)


def test_channel_fail_policy_refuses_at_once(name):
    tx = weft.Channel.create(name, capacity=256, on_full="fail")
    rx = weft.Channel.open(name)
    sent = 0
    with pytest.raises(weft.ResourceExhausted):
        for _ in range(100):
            tx.write(b"x" * 56, timeout=None)  # never waits, whatever the timeout
            sent += 1
    assert sent == 4
    assert [rx.read_bytes(timeout=0) for _ in range(4)] == [b"x" * 56] * 4
    del tx, rx
    weft.Channel.unlink(name)


def test_topic_fail_policy_refuses_the_publish(name):
    pub = weft.Publisher(name, pool_bytes=1 << 20, queue_depth=2)
    sub = weft.Subscriber(name, on_full="fail")
    def publish(data):
        view = pub.loan(len(data))
        view[:] = data
        try:
            pub.publish(view, timeout=None)
        except weft.Error:
            pub.discard(view)
            raise

    publish(b"a")
    publish(b"b")
    with pytest.raises(weft.ResourceExhausted):
        publish(b"c")  # at once, although the timeout is none
    assert sub.counters()["drops_newest"] == 1
    with pytest.raises(weft.InvalidArgument, match="'sideways'"):
        weft.Subscriber(name, on_full="sideways")
    sub.close()
    pub.close()
    weft.unlink_topic(name)


def test_the_codes_page_lists_every_code():
    import pathlib
    page = (pathlib.Path(__file__).parents[2] / "docs" / "errors.md").read_text()
    for number, name, class_name, _r, _d in _native.codes():
        assert f"| {number} | `{name}` | `weft.{class_name}` |" in page, name
