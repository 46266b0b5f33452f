"""asyncio for every blocking call: channels, subscribers, publishers, log tails, RPC calls and
streams wait without blocking the event loop (a ticker task keeps running meanwhile)."""

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


def _fill(pub, data):
    view = pub.loan(len(data))
    view[:] = data
    return view


def test_publish_async_waits_for_room_without_blocking_the_loop(name):
    pub = weft.Publisher(name, queue_depth=2, pool_bytes=1 << 20)
    sub = weft.Subscriber(name)  # on_full="block": a full queue makes the publisher wait
    for i in range(2):
        pub.publish(_fill(pub, b"%d" % i))

    async def main():
        loop = asyncio.get_running_loop()

        def take_one():
            with sub.take(0) as s:
                assert s.bytes() == b"0"

        loop.call_later(0.1, take_one)
        _, ticks = await ticking(pub.publish_async(_fill(pub, b"2"), timeout=5))
        assert ticks >= 5  # the loop ran while the publish waited for room
        # Full again: a deadline ends the wait with Timeout, and the loan is still ours.
        loan = _fill(pub, b"3")
        with pytest.raises(weft.Timeout):
            await pub.publish_async(loan, timeout=0.15)
        pub.discard(loan)
        # A cancelled wait keeps the loan too: nothing was published.
        loan = _fill(pub, b"4")
        task = asyncio.ensure_future(pub.publish_async(loan))
        await asyncio.sleep(0.15)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        pub.discard(loan)

    asyncio.run(main())
    assert [sub.take(0).bytes() for _ in range(2)] == [b"1", b"2"]
    with pytest.raises(weft.WouldBlock):  # nothing from the timed-out or the cancelled publish
        sub.take(0)
    sub.close()
    pub.close()
    weft.unlink_topic(name)


def test_a_record_read_by_a_cancelled_next_async_is_not_lost(tmp_path):
    with weft.Log(str(tmp_path / "log")) as log:
        tail = log.tail(0)

        async def main():
            # Cancel the wait while a slice runs in the executor; the record appended as it is
            # cancelled is either read by that slice (and kept) or left for the next call.
            for i in range(20):
                task = asyncio.ensure_future(tail.next_async())
                await asyncio.sleep(0.01 * (i % 3))
                log.append(b"%d" % i)
                task.cancel()
                try:
                    rec = await task
                    assert bytes(rec.payload) == b"%d" % i
                except asyncio.CancelledError:
                    rec = await tail.next_async(timeout=5)
                    assert bytes(rec.payload) == b"%d" % i
            assert tail.position == 20

        asyncio.run(main())
        tail.close()


def test_rpc_streams_async_for_and_cancellation(store_server):  # noqa: F811
    sid, _ = store_server
    with weft.connect(rpc_demo.Grid, name="grid", address=f"ipc://{sid}", timeout=120) as g:
        async def main():
            stream = await weft.call_async(g.count, 100)
            assert isinstance(stream, weft.AsyncStream)
            assert [x async for x in stream] == list(range(100))

            async def paced():
                return [x async for x in await weft.call_async(g.paced, 4, 0.05)]

            seen, ticks = await ticking(paced())
            assert seen == [0, 1, 2, 3] and ticks >= 10  # the loop ran between chunks

            # Cancelling the task that iterates cancels the call: the producer stops.
            before = g.produced()

            async def consume():
                async for _ in await weft.call_async(g.paced, 10**6, 0.01):
                    pass

            task = asyncio.ensure_future(consume())
            await asyncio.sleep(0.3)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            ran = g.produced() - before  # answered: the connection is free again
            await asyncio.sleep(0.2)
            assert 1 <= ran < 10**6 and g.produced() - before == ran
            # Leaving `async with` early ends the stream the same way.
            async with await weft.call_async(g.count, 10**9) as s:
                assert [await s.__anext__() for _ in range(3)] == [0, 1, 2]
            assert await weft.call_async(g.produced) >= ran

        asyncio.run(main())


def test_in_process_streams_async_for_and_cancellation():
    impl = rpc_demo.GridImpl()
    weft.register(rpc_demo.Grid, impl, name="grid-async")
    try:
        g = weft.connect(rpc_demo.Grid, name="grid-async")

        async def main():
            assert [x async for x in await weft.call_async(g.count, 5)] == [0, 1, 2, 3, 4]
            stream = await weft.call_async(g.paced, 10**6, 0.01)
            assert await stream.__anext__() == 0
            await stream.aclose()
            made = g.produced()
            with pytest.raises(StopAsyncIteration):
                await stream.__anext__()
            await asyncio.sleep(0.1)
            assert g.produced() == made  # the method's generator was closed

        asyncio.run(main())
    finally:
        weft.unregister("grid-async")


def test_weft_aio_proxies_on_every_transport(store_server):  # noqa: F811
    """weft.aio: `await proxy.method(...)` (keyword arguments too) in this process, over ipc://
    and over tcp://, with the loop free meanwhile; errors and streams as with the blocking proxy."""
    sid, _ = store_server
    server = weft.Server(f"pyaio-{id(store_server)}", listen="tcp://127.0.0.1:0", plaintext=True)
    server.register(rpc_demo.Store, rpc_demo.StoreImpl(), name="store", allow_pickle=["stash.anything"])

    async def main():
        with server:
            places = [dict(address=None), dict(address=f"ipc://{sid}"),
                      dict(address=server.addresses[1], plaintext=True)]
            for where in places:
                async with await weft.aio.connect(rpc_demo.Store, name="store", **where) as s:
                    before = await s.value()
                    assert await s.increment(amount=2) == before + 2
                    (slept, ticks) = await ticking(s.nap(0.2))
                    assert slept == 0.2 and ticks > 5, where  # the loop ran while the call waited
                    if where["address"] is not None:  # checked when encoded (in-process calls pass objects as they are)
                        with pytest.raises(weft.InvalidArgument):
                            await s.increment("two")
                    with pytest.raises(AttributeError):
                        s.no_such_method
    asyncio.run(main())
