"""weft.Channel: one producer, one consumer, variable-size records in shared memory."""

from __future__ import annotations

from typing import Optional

from . import _native
from ._errors import Closed, InvalidArgument, Timeout, WouldBlock
from ._util import await_descriptor

_DEFAULT_CAPACITY = 1 << 20


class _Borrow:
    """Context manager around one zero-copy record: a memoryview valid inside the block."""

    __slots__ = ("_ch", "_span", "_view", "_commit")

    def __init__(self, ch, span, commit: Optional[int]):
        self._ch = ch
        self._span = span
        self._view = None
        self._commit = commit  # None: a read to release; an int: a reservation to commit

    def __enter__(self) -> memoryview:
        self._view = memoryview(self._span)
        return self._view

    def __exit__(self, exc_type, exc, tb):
        try:
            self._view.release()
        except BufferError:
            pass
        # Arrays and views made from the record share its buffer: alive, they keep it exported.
        escaped = self._span.exports > 0
        self._span._invalidate()
        if self._commit is None:
            self._ch.release(1)
        elif exc_type is None:
            self._ch.commit(self._commit)
        else:
            self._ch._unreserve()
        if escaped and exc_type is None:
            # The ring's memory is reused for later records: refuse, rather than let the array
            # silently show them. (The record is released; the channel goes on.)
            raise InvalidArgument("a NumPy array or memoryview made from the record outlives the 'with' block; "
                                  "the ring reuses that memory: copy what you keep inside the block "
                                  "(numpy.array(view), bytes(view))")
        return False


class Channel(_native._Channel):
    """One endpoint of a shared-memory channel.

    Timeouts are in seconds; None waits without limit (Ctrl-C still works), 0 does not wait
    and raises WouldBlock. The GIL is released while waiting.

    Producer: reserve(n) (context manager), write(data), write_batch(records), flush().
    Consumer: read() (context manager), read_bytes(), read_batch(max_records), iteration.
    Both: fileno(), stats(), close(), name, capacity, max_record, role.
    """

    @classmethod
    def create(cls, name: str, capacity: int = _DEFAULT_CAPACITY, max_record: int = 0,
               role: str = "producer", on_full: str = "block",
               spin_us: Optional[float] = None) -> "Channel":
        """Creates channel `name` and attaches as `role` ("producer" or "consumer").

        max_record=0 allows the largest record that fits (capacity/2 - 64). on_full is
        "block", "drop_newest", "drop_oldest" or "fail" (weft.ResourceExhausted at once). spin_us fixes the spin before sleeping
        (-1: spin until the timeout, 0: sleep at once); None adapts it.
        """
        return cls(name, True, capacity, max_record, role, on_full, spin_us)

    @classmethod
    def open(cls, name: str, role: str = "consumer", spin_us: Optional[float] = None) -> "Channel":
        """Opens an existing channel as `role`; takes over the role of a dead peer."""
        return cls(name, False, 0, 0, role, "block", spin_us)

    @staticmethod
    def unlink(name: str) -> None:
        """Removes the name; attached endpoints keep working."""
        _native._Channel.unlink(name)

    @staticmethod
    def snapshot(name: str) -> dict:
        """Counters, cursors and roles of a channel, without attaching to it."""
        return _native._Channel.snapshot(name)

    def reserve(self, n: int, timeout: Optional[float] = None) -> _Borrow:
        """`with ch.reserve(n) as buf:` a writable memoryview, committed on a clean exit."""
        return _Borrow(self, self._reserve_span(n, timeout), n)

    def read(self, timeout: Optional[float] = None) -> _Borrow:
        """`with ch.read() as view:` a read-only memoryview of the next record, released on exit."""
        return _Borrow(self, self._read_span(timeout), None)

    async def reserve_async(self, n: int, timeout: Optional[float] = None) -> _Borrow:
        """reserve() without blocking the event loop: `with await ch.reserve_async(n) as buf:`."""
        return await self._await(lambda: self.reserve(n, 0), timeout)

    async def read_async(self, timeout: Optional[float] = None) -> _Borrow:
        """read() without blocking the event loop: `with await ch.read_async() as view:` (no copy)."""
        return await self._await(lambda: self.read(0), timeout)

    async def read_bytes_async(self, timeout: Optional[float] = None) -> bytes:
        """Awaits the next record (copied) without blocking the event loop."""
        return await self._await(lambda: self.read_bytes(0), timeout)

    async def write_async(self, data, timeout: Optional[float] = None) -> None:
        """Awaits room for one record and copies it in, without blocking the event loop."""
        await self._await(lambda: self.write(data, 0), timeout)

    async def _await(self, attempt, timeout):
        return await await_descriptor(self.fileno(), attempt, timeout, f"channel {self.name!r}")

    def __iter__(self):
        """Yields records (bytes) until the producer closes; raises PeerDead if it dies."""
        read = self.read_bytes
        while True:
            try:
                yield read(None)
            except Closed:
                return

    def __enter__(self) -> "Channel":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        if self.closed:
            return "<weft.Channel closed>"
        return f"<weft.Channel {self.name!r} {self.role} capacity={self.capacity}>"
