import os
import itertools
import sys

import pytest

_counter = itertools.count()


@pytest.fixture
def name():
    """A channel name unique to this test; unlinked afterwards."""
    import weft
    n = f"pytest.{os.getpid()}.{next(_counter)}"
    yield n
    try:
        weft.Channel.unlink(n)
    except weft.NotFound:
        pass


@pytest.fixture
def run_python():
    """Runs a Python snippet in a child interpreter with the same weft on its path."""
    import subprocess

    def run(code, **kw):
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(sys.path)
        return subprocess.Popen([sys.executable, "-c", code], env=env, **kw)

    return run


@pytest.fixture
def demo_server(run_python):
    """serve(**options) -> (process, [tcp addresses]): a child process serving rpc_demo's
    resources (rpc_demo.serve with weft.Server's options), killed at the end with its pool."""
    import subprocess
    import weft
    procs = []

    def serve(**options):
        sid = f"pydemo-{os.getpid()}-{len(procs)}-{id(procs)}"
        p = run_python(f"import rpc_demo; rpc_demo.serve({sid!r}, **{options!r})", stdout=subprocess.PIPE, text=True)
        line = p.stdout.readline().split()
        assert line and line[0] == "ready", line
        procs.append((p, sid))
        return p, line[1:]

    serve.processes = procs  # (process, server id) of each, in order
    yield serve
    for p, sid in procs:
        p.kill()
        p.wait(timeout=30)
        try:
            weft.Pool.unlink(f"rpc.{sid}.pool")
        except weft.NotFound:
            pass


@pytest.fixture
def topic(name):
    """A topic name unique to this test; the topic and its pool are removed afterwards."""
    import weft
    yield name
    try:
        weft.unlink_topic(name)
    except weft.Error:
        pass


def _free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(argv, port, log):
    """Starts a server process; returns it once its port accepts connections."""
    import socket
    import subprocess
    import time
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    for _ in range(3000):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.1):
                return proc
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"{argv[0]} exited with {proc.returncode}")
            time.sleep(0.01)
    proc.kill()
    raise RuntimeError(f"{argv[0]} did not listen on {port}")


@pytest.fixture
def redis_server(tmp_path):
    """redis-server on a free loopback port (stopped by pid afterwards); yields its port."""
    port = _free_port()
    with open(tmp_path / "redis.log", "w") as log:
        proc = _serve(["/usr/bin/redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                       "--dir", str(tmp_path), "--daemonize", "no"], port, log)
        try:
            yield port
        finally:
            proc.kill()
            proc.wait()


@pytest.fixture
def nats_server(tmp_path):
    """nats-server with JetStream on a free loopback port (stopped by pid afterwards); yields its port."""
    port = _free_port()
    with open(tmp_path / "nats.log", "w") as log:
        proc = _serve(["/usr/sbin/nats-server", "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(tmp_path / "js")],
                      port, log)
        try:
            yield port
        finally:
            proc.kill()
            proc.wait()
