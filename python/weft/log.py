"""weft.Log: a durable append-only log, followed live by tails in any process.

    with weft.Log("/var/lib/app/events", fsync="always") as log:
        seq = log.append(b"step 1")                 # durable when it returns
        first = log.append_batch([b"a", b"b"])      # None for an empty batch
    reader = weft.Log("/var/lib/app/events", read_only=True)   # another process
    for rec in reader.tail(from_seq=0):             # backfills, then follows appends
        handle(rec.seq, bytes(rec.payload))         # payload: a memoryview into the file
"""

from __future__ import annotations

from typing import Iterator, Optional

from . import _native
from ._errors import Closed, Timeout, WouldBlock
from ._util import await_in_slices


class Record:
    """One record: seq, timestamp_ns, flags, and payload (a read-only memoryview)."""

    __slots__ = ("seq", "timestamp_ns", "flags", "payload")

    def __init__(self, seq: int, timestamp_ns: int, flags: int, span):
        self.seq = seq
        self.timestamp_ns = timestamp_ns
        self.flags = flags
        self.payload = memoryview(span)

    def __repr__(self) -> str:
        return f"Record(seq={self.seq}, {len(self.payload)} bytes)"


class Tail:
    """Records from a starting sequence number on: those on disk, then each new append.

    Iterating blocks until the next record (or `timeout` seconds per record, ending the
    iteration when it passes); close() ends it from any thread.
    """

    def __init__(self, native, timeout: Optional[float]):
        self._t = native
        self._timeout = timeout
        self._pending = None  # a record read by a cancelled next_async(), returned next

    def __repr__(self) -> str:
        return f"<weft.Tail position={self.position}>"

    def next(self, timeout: Optional[float] = None) -> Record:
        """The next record; raises weft.Timeout (weft.WouldBlock for timeout=0) if none came."""
        if self._pending is not None:
            return self._take_pending()
        return Record(*self._t._next(timeout))

    async def next_async(self, timeout: Optional[float] = None) -> Record:
        """Awaits the next record without blocking the event loop: the wait runs in the loop's
        executor in slices of 0.1 s, so a cancelled task stops within one slice (a record that
        slice read is kept for the next call, not lost)."""
        if self._pending is not None:
            return self._take_pending()
        return Record(*await await_in_slices(self._t._next, timeout, f"record {self.position}", self._keep))

    def _keep(self, fields) -> None:
        self._pending = fields

    def _take_pending(self) -> Record:
        fields, self._pending = self._pending, None
        return Record(*fields)

    def __aiter__(self):
        """`async for record in tail:` as iteration, without blocking the event loop."""
        return self._records_async()

    async def _records_async(self):
        while True:
            try:
                yield await self.next_async(self._timeout)
            except (Timeout, Closed):
                return

    @property
    def position(self) -> int:
        """The sequence number of the record the next call returns."""
        return self._t.position if self._pending is None else self._pending[0]

    def close(self) -> None:
        """Ends the tail; a next() waiting in another thread raises weft.Closed."""
        self._t.close()

    def __iter__(self) -> Iterator[Record]:
        return self

    def __next__(self) -> Record:
        try:
            return self.next(self._timeout)
        except (Timeout, WouldBlock, Closed):
            raise StopIteration from None

    def __enter__(self) -> "Tail":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Log(_native._Log):
    """A durable append-only log in directory `path` (created by a writer if absent).

    fsync: "never", "every_n" (every fsync_every_n records), "interval" (every
    fsync_interval_ms, in the background) or "always" (append returns once on disk; concurrent
    appenders share fsyncs). Retention removes whole old segments on disk. One writer at a
    time (weft.Busy for a second); read_only=True opens a reader.
    """

    def __init__(self, path, fsync: str = "never", *, fsync_every_n: int = 1000,
                 fsync_interval_ms: int = 100, segment_bytes: int = 64 << 20,
                 retention_events: int = 0, retention_bytes: int = 0, retention_age_ms: int = 0,
                 read_only: bool = False, create: bool = True):
        super().__init__(str(path), fsync, fsync_every_n, fsync_interval_ms, segment_bytes,
                         retention_events, retention_bytes, retention_age_ms, read_only, create)

    def read(self, seq: int) -> Record:
        """Record `seq`; weft.OutOfRange outside [first_seq, next_seq)."""
        return Record(*self._read(seq))

    def tail(self, from_seq: int = 0, timeout: Optional[float] = None, spin_ns: int = 50_000) -> Tail:
        """A tail from `from_seq`; iteration waits up to `timeout` seconds per record (None: no
        limit)."""
        return Tail(self._tail(from_seq, spin_ns), timeout)

    def __len__(self) -> int:
        return self.next_seq - self.first_seq

    def __enter__(self) -> "Log":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
