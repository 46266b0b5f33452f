"""weft.Bus: an event bus of N shards, read by consumer groups.

    with weft.Bus(num_shards=4, backpressure="drop_oldest") as bus:    # memory: this process
        bus.ingest_raw('{"token": "hello"}')                            # str or bytes
        bus.ingest({"token": "world"})                                  # a dict, as JSON
        n = bus.ingest_raw_batch([b"a", b"b", b"c"])                    # how many went in
        for event in bus.poll(limit=100, timeout=0.1):                  # group "default"
            print(event.shard, event.offset, bytes(event.raw), event.parse())

    bus = weft.Bus("shm:tokens")                  # shared memory: any process of this host
    with bus.subscribe("workers") as consumer:    # a member of group "workers"
        for event in consumer:                    # waits; `async for` in asyncio
            ...

Events keep their order per shard (only per shard); a key always lands on the same shard, and
events without one stay on one shard per producing thread. Every group sees every event; a
group's members share its shards. Event data is a view into the bus's memory, valid until the
consumer's next poll: copy what you keep (bytes(event.raw)). Guide: docs/bus.md.
"""

from __future__ import annotations

import json
from typing import Iterable, Iterator, List, Optional, Sequence

from . import _native
from ._errors import Closed, InvalidArgument, Timeout, WouldBlock
from ._util import await_descriptor

_BACKPRESSURE = {"block": "block", "drop_newest": "drop_newest", "drop_oldest": "drop_oldest", "fail": "fail",
                 "fail_producer": "fail"}


RedisStreamDedup = _native.RedisStreamDedup


def _power_of_two_at_least(n: int) -> int:
    if not isinstance(n, int) or isinstance(n, bool) or n <= 0:
        raise InvalidArgument(f"capacity must be a positive number of bytes, not {n!r}")
    return 1 << (n - 1).bit_length()


class Event:
    """One event of a poll: shard, offset (its position; resume from it), timestamp_ns (0 unless
    the bus stamps events), key (bytes or None), raw (a read-only memoryview of the data in the
    bus's memory, valid until the next poll), parse() (the data as JSON) and bytes()."""

    __slots__ = ("_batch", "_i", "shard", "offset", "timestamp_ns", "key", "_raw")

    def __init__(self, batch, i: int):
        self._batch = batch
        self._i = i
        self.shard, self.offset, self.timestamp_ns, self.key = batch._meta(i)
        self._raw = None

    @property
    def raw(self) -> memoryview:
        if self._raw is None:
            self._raw = memoryview(self._batch._span(self._i))
        return self._raw

    def bytes(self) -> bytes:
        """A copy of the data."""
        return self._batch._bytes(self._i)

    def text(self) -> str:
        """The data decoded as UTF-8."""
        return self._batch._bytes(self._i).decode()

    def parse(self):
        """The data parsed as JSON."""
        return json.loads(self._batch._bytes(self._i))

    def _release(self) -> None:
        if self._raw is not None:
            try:
                self._raw.release()
            except BufferError:
                pass  # an array made from it is alive: the batch reports it

    def __repr__(self) -> str:
        return f"Event(shard={self.shard}, offset={self.offset}, {len(self.raw)} bytes)"


class Batch(Sequence[Event]):
    """The events of one poll, in order per shard. Indexing and iteration make Event objects;
    copy() (a list of bytes), join() (all data in one bytes), sizes() and nbytes work on the
    whole batch at once. Valid until the consumer's next poll, commit or close."""

    __slots__ = ("_b", "_events")

    def __init__(self, native):
        self._b = native
        self._events: Optional[List[Event]] = None

    def _all(self) -> List[Event]:
        if self._events is None:
            b = self._b
            self._events = [Event(b, i) for i in range(len(b))]
        return self._events

    def __len__(self) -> int:
        return len(self._b)

    def __getitem__(self, i):
        return self._all()[i]

    def __iter__(self) -> Iterator[Event]:
        return iter(self._all())

    def copy(self) -> List[bytes]:
        """Every event's data as bytes, in order (one copy each)."""
        return self._b.copy()

    def join(self) -> bytes:
        """The data of every event, one after another, in one bytes object."""
        return self._b.join()

    def sizes(self) -> List[int]:
        """The size of every event's data, in order."""
        return self._b.sizes()

    @property
    def nbytes(self) -> int:
        return self._b.nbytes

    @property
    def valid(self) -> bool:
        return self._b.valid

    def _release(self) -> None:
        if self._events is not None:
            for e in self._events:
                e._release()

    def __repr__(self) -> str:
        return f"<weft.bus.Batch {len(self)} events>"


