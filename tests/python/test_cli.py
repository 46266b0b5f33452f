"""The weft CLI: inspect and gc against real segments, including ones left by killed processes."""

import os
import signal
import subprocess
import time
import sys

import pytest

import weft

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WEFT = os.environ.get("WEFT_BIN", os.path.join(ROOT, "build", "tools", "weft", "weft"))


def cli(*args, check=True):
    r = subprocess.run([WEFT, *args], capture_output=True, text=True, timeout=60)
    if check:
        assert r.returncode == 0, r.stderr
    return r


def test_inspect_prints_header_roles_and_counters(name):
    tx = weft.Channel.create(name, capacity=1 << 16)
    rx = weft.Channel.open(name)
    tx.write(b"abc")
    out = cli("inspect", name).stdout
    assert "kind      channel" in out
    assert f"pid {os.getpid()}" in out
    assert "capacity  65536 bytes" in out
    assert "in        1 records, 3 bytes" in out
    assert "producer  attached" in out and "consumer  attached" in out
    rx.close()


def test_inspect_reports_missing_and_bad_names():
    r = cli("inspect", "no-such-segment-here", check=False)
    assert r.returncode == 1 and "not_found" in r.stderr
    r = cli("inspect", "bad/name", check=False)
    assert r.returncode == 1 and "invalid_argument" in r.stderr


def test_gc_removes_segments_of_dead_processes_only(name, run_python):
    dead = name + ".dead"
    child = run_python(
        "import os, signal, weft; weft.Channel.create(%r); os.kill(os.getpid(), signal.SIGKILL)" % dead)
    assert child.wait(10) == -signal.SIGKILL
    live = weft.Channel.create(name)
    assert os.path.exists("/dev/shm/weft." + dead)
    dry = cli("gc", "--dry-run").stdout
    assert f"would remove weft.{dead}" in dry
    assert os.path.exists("/dev/shm/weft." + dead)
    out = cli("gc").stdout
    assert f"removed weft.{dead}" in out
    assert not os.path.exists("/dev/shm/weft." + dead)
    assert os.path.exists("/dev/shm/weft." + name)  # its creator (this process) lives
    live.close()


def test_gc_keeps_a_channel_whose_consumer_lives(name, run_python):
    child = run_python(
        "import os, signal, weft; weft.Channel.create(%r); os.kill(os.getpid(), signal.SIGKILL)" % name)
    assert child.wait(10) == -signal.SIGKILL
    rx = weft.Channel.open(name)  # the creator is dead, but a consumer is attached
    cli("gc")
    assert os.path.exists("/dev/shm/weft." + name)
    rx.close()


