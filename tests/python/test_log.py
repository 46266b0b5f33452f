"""weft.Log: appends, batches, reads, tails across processes and threads, retention, errors."""

import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import weft

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WEFT = os.environ.get("WEFT_BIN", os.path.join(ROOT, "build", "tools", "weft", "weft"))


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "log")


def test_append_batch_read_and_reopen(path):
    with weft.Log(path, fsync="always") as log:
        assert log.append(b"first") == 0
        assert log.append(bytearray(b"second"), flags=3) == 1
        assert log.append_batch([b"a", memoryview(b"bb"), np.arange(3, dtype=np.uint8)]) == 2
        assert log.append_batch([]) is None  # nothing appended, and said so
        assert log.next_seq == 5 and len(log) == 5
        rec = log.read(1)
        assert rec.seq == 1 and rec.flags == 3 and bytes(rec.payload) == b"second"
        assert rec.payload.readonly and rec.timestamp_ns > 0
        assert bytes(log.read(4).payload) == b"\x00\x01\x02"
        assert log.stats()["durable_seq"] == 5
        with pytest.raises(weft.OutOfRange):
            log.read(5)
    with pytest.raises(weft.Closed):
        log.append(b"x")
    with weft.Log(path) as again:
        assert again.next_seq == 5
        assert [bytes(r.payload) for r in again.tail(0, timeout=0)] == [b"first", b"second", b"a", b"bb", b"\x00\x01\x02"]
        again.verify()


def test_payload_is_a_zero_copy_view_usable_by_numpy(path):
    with weft.Log(path) as log:
        arr = np.arange(1000, dtype=np.float64)
        seq = log.append(arr)
        rec = log.read(seq)
        back = np.frombuffer(rec.payload, dtype=np.float64)
        assert np.array_equal(back, arr)
        assert not back.flags.writeable


def test_second_writer_is_refused_and_readers_cannot_append(path):
    log = weft.Log(path)
    log.append(b"x")
    with pytest.raises(weft.Busy) as e:
        weft.Log(path)
    assert str(os.getpid()) in str(e.value)
    reader = weft.Log(path, read_only=True)
    with pytest.raises(weft.PermissionDenied):
        reader.append(b"y")
    assert bytes(reader.read(0).payload) == b"x"
    log.close()
    weft.Log(path).close()  # the lock went with the writer
    with pytest.raises(weft.NotFound):
        weft.Log(path + "-absent", read_only=True)
    with pytest.raises(weft.InvalidArgument):
        weft.Log(path, fsync="sometimes")


def test_tail_follows_appends_from_another_process_without_gaps(path, run_python):
    with weft.Log(path) as log:
        log.append(b"0")
    reader = weft.Log(path, read_only=True)
    tail = reader.tail(from_seq=0, timeout=30)
    writer = run_python(
        "import weft, time\n"
        f"log = weft.Log({path!r})\n"
        "log.append_batch([str(i).encode() for i in range(1, 500)])\n"
        "for i in range(500, 2000):\n"
        "    log.append(str(i).encode())\n"
        "    if i % 250 == 0: time.sleep(0.01)\n"
        "log.close()\n")
    got = []
    for rec in tail:
        got.append(int(bytes(rec.payload)))
        if len(got) == 2000:
            break
    assert writer.wait(timeout=60) == 0
    assert got == list(range(2000))


def test_tail_close_from_another_thread_ends_iteration(path):
    log = weft.Log(path)
    log.append(b"only")
    tail = log.tail(0)
    assert bytes(tail.next().payload) == b"only"
    with pytest.raises(weft.WouldBlock):
        tail.next(timeout=0)
    with pytest.raises(weft.Timeout):
        tail.next(timeout=0.01)
    threading.Timer(0.05, tail.close).start()
    assert list(tail) == []  # blocked, then ended by close()
    log.close()


def test_retention_removes_old_segments_and_names_the_first_left(path):
    with weft.Log(path, segment_bytes=8192, retention_events=100) as log:
        log.append_batch([b"x" * 100 for _ in range(1000)])
        log.append(b"roll")  # retention runs when a segment rolls
        first = log.first_seq
        assert 0 < first <= 1000 - 100
        with pytest.raises(weft.OutOfRange) as e:
            log.read(0)
        assert f"first available is {first}" in str(e.value)
        with pytest.raises(weft.OutOfRange):
            log.tail(0).next(timeout=0)
        assert log.read(first).seq == first


