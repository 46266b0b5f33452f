"""asyncio for every blocking call: channels, subscribers, log tails and RPC calls wait without
blocking the event loop (a ticker task keeps running meanwhile)."""

import asyncio
import pytest

import weft
from test_rpc import store_server  # noqa: F401  (the fixture)
import rpc_demo


async def ticking(coro):
    """Runs `coro` beside a ticker; returns (its result, ticks seen while it waited)."""
    ticks = 0
    stop = asyncio.Event()

    async def ticker():
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0.005)

    t = asyncio.ensure_future(ticker())
    try:
        return await coro, ticks
    finally:
        stop.set()
        await t


def test_subscriber_take_async_and_async_for(name):
    pub = weft.Publisher(name, pool_bytes=1 << 20)
    sub = weft.Subscriber(name)

    async def main():
        loop = asyncio.get_running_loop()

        def publish(data):
            view = pub.loan(len(data))
            view[:] = data
            pub.publish(view)

        loop.call_later(0.1, publish, b"one")
        sample, ticks = await ticking(sub.take_async(timeout=5))
        with sample:
            assert sample.bytes() == b"one"
        assert ticks >= 5  # the loop ran while the take waited
        loop.call_later(0.05, publish, b"two")
        async for data in sub:
            assert data == b"two"
            break
        with pytest.raises(weft.Timeout):
            await sub.take_async(timeout=0.05)

    asyncio.run(main())
    sub.close()
    pub.close()
    weft.unlink_topic(name)


def test_log_tail_next_async_and_async_for(tmp_path):
    path = str(tmp_path / "log")
    with weft.Log(path) as log:
        log.append(b"first")
        tail = log.tail(0, timeout=0.3)

        async def main():
            loop = asyncio.get_running_loop()
            rec, _ = await ticking(tail.next_async(timeout=5))
            assert bytes(rec.payload) == b"first"
            loop.call_later(0.1, log.append, b"second")
            rec, ticks = await ticking(tail.next_async(timeout=5))
            assert bytes(rec.payload) == b"second" and ticks >= 5
            loop.call_later(0.05, log.append, b"third")
            seen = [bytes(r.payload) async for r in tail]  # ends after 0.3 s without a record
            assert seen == [b"third"]

        asyncio.run(main())
        tail.close()


def test_rpc_call_async_and_cancellation(store_server):  # noqa: F811
    sid, _ = store_server
    with weft.connect(rpc_demo.Store, name="store", address=f"ipc://{sid}", timeout=120) as s:
        async def main():
            value, ticks = await ticking(weft.call_async(s.nap, 0.2))
            assert value == 0.2 and ticks >= 10
            return await weft.call_async(s.increment, 3)

        assert asyncio.run(main()) == 3
    with weft.connect(rpc_demo.Grid, name="grid", address=f"ipc://{sid}", timeout=120) as g:
        before = g.spins_cancelled()

        async def cancel_one():
            task = asyncio.ensure_future(weft.call_async(g.spin, 60.0))  # spins until cancelled
            await asyncio.sleep(0.2)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(cancel_one())
        # The server's handler saw the cancellation (weft.cancelled()) and stopped spinning: the
        # next call is answered, and counts it.
        assert g.spins_cancelled() == before + 1
