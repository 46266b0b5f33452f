"""weft.Bus: the binding's behaviour (the algorithms are tested in C++, tests/bus/)."""

import asyncio
import os
import subprocess
import itertools

import pytest

import weft

_n = itertools.count()


@pytest.fixture
def shm_url():
    url = f"shm:pytest.bus.{os.getpid()}.{next(_n)}"
    yield url
    try:
        weft.Bus.unlink(url)
    except weft.NotFound:
        pass


def test_ingest_kinds_poll_and_parse():
    with weft.Bus(num_shards=2, capacity=1 << 16) as bus:
        assert bus.ingest_raw('{"token": "hello"}') is True
        assert bus.ingest({"token": "world"})[1] is not None
        assert bus.ingest_raw(b"\x00raw") and bus.ingest_raw(bytearray(b"ba")) and bus.ingest_raw(memoryview(b"mv"))
        shard, offset = bus.ingest("keyed", key="user-7")
        assert shard == bus.shard_of("user-7")
        batch = bus.poll(limit=100)
        assert len(batch) == 6
        by_data = {bytes(e.raw): e for e in batch}
        assert by_data[b'{"token":"world"}'].parse() == {"token": "world"}
        assert by_data[b'{"token": "hello"}'].text() == '{"token": "hello"}'
        assert by_data[b"keyed"].key == b"user-7" and by_data[b"keyed"].offset == offset
        assert by_data[b"\x00raw"].key is None
        assert batch.nbytes == sum(batch.sizes()) and len(batch.join()) == batch.nbytes
        assert sorted(batch.copy()) == sorted(by_data)
        assert len(bus.poll(limit=100)) == 0  # all committed by the poll
        s = bus.stats()
        assert s.ingested == 6 and s.events_ingested == 6 and s.dropped == 0
        assert s.group("default")["delivered"] == 6
        assert bus.health()["status"] == "ok"


def test_order_is_kept_per_key_and_batches_count():
    with weft.Bus(num_shards=4, capacity=1 << 20) as bus:
        for i in range(300):
            bus.ingest(str(i), key=f"k{i % 5}")
        assert bus.ingest_raw_batch([b"a", "b", bytearray(b"c")]) == 3
        assert bus.ingest_raw_batch([]) == 0
        got = {}
        with bus.subscribe("g") as c:
            for e in c.poll(1000):
                if e.key is not None:
                    got.setdefault(e.key, []).append(int(e.text()))
        for k, values in got.items():
            assert values == sorted(values) and len(values) == 60


def test_backpressure_modes_are_counted_and_typed():
    with weft.Bus(num_shards=1, capacity=4096, backpressure="drop_newest", groups=["slow"]) as bus:
        results = [bus.ingest_raw(b"x" * 100) for _ in range(100)]
        assert results.count(True) > 0 and results.count(False) > 0
        assert bus.stats().dropped_newest == results.count(False)
        assert bus.ingest(b"y")[1] is None  # full: dropped, no offset
    with weft.Bus(num_shards=1, capacity=4096, backpressure="fail_producer", groups=["slow"]) as bus:
        assert bus.backpressure == "fail"
        with pytest.raises(weft.ResourceExhausted):
            for _ in range(100):
                bus.ingest_raw(b"x" * 100)
        with pytest.raises(weft.ResourceExhausted):  # a full shard takes none: an error, not 0
            bus.ingest_raw_batch([b"z"] * 10)
    with weft.Bus(num_shards=1, capacity=4096, backpressure="block", groups=["slow"]) as bus:
        n = bus.ingest_raw_batch([b"x" * 100] * 100, timeout=0.05)
        assert 0 < n < 100  # the prefix that fit, like write(2)
        with pytest.raises(weft.Timeout):
            bus.ingest(b"x" * 100, timeout=0.05)
        with pytest.raises(weft.Timeout):
            bus.ingest_raw_batch([b"x" * 100], timeout=0.05)
        assert bus.stats().ingested == n
    with weft.Bus(num_shards=1, capacity=4096, backpressure="drop_oldest", groups=["slow"]) as bus:
        for _ in range(100):
            assert bus.ingest_raw(b"x" * 100)
        s = bus.stats()
        assert s.dropped_oldest > 0 and s.group("slow")["dropped"] == s.dropped_oldest
        assert bus.health()["status"] == "degraded"