class Consumer:
    """A member of a consumer group: poll() batches from the shards the group gives it.

    With auto_commit (the default) each poll commits what the previous one delivered; after a
    restart or when shards move between members, the group resumes after the last commit
    (at-least-once). Iteration and `async for` yield events one by one, waiting up to `timeout`
    seconds for each (None: no limit) and ending when it passes or the consumer is closed.
    """

    def __init__(self, native, timeout: Optional[float]):
        self._c = native
        self._timeout = timeout
        self._batch: Optional[Batch] = None

    def _end_batch(self) -> None:
        if self._batch is not None:
            self._batch._release()
            self._batch = None

    def poll(self, limit: int = 1024, timeout: Optional[float] = 0) -> Batch:
        """Up to `limit` events, waiting up to `timeout` seconds for the first (0: no wait; None:
        no limit). An empty batch when none came. Ends the previous batch: weft.InvalidArgument
        if a view made from one of its events is still alive."""
        self._end_batch()
        try:
            native = self._c._poll(limit, timeout)
        except (Timeout, WouldBlock):
            return _EMPTY
        self._batch = Batch(native)
        return self._batch

    async def poll_async(self, limit: int = 1024, timeout: Optional[float] = None) -> Batch:
        """poll() without blocking the event loop: it waits on the member's descriptor
        (fileno()), which producers in any process ring. A cancelled task takes nothing."""
        self._end_batch()
        try:
            native = await await_descriptor(self._c.fileno(), lambda: self._c._poll(limit, 0), timeout,
                                            f"group {self.group}")
        except Timeout:
            return _EMPTY
        self._batch = Batch(native)
        return self._batch

    def fileno(self) -> int:
        """A descriptor that turns readable when poll() may find something (events in this
        member's shards, a change of membership): for select, selectors or an event loop. A poll
        with timeout 0 that found nothing arms it; it starts readable."""
        return self._c.fileno()

    def commit(self) -> None:
        """Commits everything delivered so far (ends the last batch)."""
        self._end_batch()
        self._c.commit()

    @property
    def shards(self) -> List[int]:
        """The shards this member reads now."""
        return self._c.shards

    @property
    def group(self) -> str:
        return self._c.group

    @property
    def closed(self) -> bool:
        return self._c.closed

    def interrupt(self) -> None:
        """From any thread: the poll in progress, and every later one, raise weft.Closed."""
        self._c.interrupt()

    def close(self) -> None:
        """Commits (with auto_commit) and leaves the group; its shards go to the other members."""
        self._end_batch()
        self._c.close()

    def __iter__(self) -> Iterator[Event]:
        while True:
            try:
                batch = self.poll(256, self._timeout)
            except Closed:
                return
            if len(batch) == 0:
                return
            yield from batch

    def __aiter__(self):
        return self._events_async()

    async def _events_async(self):
        while True:
            try:
                batch = await self.poll_async(256, self._timeout)
            except Closed:
                return
            if len(batch) == 0:
                return
            for event in batch:
                yield event

    def __enter__(self) -> "Consumer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<weft.bus.Consumer group={self._c.group!r} shards={self._c.shards}>" if not self.closed \
            else "<weft.bus.Consumer closed>"


class _EmptyBatch(Batch):
    __slots__ = ()

    def __init__(self):
        self._events = []

    def __len__(self) -> int:
        return 0

    def copy(self) -> List[bytes]:
        return []

    def join(self) -> bytes:
        return b""

    def sizes(self) -> List[int]:
        return []

    @property
    def nbytes(self) -> int:
        return 0

    @property
    def valid(self) -> bool:
        return True

    def _release(self) -> None:
        pass


_EMPTY = _EmptyBatch()


