"""asyncio: `await proxy.method(...)` for a resource on any transport (in this process,
ipc://, tcp://), without blocking the event loop.

    async with await weft.aio.connect(Store, name="store", address="tcp://10.0.0.2:7000",
                                      key="host.key", trust="ed25519:...") as s:
        total = await s.increment(amount=5)
        async for chunk in await s.items(10):   # a streaming method
            ...

Each call runs in the loop's executor while it waits on the resource (the GIL is released
there); cancelling the awaiting task cancels the call (the resource sees weft.cancelled()).
"""

from __future__ import annotations

import asyncio
from typing import Optional

from . import rpc as _rpc
from ._errors import InvalidArgument


async def connect(contract_cls, name: str, address: Optional[str] = None, timeout: Optional[float] = 30.0,
                  **options) -> "AsyncProxy":
    """weft.connect's asyncio twin (the same arguments): the connection is made in the loop's
    executor, and the proxy's methods are coroutines."""
    loop = asyncio.get_running_loop()
    proxy = await loop.run_in_executor(
        None, lambda: _rpc.connect(contract_cls, name=name, address=address, timeout=timeout, **options))
    return AsyncProxy(proxy)


class AsyncProxy:
    """A proxy whose methods are coroutines: `await p.method(*args, **kwargs)`; a streaming
    method gives a weft.AsyncStream (`async for`). Per-call options: `await
    p.call("method", *args, timeout=..., hold=...)`."""

    def __init__(self, proxy):
        self._proxy = proxy
        self._contract = proxy._contract

    def __repr__(self) -> str:
        return f"<weft.aio.AsyncProxy over {self._proxy!r}>"

    def __getattr__(self, method: str):
        m = self._contract.attribute(method)
        target = getattr(self._proxy, method)

        async def call(*args, **kwargs):
            return await _rpc.call_async(target, *_rpc._bind(m, args, kwargs))

        call.__name__ = method
        self.__dict__[method] = call
        return call

    async def call(self, method: str, *args, timeout=_rpc._DEFAULT, hold: bool = False):
        """Calls `method` with per-call options (`timeout` in seconds, `hold`)."""
        if self._contract.method(method) is None:
            raise InvalidArgument(f"contract {self._contract.namespace}/{self._contract.name} has no method {method!r}")
        return await _rpc.call_async(getattr(self._proxy, method), *args, timeout=timeout, hold=hold)

    async def close(self) -> None:
        self._proxy.close()

    async def __aenter__(self) -> "AsyncProxy":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()
