"""Resources across hosts over tcp:// from Python: the same proxy as ipc://, TLS 1.3 with host
keys (pinned by id), the caller's identity, the authorize hook, and refusals before any call."""

import os
import subprocess

import numpy as np
import pytest

import rpc_demo
import weft

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WEFT = os.environ.get("WEFT_BIN", os.path.join(ROOT, "build", "tools", "weft", "weft"))


def keygen(path) -> str:
    """A host key made by `weft keygen`; its id."""
    out = subprocess.run([WEFT, "keygen", "--out", str(path)], check=True, capture_output=True, text=True)
    return out.stdout.strip().splitlines()[-1]


@pytest.fixture
def keys(tmp_path):
    ids = {name: keygen(tmp_path / f"{name}.key") for name in ("server", "client", "stranger")}
    return tmp_path, ids


@pytest.fixture
def served(demo_server):
    """serve(**options) -> the tcp:// address of a child process serving rpc_demo."""
    return lambda **options: demo_server(listen="tcp://127.0.0.1:0", **options)[1][0]


def test_the_same_proxy_over_plaintext_tcp(served):
    address = served(plaintext=True)
    with weft.connect(rpc_demo.Store, name="store", address=address, plaintext=True) as s:
        assert s.increment(5) == 5
        assert s.increment(amount=7) == 12  # keyword arguments, as in-process
        pts = s.points(100_000)  # 2.4 MB: follows its frame in data frames
        assert np.array_equal(pts, np.arange(300_000, dtype=np.float64).reshape(100_000, 3))
        assert s.echo("grüße", b"\x00\xff", 2.5, True) == "grüße|00ff|2.5|True"
        with pytest.raises(weft.InvalidArgument):
            s.increment("five")
        assert s.whoami() == "tcp "  # plaintext proves nobody
        held = weft.hold(s.points)(10)  # hold mode across hosts: a copy
        assert not held.in_shared_memory and held.value.shape == (10, 3)


def test_tls_pinned_keys_identity_and_refusals(served, keys):
    d, ids = keys
    address = served(key=str(d / "server.key"), trust=[ids["client"]])
    with weft.connect(rpc_demo.Store, name="store", address=address, key=d / "client.key",
                      trust=ids["server"]) as s:
        assert s.whoami() == f"tcp {ids['client']}"
        assert s.increment(1) == 1
    with pytest.raises(weft.Unauthenticated):  # a key the server does not trust
        weft.connect(rpc_demo.Store, name="store", address=address, key=d / "stranger.key", trust=ids["server"])
    with pytest.raises(weft.Unauthenticated):  # a server that is not the one pinned
        weft.connect(rpc_demo.Store, name="store", address=address, key=d / "client.key", trust=ids["stranger"])
    with pytest.raises(weft.Error):  # plaintext to a TLS server
        weft.connect(rpc_demo.Store, name="store", address=address, plaintext=True)
    with pytest.raises(weft.InvalidArgument):  # TLS without a key of one's own
        weft.connect(rpc_demo.Store, name="store", address=address, trust=ids["server"])


def test_an_authorize_hook_refuses_calls_in_process():
    seen = []

    def authorize(caller, resource, method):
        seen.append((caller.transport, resource, method))
        return method != "increment"

    server = weft.Server(f"pyauth-{os.getpid()}", listen="tcp://127.0.0.1:0", plaintext=True, authorize=authorize)
    server.register(rpc_demo.Store, rpc_demo.StoreImpl(), name="store", allow_pickle=["stash.anything"])
    with server:
        address = server.addresses[1]
        assert address.startswith("tcp://127.0.0.1:")
        with weft.connect(rpc_demo.Store, name="store", address=address, plaintext=True) as s:
            with pytest.raises(weft.PermissionDenied) as e:
                s.increment(1)
            assert "authorize hook refused increment()" in str(e.value)
            assert s.value() == 0  # control: allowed
    assert ("tcp", "store", "increment") in seen and ("tcp", "store", "value") in seen