def test_demo_quick_verifies_everything():
    r = subprocess.run([WEFT, "demo", "--quick"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "all checksums verified" in r.stdout
    assert "unix socket" in r.stdout
    assert "Against the Unix socket, weft was" in r.stdout


def test_demo_killed_by_sigpipe_leaves_no_segment():
    # `weft demo | head`: SIGPIPE may kill the demo while its channel (about 158 MB) exists.
    # Killed the moment its segment appears, it removes it (and it removes the name as soon as
    # both sides attached).
    def demo_segments():
        return {f for f in os.listdir("/dev/shm") if f.startswith("weft.demo.")}
    before = demo_segments()
    p = subprocess.Popen([WEFT, "demo", "--quick"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while not (demo_segments() - before) and p.poll() is None and time.time() < deadline:
        time.sleep(0.0005)
    p.send_signal(signal.SIGPIPE)
    assert p.wait(timeout=60) == -signal.SIGPIPE
    time.sleep(0.2)
    assert demo_segments() - before == set()


def test_bench_json_rows_follow_the_contract():
    r = subprocess.run([WEFT, "bench", "channel", "--quick", "--json", "--case", "notify"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    import json
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert rows and all(row["suite"] == "channel" and row["case"] == "notify" for row in rows)
    transports = {row["transport"] for row in rows}
    assert {"weft", "uds", "floor"} <= transports
    for row in rows:
        assert row["mode"] in ("spin", "parked")
        for field in ("payload_bytes", "n", "p50_ns", "p99_ns", "p999_ns", "mean_ns"):
            assert field in row


def test_inspect_and_gc_pools(name, run_python):
    pool = weft.Pool(name, bytes=1 << 20)
    b = pool.allocate(5000)
    out = cli("inspect", name).stdout
    assert "kind      pool" in out
    assert "in use    1 blocks, 8192 bytes" in out
    assert f"pid {os.getpid()}" in out
    dead = name + ".deadpool"
    child = run_python(
        "import os, signal, weft; p = weft.Pool(%r); p.allocate(1 << 20);"
        "os.kill(os.getpid(), signal.SIGKILL)" % dead)
    assert child.wait(10) == -signal.SIGKILL
    large = [f for f in os.listdir("/dev/shm") if f.startswith("weft." + dead + ".L")]
    assert len(large) == 1
    out = cli("gc").stdout
    assert f"removed weft.{dead}" in out
    assert not os.path.exists("/dev/shm/weft." + dead)
    assert not os.path.exists("/dev/shm/" + large[0])
    assert os.path.exists("/dev/shm/weft." + name)
    pool.release(b)
    pool.close()
    weft.Pool.unlink(name)


def test_inspect_topic(name):
    pub = weft.Publisher(name, pool_bytes=1 << 20)
    sub = weft.Subscriber(name, on_full="drop_oldest")
    pub.publish(pub.loan(10))
    pub.publish(pub.loan(10))
    out = cli("inspect", name).stdout
    assert "topic" in out and f"pid {os.getpid()}" in out
    assert f"topic     {name}" in cli("inspect", f"registry.{os.geteuid()}").stdout
    cli("gc")
    assert os.path.exists(f"/dev/shm/weft.registry.{os.geteuid()}")  # kept while it lists live topics
    assert "published 2" in out
    assert "drop_oldest queued 2, taken 0" in out
    sub.close()
    pub.close()
    weft.Pool.unlink(name + ".pool")


def test_bench_log_json_rows_follow_the_contract():
    r = subprocess.run([WEFT, "bench", "log", "--quick", "--json", "--case", "tail"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    import json
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert rows and all(row["suite"] == "log" and row["case"] == "tail" for row in rows)
    assert {"weft", "floor"} <= {row["transport"] for row in rows}
    for row in rows:
        assert row["fsync"] == "never" and row["p50_ns"] > 0


def test_bench_rpc_json_rows_follow_the_contract():
    r = subprocess.run([WEFT, "bench", "rpc", "--quick", "--json", "--case", "call"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    import json
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert rows and all(row["suite"] == "rpc" and row["case"] == "call" for row in rows)
    weft_rows = [row for row in rows if row["transport"] == "weft"]
    assert {(row["lang"], row["via"], row.get("tls")) for row in weft_rows} == {
        ("cpp", "inproc", None), ("cpp", "ipc", None), ("python", "inproc", None), ("python", "ipc", None),
        ("cpp", "tcp", "false"), ("cpp", "tcp", "true"), ("python", "tcp", "false"), ("python", "tcp", "true")}
    assert {"uds", "uds-pickle", "grpc", "floor"} <= {row["transport"] for row in rows}
    # the floor of tcp://: the same bytes over a plain TCP socket pair, polling and parked
    assert {row["mode"] for row in rows if row["transport"] == "floor" and row.get("via") == "tcp"} == {"spin", "parked"}
    assert {row["lang"] for row in rows if row["transport"] == "grpc"} == {"cpp", "python"}
    assert all(row["p50_ns"] > 0 for row in rows)


def test_bench_rpc_numpy_rows_follow_the_contract():
    r = subprocess.run([WEFT, "bench", "rpc", "--quick", "--json", "--case", "numpy"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    import json
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert rows and all(row["suite"] == "rpc" and row["case"] == "numpy" and row["lang"] == "python" for row in rows)
    sizes = {1000, 10_000, 100_000, 1_000_000, 3_000_000}
    for mode in ("hold", "copy", "loan"):
        weft_rows = [row for row in rows if row["transport"] == "weft" and row["mode"] == mode and row["via"] == "ipc"]
        assert {row["rows"] for row in weft_rows} == sizes
    for tls in ("false", "true"):  # tcp://: copies only (no memory is shared across hosts)
        tcp_rows = [row for row in rows if row["transport"] == "weft" and row["via"] == "tcp" and row["tls"] == tls]
        assert {row["rows"] for row in tcp_rows} == sizes and all(row["mode"] == "copy" for row in tcp_rows)
    for transport, via in (("grpc", None), ("uds-pickle", None), ("floor", None), ("floor", "tcp")):
        assert {row["rows"] for row in rows if row["transport"] == transport and row.get("via") == via} == sizes
    assert all(row["p50_ns"] > 0 and row["payload_bytes"] == int(row["rows"]) * 28 for row in rows)


def test_bench_rpc_bulk_rows_follow_the_contract():
    r = subprocess.run([WEFT, "bench", "rpc", "--quick", "--json", "--case", "bulk"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    import json
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert rows and all(row["suite"] == "rpc" and row["case"] == "bulk" for row in rows)
    assert {(row["transport"], row.get("via"), row.get("tls")) for row in rows} == {
        ("weft", "tcp", "false"), ("weft", "tcp", "true"), ("floor", "tcp", None), ("floor", "aead", None),
        ("grpc", "tcp", None)}
    assert all(row["bytes_per_s"] > 0 and row["payload_bytes"] == 1 << 30 for row in rows)


def _dead_channel(name, run_python):
    child = run_python(
        "import os, signal, weft; weft.Channel.create(%r); os.kill(os.getpid(), signal.SIGKILL)" % name)
    assert child.wait(10) == -signal.SIGKILL


def _counted_exactly(out, word):
    """The summary's count of `word` equals the lines saying it was done."""
    summary = [l for l in out.splitlines() if l.startswith("gc: ")][-1]
    n = int(summary.split()[1])
    assert n == sum(1 for l in out.splitlines() if l.startswith(word + " weft.")), out
    return n


def test_gc_keeps_a_live_channel_it_cannot_parse(name, run_python):
    tx = weft.Channel.create(name, capacity=1 << 16)
    rx = weft.Channel.open(name)
    path = "/dev/shm/weft." + name
    with open(path, "r+b") as f:  # scribble the header's magic
        f.write(b"\xff" * 8)
    old = os.stat(path).st_mtime - 3600
    os.utime(path, (old, old))
    dead = name + ".dead"
    _dead_channel(dead, run_python)  # control: gc does remove what it proves dead
    out = cli("gc").stdout
    assert f"kept weft.{name}: unreadable" in out, out
    assert os.path.exists(path)
    assert f"removed weft.{dead}" in out and not os.path.exists("/dev/shm/weft." + dead)
    _counted_exactly(out, "removed")
    rx.close()
    tx.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run gc as another uid (CI runs as root)")
def test_gc_as_another_uid_removes_nothing_of_ours_and_says_so(name, run_python):
    _dead_channel(name, run_python)

    def as_nobody():
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)

    r = subprocess.run([WEFT, "gc"], capture_output=True, text=True, timeout=60, preexec_fn=as_nobody)
    assert f"kept weft.{name}: segment '{name}' belongs to uid 0" in r.stdout, r.stdout + r.stderr
    assert f"removed weft.{name}" not in r.stdout
    assert os.path.exists("/dev/shm/weft." + name)
    _counted_exactly(r.stdout, "removed")
    out = cli("gc").stdout  # its owner can
    assert f"removed weft.{name}" in out and not os.path.exists("/dev/shm/weft." + name)


def test_weft_alone_and_version_succeed():
    r = subprocess.run([WEFT], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert "bench" in r.stdout and "gc" in r.stdout  # the subcommands are listed
    r = subprocess.run([WEFT, "--version"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stdout.startswith("weft 0."), r.stdout + r.stderr


def test_bench_shows_progress_on_a_terminal_only():
    import pty
    master, slave = pty.openpty()
    try:
        r = subprocess.run([WEFT, "bench", "log", "--quick", "--case", "tail"], stdout=subprocess.PIPE,
                           stderr=slave, text=True, timeout=300)
        os.close(slave)
        seen = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(master)
    assert r.returncode == 0
    assert b"weft bench log: 1 measured" in seen  # progress, on the terminal (stderr)
    assert "measured" not in r.stdout and "tail" in r.stdout  # the table alone on stdout
    plain = subprocess.run([WEFT, "bench", "log", "--quick", "--case", "tail"], capture_output=True, text=True,
                           timeout=300)
    assert plain.returncode == 0 and plain.stderr == ""  # not a terminal: no progress


def test_bus_publish_tail_and_stat(name):
    url = "shm:" + name
    try:
        assert cli("bus", "publish", url, "--group", "audit", "--key", "k", "one", "two").stdout == "published 2 events\n"
        r = subprocess.run([WEFT, "bus", "publish", url], input="three\nfour\n", capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and r.stdout == "published 2 events\n", r.stderr
        lines = cli("bus", "tail", url, "--group", "audit").stdout.splitlines()
        fields = [line.split("\t") for line in lines]
        assert sorted(f[3] for f in fields) == ["four", "one", "three", "two"]
        assert [f[3] for f in fields if f[2] == "k"] == ["one", "two"]  # a key's events in order
        assert cli("bus", "tail", url, "--group", "audit").stdout == ""  # committed: nothing again
        assert cli("bus", "tail", url, "--group", "other", "-n", "1").stdout.count("\n") == 1  # a new group
        out = cli("bus", "stat", url).stdout
        assert "kind      bus" in out and "4 ingested" in out and "group     audit" in out
        r = cli("bus", "tail", "memory:", "--group", "g", check=False)
        assert r.returncode == 1 and "shm:<name>, log:<directory>" in r.stderr
        r = cli("bus", "tail", "shm:" + name + "-missing", "--group", "g", check=False)
        assert r.returncode == 1 and "not_found" in r.stderr
    finally:
        try:
            os.unlink("/dev/shm/weft." + name)
        except FileNotFoundError:
            pass


def test_bus_commands_reach_a_log_bus(tmp_path):
    url = f"log:{tmp_path}/bus"
    try:
        assert cli("bus", "publish", url, "--key", "k", "one", "two").stdout == "published 2 events\n"
        lines = cli("bus", "tail", url, "--group", "g").stdout.splitlines()
        assert [line.split("\t")[1:] for line in lines] == [["0", "k", "one"], ["1", "k", "two"]]  # record numbers
        assert cli("bus", "tail", url, "--group", "g").stdout == ""  # committed, durably
        out = cli("bus", "stat", url).stdout
        assert "bus (durable" in out and "2 ingested" in out and "group     g" in out and "lag 0 events" in out
    finally:
        import weft
        try:
            weft.Bus.unlink(url)
        except weft.NotFound:
            pass
