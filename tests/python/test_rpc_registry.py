"""Discovery through NATS from Python: weft.connect(Contract, name=..., registry="nats://...")
against servers in other processes that announce themselves (weft.Server(registry=...)): direct
tcp:// first, a tunnel through NATS for a server nobody can dial, a name alone refused, a killed
server's clients moving to a replica, and weft.aio over the same."""

import asyncio

import numpy as np
import pytest

import rpc_demo
import weft
import weft.aio
from test_rpc_tcp import keygen


@pytest.fixture
def keys(tmp_path):
    ids = {name: keygen(tmp_path / f"{name}.key") for name in ("server", "client")}
    return tmp_path, ids


@pytest.fixture
def registry(nats_server):
    return f"nats://127.0.0.1:{nats_server}"


@pytest.fixture
def announced(demo_server, keys, registry):
    """serve(**options): a child process serving rpc_demo's Store and Grid, announced at the
    registry with TLS (the server's key, trusting the client's)."""
    tmp, ids = keys
    return lambda **options: demo_server(key=str(tmp / "server.key"), trust=ids["client"], registry=registry,
                                         **options)[0]


def client_options(keys):
    tmp, ids = keys
    return {"key": str(tmp / "client.key"), "trust": ids["server"]}


def test_found_by_name_and_contract_and_called_directly(announced, keys, registry):
    announced(listen="tcp://127.0.0.1:0")
    _, ids = keys
    with weft.connect(rpc_demo.Store, name="store", registry=registry, **client_options(keys)) as s:
        assert s.increment(4) == 4
        assert s.whoami() == f"tcp {ids['client']}"
    with weft.connect(rpc_demo.Grid, name="grid", registry=registry, **client_options(keys)) as g:
        m = g.mesh()
        assert isinstance(m, np.ndarray) and m.shape == (10_000, 3)
        assert np.array_equal(m, np.arange(30_000, dtype=np.float64).reshape(10_000, 3))


def test_a_name_alone_is_not_enough(announced, keys, registry):
    announced(listen="tcp://127.0.0.1:0")

    @weft.contract(namespace="test", version="9.9.9")
    class Store:
        def increment(self, amount: int) -> int: ...

    with pytest.raises(weft.ContractMismatch, match="a name alone is not enough"):
        weft.connect(Store, name="store", registry=registry, **client_options(keys))
    with pytest.raises(weft.NotFound):
        weft.connect(rpc_demo.Store, name="nobody", registry=registry, **client_options(keys))
    with pytest.raises(weft.InvalidArgument):
        weft.connect(rpc_demo.Store, name="store", address="tcp://127.0.0.1:1", registry=registry)


def test_a_server_nobody_can_dial_is_reached_through_nats(announced, keys, registry):
    announced()  # no tcp:// listener at all: only the relay
    _, ids = keys
    with weft.connect(rpc_demo.Store, name="store", registry=registry, **client_options(keys)) as s:
        assert s.whoami() == f"nats {ids['client']}"
        assert s.increment(amount=3) == 3
    with weft.connect(rpc_demo.Grid, name="grid", registry=registry, **client_options(keys)) as g:
        a = np.arange(300_000, dtype=np.float64)
        assert g.total(a) == float(a.sum())
        assert np.array_equal(g.mesh(), np.arange(30_000, dtype=np.float64).reshape(10_000, 3))


def test_the_clients_of_a_killed_server_move_to_a_replica(announced, keys, registry):
    first = announced(listen="tcp://127.0.0.1:0")
    with weft.connect(rpc_demo.Store, name="store", registry=registry, **client_options(keys)) as s:
        assert s.increment(1) == 1
        announced(listen="tcp://127.0.0.1:0")
        first.kill()
        first.wait(timeout=30)
        results = []
        for _ in range(3):
            try:
                results.append(s.increment(10))
            except (weft.PeerDead, weft.Unavailable, weft.Closed):
                results.append("lost")
        # At most the first call dies with its server; the next ones land on the replica, whose
        # count starts from zero.
        assert results[-1] == 20 and results[-2] == 10, results


def test_asyncio_through_the_registry(announced, keys, registry):
    announced()

    async def main():
        s = await weft.aio.connect(rpc_demo.Store, name="store", registry=registry, **client_options(keys))
        try:
            return await asyncio.gather(s.increment(1), s.increment(2))
        finally:
            await s.close()

    assert sorted(asyncio.run(main())) in ([1, 3], [2, 3])