def test_bad_options_and_events_are_clear_errors():
    with pytest.raises(weft.InvalidArgument, match="backpressure"):
        weft.Bus(backpressure="sometimes")
    with pytest.raises(weft.InvalidArgument, match="capacity"):
        weft.Bus(capacity=0)
    with pytest.raises(weft.InvalidArgument, match="bus url"):
        weft.Bus("tcp://x")
    with pytest.raises(weft.InvalidArgument, match="bus url .shm:bad/name.: segment name"):
        weft.Bus("shm:bad/name")
    with weft.Bus(num_shards=1, capacity=5000) as bus:  # rounded up to 8192
        assert bus.shard_bytes == 8192
        with pytest.raises(weft.TooLarge):
            bus.ingest_raw(b"x" * 10000)
        with pytest.raises(weft.InvalidArgument):
            bus.ingest_raw(12)
        with pytest.raises(weft.InvalidArgument):
            bus.ingest_raw_batch(b"not a list")
        with pytest.raises(weft.InvalidArgument, match="group name"):
            bus.subscribe("no spaces")
        with pytest.raises(weft.InvalidArgument, match="start"):
            bus.subscribe("g", start="middle")
    with pytest.raises(weft.Closed):
        bus.ingest_raw(b"after")


def test_event_views_end_at_the_next_poll_and_aliases_are_refused():
    with weft.Bus(num_shards=1, capacity=1 << 16) as bus:
        c = bus.subscribe("g")
        bus.ingest_raw(b"first")
        batch = c.poll(10)
        event = batch[0]
        raw = event.raw
        assert bytes(raw) == b"first"
        bus.ingest_raw(b"second")
        nxt = c.poll(10)  # ends the first batch: its views are released
        assert bytes(nxt[0].raw) == b"second"
        with pytest.raises(ValueError):
            bytes(raw)
        with pytest.raises(weft.Closed):
            event.bytes()
        assert not batch.valid
        # A view made from an event and kept past the next poll is refused there.
        kept = nxt[0].raw[1:]
        bus.ingest_raw(b"third")
        with pytest.raises(weft.InvalidArgument, match="copy what you keep"):
            c.poll(10)
        del kept
        assert bytes(c.poll(10)[0].raw) == b"third"  # the bus goes on
        c.close()


def test_commit_by_hand_and_resume_after_close():
    with weft.Bus(num_shards=1, capacity=1 << 16) as bus:
        c = bus.subscribe("g", auto_commit=False)
        for i in range(5):
            bus.ingest_raw(str(i))
        assert [e.text() for e in c.poll(3)] == ["0", "1", "2"]
        c.commit()
        assert [e.text() for e in c.poll(10)] == ["3", "4"]
        c.close()  # leaves without committing 3 and 4
        again = bus.subscribe("g")
        assert [e.text() for e in again.poll(10)] == ["3", "4"]  # at-least-once
        again.close()


def test_iteration_interrupt_and_async_for():
    with weft.Bus(num_shards=2, capacity=1 << 16) as bus:
        for i in range(10):
            bus.ingest_raw(str(i))
        with bus.subscribe("it", timeout=0.05) as c:
            assert sorted(int(e.text()) for e in c) == list(range(10))

        async def consume():
            got = []
            with bus.subscribe("aio", timeout=0.2) as c:
                async for e in c:
                    got.append(int(e.text()))
            return got

        assert sorted(asyncio.run(consume())) == list(range(10))
        c = bus.subscribe("stopped")
        c.interrupt()
        with pytest.raises(weft.Closed):
            c.poll(10, timeout=1)
        c.close()


