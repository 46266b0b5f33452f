"""Weft: zero-copy data plane for AI and scientific runtimes.

    import weft
    tx = weft.Channel.create("frames", capacity=64 << 20)
    with tx.reserve(1024) as buf:      # writable memoryview into shared memory
        buf[:] = payload
    rx = weft.Channel.open("frames")   # in another process
    with rx.read(timeout=1.0) as view: # read-only memoryview, valid inside the block
        total = numpy.frombuffer(view, dtype=numpy.float32).sum()   # arrays must not outlive it
"""

import pkgutil as _pkgutil

# The compiled module may live in a build tree beside this package (weft/_native*.so there).
__path__ = _pkgutil.extend_path(__path__, __name__)

from ._errors import *  # noqa: E402,F401,F403
from ._errors import __all__ as _error_names  # noqa: E402
from .bus import Batch, Bus, BusStats, Consumer, Event, RedisStreamDedup  # noqa: E402
from .channel import Channel  # noqa: E402
from .log import Log, Record, Tail  # noqa: E402
from .pool import Pool  # noqa: E402
from .rpc import (AsyncStream, Breaker, CancelToken, block_id, Caller, caller, Contract, Held, Proxy, Server, call, call_async, cancelled, check_contract,  # noqa: E402
                  connect, contract, hold, hold_stats, loan_array, loan_buffer, read, register, Retry, transferable,
                  unregister)
from .topic import Publisher, Sample, Subscriber, unlink_topic  # noqa: E402
from . import aio  # noqa: E402,F401

__version__ = "0.1.0"
__all__ = ["Bus", "Batch", "BusStats", "Consumer", "Event", "RedisStreamDedup", "Channel", "Log", "Record", "Tail", "Pool", "Publisher", "Subscriber", "Sample", "unlink_topic", "Contract",
           "contract", "read", "check_contract", "register", "unregister", "connect", "Proxy", "Server", "transferable",
           "AsyncStream", "Breaker", "Retry", "CancelToken", "block_id", "Caller", "caller", "Held", "call", "call_async", "cancelled", "hold", "hold_stats", "loan_array", "loan_buffer",
           *_error_names]
