"""weft.Bus on Redis Streams and NATS JetStream (real servers started per test), the
RedisStreamDedup helper, and the command line against both."""
import os
import subprocess

import pytest

import weft

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WEFT = os.environ.get("WEFT_BIN", os.path.join(ROOT, "build", "tools", "weft", "weft"))


@pytest.fixture(params=["redis", "nats"])
def bus_url(request):
    port = request.getfixturevalue(request.param + "_server")
    return f"{request.param}://127.0.0.1:{port}/steps"


def test_a_remote_bus_speaks_the_same_python_api(bus_url, tmp_path):
    with weft.Bus(bus_url, num_shards=2, groups=["default"], nonce_path=str(tmp_path / "p.nonce")) as bus:
        assert bus.ingest_raw("token 1") is True
        shard, offset = bus.ingest({"step": 2})
        assert shard in (0, 1) and offset > 0
        assert bus.ingest_raw_batch([b"a", b"b", "c"]) == 3
        got = []
        for _ in range(20):
            got += [bytes(e.raw) for e in bus.poll(limit=100, timeout=1.0)]
            if len(got) >= 5:
                break
        assert sorted(got) == sorted([b"token 1", b'{"step":2}', b"a", b"b", b"c"])
        st = bus.stats()
        assert st.ingested == 5 and st.shards == 2
    # The nonce file was made, and holds the acknowledged sequence.
    assert (tmp_path / "p.nonce").stat().st_size > 0


def test_a_server_that_is_not_there_is_a_clear_error():
    with pytest.raises(weft.Unavailable):
        weft.Bus("redis://127.0.0.1:1/steps", op_timeout_ms=300)
    with pytest.raises(weft.InvalidArgument):
        weft.Bus("redis://127.0.0.1:6379/bad name")


def test_redis_stream_dedup_forgets_the_least_recent():
    d = weft.RedisStreamDedup(2)
    assert not d.seen("a") and not d.seen(b"b")
    assert d.seen("a")          # a is the most recent now
    assert not d.seen("c")      # b forgotten
    assert not d.seen("b")
    assert len(d) == 2 and d.capacity == 2 and d.duplicates == 1


def test_the_command_line_reaches_remote_buses(bus_url):
    def cli(*args):
        r = subprocess.run([WEFT, *args], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return r.stdout
    assert cli("bus", "publish", bus_url, "--group", "audit", "--key", "k", "one", "two") == "published 2 events\n"
    lines = cli("bus", "tail", bus_url, "--group", "audit").splitlines()
    assert [line.split("\t")[2:] for line in lines] == [["k", "one"], ["k", "two"]]  # a key's events in order
    assert cli("bus", "tail", bus_url, "--group", "audit") == ""  # acked: nothing again
    out = cli("bus", "stat", bus_url)
    assert "bus (on " in out and "2 ingested" in out and "group     audit" in out and "lag 0 events" in out
    assert cli("inspect", bus_url) == out