def test_shm_bus_crosses_processes_and_groups_share_shards(shm_url, run_python):
    bus = weft.Bus(shm_url, num_shards=2, capacity=1 << 16, groups=["g"])
    code = f"""
import weft
bus = weft.Bus({shm_url!r})
for i in range(200):
    bus.ingest(str(i), key=str(i % 4))
print(bus.num_shards, bus.shard_bytes)
"""
    p = run_python(code, stdout=subprocess.PIPE, text=True)
    out, _ = p.communicate(timeout=60)
    assert p.returncode == 0 and out.split() == ["2", str(1 << 16)]
    a = bus.subscribe("g")
    b = bus.subscribe("g")
    got = [e.text() for e in a.poll(1000, timeout=0.1)] + [e.text() for e in b.poll(1000, timeout=0.1)]
    assert sorted(a.shards + b.shards) == [0, 1] and a.shards != b.shards
    assert sorted(got, key=int) == [str(i) for i in range(200)]
    s = bus.stats()
    assert s.ingested == 200 and s.group("g")["members"] == 2
    assert s.producers == []  # the child let its producer slot go when it exited
    a.close()
    b.close()
    bus.shutdown()
    with pytest.raises(weft.InvalidArgument, match="not what was asked"):
        weft.Bus(shm_url, num_shards=3, must_match=True)
    with pytest.raises(weft.NotFound):
        weft.Bus(shm_url + ".absent", create=False)



def test_log_bus_is_durable_and_takes_log_options(tmp_path):
    url = f"log:{tmp_path}/bus"
    try:
        with pytest.raises(weft.InvalidArgument, match="drop_oldest"):
            weft.Bus(url, backpressure="block")
        with pytest.raises(weft.InvalidArgument, match="fsync"):
            weft.Bus(url, fsync="sometimes")
        with weft.Bus(url, num_shards=2, fsync="always", segment_bytes=1 << 16) as bus:
            assert bus.backpressure == "drop_oldest"
            for i in range(10):
                bus.ingest({"i": i}, key=str(i % 2))
            assert bus.ingest_raw_batch([b"a", b"b"]) == 2
            with bus.subscribe("g", auto_commit=False) as c:
                first = c.poll(5, timeout=0.5)
                assert len(first) == 5
                c.commit()
        with weft.Bus(url) as bus:  # reopened: the options and the events are the bus's
            assert bus.num_shards == 2
            s = bus.stats()
            assert s.ingested == 12 and s.group("g") is not None
            with bus.subscribe("g", timeout=0.2) as c:
                assert len(list(c)) == 7  # resumes after the commit
            with bus.subscribe("replay", timeout=0.2) as c:
                events = list(c)
                assert len(events) == 12 and all(e.offset is not None for e in events)
    finally:
        weft.Bus.unlink(url)


def test_fileno_wakes_selectors_and_asyncio_across_processes(shm_url, run_python):
    import selectors
    bus = weft.Bus(shm_url, num_shards=1, capacity=1 << 16, groups=["g"])
    c = bus.subscribe("g")
    sel = selectors.DefaultSelector()
    sel.register(c.fileno(), selectors.EVENT_READ)
    assert len(sel.select(timeout=0)) == 1  # it starts readable
    assert len(c.poll(10, timeout=0)) == 0  # nothing there: arms it
    assert sel.select(timeout=0) == []
    p = run_python(f"import weft; weft.Bus({shm_url!r}).ingest_raw(b'rung')")
    assert p.wait(60) == 0
    assert len(sel.select(timeout=5)) == 1
    assert [e.bytes() for e in c.poll(10, timeout=0)] == [b"rung"]
    sel.close()

    async def later():
        q = run_python(f"import time, weft; time.sleep(0.2); weft.Bus({shm_url!r}).ingest_raw(b'async')")
        batch = await c.poll_async(10, timeout=10)
        assert q.wait(60) == 0
        return [e.bytes() for e in batch]

    assert asyncio.run(later()) == [b"async"]
    c.close()
    bus.shutdown()


def test_linger_gathers_until_flush():
    with weft.Bus(num_shards=1, capacity=1 << 16, groups=["g"], linger_us=3.6e9, linger_events=100) as bus:
        c = bus.subscribe("g")
        assert bus.ingest_raw(b"a") is True
        assert bus.ingest(b"b")[1] == -1  # pending: published later
        assert len(c.poll(10, timeout=0)) == 0
        bus.flush()
        assert [e.bytes() for e in c.poll(10, timeout=0)] == [b"a", b"b"]
        c.close()
    with pytest.raises(weft.InvalidArgument, match="linger"):
        weft.Bus(backpressure="fail", linger_us=10)
