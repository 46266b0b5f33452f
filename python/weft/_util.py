"""Helpers shared by the package: argument checks of the NumPy helpers (misuse raises
weft.InvalidArgument) and the one asyncio wait over a pollable descriptor."""

from __future__ import annotations

from ._errors import InvalidArgument, Timeout, WouldBlock


def dtype_of(dtype):
    """numpy.dtype(dtype), or weft.InvalidArgument saying what was wrong."""
    import numpy as np
    try:
        return np.dtype(dtype)
    except (TypeError, ValueError) as e:
        raise InvalidArgument(f"not a NumPy dtype: {dtype!r} ({e})") from None


def element_count(shape) -> int:
    """The number of elements of `shape` (an int or a tuple of non-negative ints)."""
    dims = shape if isinstance(shape, tuple) else (shape,)
    count = 1
    for dim in dims:
        if not isinstance(dim, int) or isinstance(dim, bool) or dim < 0:
            raise InvalidArgument(f"shape {shape!r}: dimensions must be non-negative integers")
        count *= dim
    return count


def array_over(buffer, shape, dtype, what: str):
    """A NumPy array of `shape` and `dtype` over `buffer` (no copy), or weft.InvalidArgument if
    it does not fit."""
    import numpy as np
    dtype = dtype_of(dtype)
    count = element_count(shape)
    size = memoryview(buffer).nbytes
    if count * dtype.itemsize > size:
        raise InvalidArgument(f"an array of shape {shape!r} and dtype {dtype} needs {count * dtype.itemsize} "
                              f"bytes; {what} has {size}")
    return np.frombuffer(buffer, dtype=dtype, count=count).reshape(shape)


async def await_descriptor(fd: int, attempt, timeout, what: str):
    """Awaits `attempt()` (a non-blocking call) without blocking the event loop. An attempt that
    raises WouldBlock has armed descriptor `fd`; the loop wakes us when it turns readable, and a
    periodic retry also reports a dead peer."""
    import asyncio
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    while True:
        try:
            return attempt()
        except WouldBlock:
            pass
        left = None if deadline is None else deadline - loop.time()
        if left is not None and left <= 0:
            raise Timeout(f"timed out waiting on {what}")
        ready = loop.create_future()
        loop.add_reader(fd, lambda: ready.done() or ready.set_result(None))
        try:
            await asyncio.wait_for(ready, 0.1 if left is None else min(0.1, left))
        except asyncio.TimeoutError:
            pass
        finally:
            loop.remove_reader(fd)


async def await_in_slices(call, timeout, what: str, keep=None):
    """Awaits `call(t)`, a blocking call that releases the GIL and raises Timeout or WouldBlock
    when nothing happened within t seconds, without blocking the event loop: one try without
    waiting, then waits of at most 0.1 s each in the loop's executor, so a cancelled task stops
    within one slice. A slice still running when the task is cancelled is let finish; if it
    succeeded, keep(result) is called so that what it took is not lost (a record read, a sample
    published); then CancelledError is raised."""
    import asyncio
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    try:
        return call(0)
    except (Timeout, WouldBlock):
        pass
    while True:
        left = None if deadline is None else deadline - loop.time()
        if left is not None and left <= 0:
            raise Timeout(f"timed out waiting on {what}")
        future = loop.run_in_executor(None, call, 0.1 if left is None else min(0.1, left))
        try:
            return await asyncio.shield(future)
        except (Timeout, WouldBlock):
            continue
        except asyncio.CancelledError:
            try:
                result = await future
            except Exception:
                raise asyncio.CancelledError from None
            if keep is not None:
                keep(result)
            raise