def test_damage_is_reported_as_corrupt_with_its_position(path):
    with weft.Log(path, segment_bytes=8192) as log:
        log.append_batch([bytes([i]) * 100 for i in range(200)])
    seg = os.path.join(path, "%020d.wlog" % 0)
    with open(seg, "r+b") as f:
        f.seek(64 + 2 * 136 + 40)
        b = f.read(1)
        f.seek(64 + 2 * 136 + 40)
        f.write(bytes([b[0] ^ 0x40]))
    with weft.Log(path, read_only=True) as log:
        assert bytes(log.read(1).payload) == bytes([1]) * 100
        with pytest.raises(weft.Corrupt) as e:
            log.read(2)
        assert "offset %d" % (64 + 2 * 136) in str(e.value)
        with pytest.raises(weft.Corrupt):
            log.verify()


def test_policies_and_seq_at_time(path):
    for policy in ("never", "every_n", "interval", "always"):
        with weft.Log(f"{path}-{policy}", fsync=policy, fsync_every_n=2, fsync_interval_ms=5) as log:
            for i in range(5):
                log.append(b"r")
            log.sync()
            assert log.stats()["durable_seq"] == 5
    with weft.Log(path) as log:
        log.append_batch([b"a"] * 10)
        t = time.time_ns()
        time.sleep(0.002)
        log.append_batch([b"b"] * 10)
        assert log.seq_at_time(t) == 10


def cli(*args, input=None, check=True):
    r = subprocess.run([WEFT, "log", *args], capture_output=True, text=True, input=input, timeout=60)
    if check:
        assert r.returncode == 0, r.stderr
    return r


def test_cli_append_tail_stat_verify(path):
    assert "seq 0..2" in cli("append", path, "one", "two", "three").stdout
    assert "seq 3..4" in cli("append", path, "--fsync", "never", input="four\nfive\n").stdout
    lines = cli("tail", path).stdout.splitlines()
    assert [l.split("\t")[2] for l in lines] == ["one", "two", "three", "four", "five"]
    assert [l.split("\t")[0] for l in cli("tail", path, "-n", "2").stdout.splitlines()] == ["3", "4"]
    out = cli("stat", path).stdout
    assert "records    5 (seq 0..4)" in out and "writer     none" in out
    assert "ok: 5 records" in cli("verify", path).stdout
    with weft.Log(path) as log:
        assert bytes(log.read(4).payload) == b"five"


def test_cli_tail_follow_sees_new_appends(path):
    cli("append", path, "before")
    p = subprocess.Popen([WEFT, "log", "tail", path, "-f"], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().split("\t")[2].strip() == "before"
        with weft.Log(path) as log:
            log.append(b"live \x01")
        assert p.stdout.readline().split("\t")[2].strip() == "live \\x01"
    finally:
        p.terminate()
        p.wait(timeout=10)


def test_cli_errors_are_clear(path):
    r = cli("tail", path, check=False)
    assert r.returncode == 1 and "not_found" in r.stderr
    cli("append", path, "x")
    seg = os.path.join(path, "%020d.wlog" % 0)
    with open(seg, "r+b") as f:
        f.seek(64 + 32)
        f.write(b"Y")
    r = cli("verify", path, check=False)
    assert r.returncode == 1 and "corrupt" in r.stderr and "record 0" in r.stderr


def test_cli_tail_last_zero_follows_only_new_records(path):
    cli("append", path, "old one", "old two")
    p = subprocess.Popen([WEFT, "log", "tail", path, "-n", "0", "-f"], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)  # let it start and skip what is there
        with weft.Log(path) as log:
            log.append(b"new")
        assert p.stdout.readline().split("\t")[2].strip() == "new"  # not "old one"
    finally:
        p.terminate()
        p.wait(timeout=10)


def test_cli_tail_formats_and_readable_times(path):
    import json
    import datetime
    cli("append", path, "caf\u00e9", "--flags", "3")
    with weft.Log(path) as log:
        log.append(b"\xff\x00bin")
    seq, when, payload = cli("tail", path).stdout.splitlines()[0].split("\t")
    assert seq == "0" and payload == "caf\\xc3\\xa9"
    stamp = datetime.datetime.strptime(when[:26] + "Z", "%Y-%m-%dT%H:%M:%S.%fZ")  # ISO-8601, UTC
    assert abs((datetime.datetime.utcnow() - stamp).total_seconds()) < 3600
    rows = [json.loads(line) for line in cli("tail", path, "--format", "json").stdout.splitlines()]
    assert rows[0]["seq"] == 0 and rows[0]["payload"] == "caf\u00e9" and rows[0]["flags"] == 3
    assert rows[0]["time"] == when and isinstance(rows[0]["timestamp_ns"], int)
    import base64
    assert base64.b64decode(rows[1]["payload_base64"]) == b"\xff\x00bin" and "payload" not in rows[1]
    r = cli("tail", path, "--format", "yaml", check=False)
    assert r.returncode == 1 and "--format must be text, raw or json" in r.stderr