class BusStats:
    """A snapshot of a bus's counters: ingested, dropped (by cause: dropped_newest, dropped_oldest,
    lost_events), per_shard (dicts), groups (dicts with members, lag_bytes, delivered, dropped and
    per-shard positions) and producers. events_ingested and events_dropped are also there."""

    def __init__(self, d: dict):
        self.__dict__.update(d)
        self.dropped = d["dropped_newest"] + d["dropped_oldest"] + d["lost_events"]
        self.events_ingested = d["ingested"]
        self.events_dropped = self.dropped

    def group(self, name: str) -> Optional[dict]:
        """The stats of group `name`, or None."""
        for g in self.groups:
            if g["name"] == name:
                return g
        return None

    def __repr__(self) -> str:
        return (f"BusStats(shards={self.shards}, ingested={self.ingested}, dropped={self.dropped}, "
                f"groups={[g['name'] for g in self.groups]})")


class Bus:
    """An event bus.

    url: "memory:" (the threads of this process), "shm:<name>" (the processes of this host),
    "log:<directory>" (durable: a log per shard, committed positions on disk; survives restarts
    of every process), "redis://[user:password@]host:port/<name>" (Redis Streams) or
    "nats://[credentials@]host:port[,host:port...]/<name>" (NATS JetStream; docs/scale-out.md).
    A bus is created by the first to open it with the options given; later opens take it as it
    is.
    num_shards: 0 for one per CPU. capacity: bytes per shard's ring (rounded up to a power of
    two). max_event: the largest event (0: a quarter of a shard or log segment). backpressure
    when a shard is full: "block" (the producer waits; the default), "drop_newest" (the new
    event is dropped, counted), "drop_oldest" (the slowest group loses its oldest unread events,
    counted) or "fail" (alias "fail_producer": weft.ResourceExhausted at once). A log: bus is
    never full: its shards are bounded by retention, and it takes only "drop_oldest" (its
    default): a group that falls behind retention loses what it removed, counted.
    groups: groups that exist from the start, so that events ingested before anyone subscribes
    wait for them. linger_us: 0 publishes each ingest at once; above 0, events without a key
    are gathered per thread and published as one batch once linger_events are gathered or the
    oldest is linger_us old (checked at the next ingest), or at flush(); flush() before a
    thread stops (its gathered events are published when it exits). log: only: fsync ("never", "every_n", "interval" or "always": ingest returns
    once on disk, concurrent ingests share fsyncs), segment_bytes, retention_events,
    retention_bytes, retention_age_ms, as weft.Log has them. redis:// and nats:// only:
    nonce_path (the producer's nonce file, for effectively-once across restarts), max_len
    (events kept per shard, with "drop_oldest"), claim_idle_ms (a dead member's events go to
    another member after this), op_timeout_ms (connecting and each round trip),
    dedup_window_ms and replicas (nats: the stream's), dedup_capacity (redis: ids each consumer
    remembers to drop duplicates).
    """

    def __init__(self, url: str = "memory:", *, num_shards: int = 0, capacity: int = 1 << 22, max_event: int = 0,
                 backpressure: Optional[str] = None, timestamps: bool = False, groups: Iterable[str] = (),
                 must_match: bool = False, create: bool = True, timeout: Optional[float] = 0,
                 fsync: str = "never", fsync_every_n: int = 1000, fsync_interval_ms: int = 100,
                 segment_bytes: int = 64 << 20, retention_events: int = 0, retention_bytes: int = 0,
                 retention_age_ms: int = 0, linger_us: float = 0, linger_events: int = 64,
                 nonce_path: Optional[str] = None, max_len: int = 0, claim_idle_ms: int = 30_000,
                 op_timeout_ms: int = 5_000, dedup_window_ms: int = 120_000, dedup_capacity: int = 65_536,
                 replicas: int = 1):
        url = str(url)
        if backpressure is None:
            backpressure = "drop_oldest" if url.startswith("log:") else "block"
        if backpressure not in _BACKPRESSURE:
            raise InvalidArgument("backpressure must be 'block', 'drop_newest', 'drop_oldest' or 'fail' "
                                  f"('fail_producer'), not {backpressure!r}")
        self._b = _native._Bus(url, num_shards, _power_of_two_at_least(capacity), max_event,
                               _BACKPRESSURE[backpressure], timestamps, list(groups), must_match, create,
                               fsync, fsync_every_n, fsync_interval_ms, segment_bytes, retention_events,
                               retention_bytes, retention_age_ms, int(linger_us * 1000), linger_events,
                               str(nonce_path or ""), max_len, claim_idle_ms, op_timeout_ms, dedup_window_ms,
                               dedup_capacity, replicas)
        self._default: Optional[Consumer] = None
        self._poll_timeout = timeout
        # The hot paths are the native methods themselves (no Python frame in between).
        self.ingest_raw = self._b.ingest_raw
        self.ingest_raw_batch = self._b.ingest_raw_batch
        self.shard_of = self._b.shard_of

    @property
    def num_shards(self) -> int:
        return self._b.num_shards

    @property
    def url(self) -> str:
        return self._b.url

    @property
    def shard_bytes(self) -> int:
        """Each shard's capacity in bytes."""
        return self._b.shard_bytes

    @property
    def max_event(self) -> int:
        return self._b.max_event

    @property
    def backpressure(self) -> str:
        return self._b.backpressure

    @property
    def closed(self) -> bool:
        return self._b.closed

    def ingest(self, event, key=None, timeout: Optional[float] = None):
        """Ingests `event`: a dict (or any JSON value) as JSON, or str or bytes as they are; with
        `key`, on the key's shard. Returns (shard, offset); offset is None if drop_newest
        dropped it, -1 while linger holds it (published later). Under block, waits up to `timeout` seconds for room (None: no limit)."""
        if not isinstance(event, (str, bytes, bytearray, memoryview)):
            event = json.dumps(event, separators=(",", ":"))
        return self._b._ingest(event, key, timeout)

    def subscribe(self, group: str = "default", *, auto_commit: bool = True, start: str = "oldest",
                  timeout: Optional[float] = None, spin_us: Optional[float] = None) -> Consumer:
        """Joins `group` (created if absent, at the oldest event held or, start="latest", at the
        end) as a new member. `timeout` bounds the wait of iteration per event (None: no limit)."""
        spin_ns = -(2 ** 63) if spin_us is None else int(spin_us * 1000)
        return Consumer(self._b._subscribe(group, auto_commit, start, spin_ns), timeout)

    def poll(self, limit: int = 1024, timeout: Optional[float] = None) -> Batch:
        """Polls as the bus's own member of group "default" (joined at the first call): up to
        `limit` events, waiting up to `timeout` seconds (None: the bus's timeout, 0 by default)."""
        if self._default is None:
            self._default = self.subscribe("default")
        return self._default.poll(limit, self._poll_timeout if timeout is None else timeout)

    def stats(self) -> BusStats:
        """A snapshot of the bus's counters, per shard and per group."""
        return BusStats(self._b._stats())

    def health(self) -> dict:
        """"ok", or "degraded" with the reasons: events lost or dropped, groups without members."""
        s = self.stats()
        reasons = []
        if s.lost_events:
            reasons.append(f"{s.lost_events} events lost by producers that died")
        if s.dropped:
            reasons.append(f"{s.dropped} events dropped by backpressure")
        for g in s.groups:
            if g["members"] == 0 and g["lag_bytes"]:
                reasons.append(f"group {g['name']!r} has no live member and {g['lag_bytes']} bytes to read")
        return {"status": "degraded" if reasons else "ok", "reasons": reasons}

    def flush(self) -> None:
        """Publishes the calling thread's gathered events (linger_us) now. Without linger an
        ingest is in the bus when it returns, and this returns at once."""
        self._b.flush()

    def shutdown(self) -> None:
        """Publishes this thread's gathered events, leaves the default group (committing what it
        read) and closes the bus handle. Other processes of a shm: bus go on; Bus.unlink removes
        its name."""
        if not self.closed:
            self._b.flush()
        if self._default is not None:
            d, self._default = self._default, None
            d.close()
        self._b._close()

    close = shutdown

    @staticmethod
    def unlink(url: str) -> None:
        """Removes a shm: bus's name (weft.NotFound if there is none); open handles keep working.
        For a log: bus, removes its control segment (the directory and its events stay)."""
        _native._bus_unlink(url)

    def __enter__(self) -> "Bus":
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        if "_b" not in self.__dict__ or self.closed:
            return "<weft.Bus closed>"
        return f"<weft.Bus {self.url} shards={self.num_shards} backpressure={self.backpressure}>"
