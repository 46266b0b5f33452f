"""Stores for graph state on local files, typed by weft.graph's schemas (exported by
weft.graph; guide: docs/graph.md, "Stores"):

    store = FileStore("/var/lib/app/state")
    plant = store.prefix(b"plant/")          # an ordered byte keyspace
    plant.set(b"boiler/temp", b"21.5")
    plant.range(b"boiler/", b"boiler0")       # [(key, value)], in key order
    log = EventLog("poses", plant, Pose)      # typed appends on a Weft log
    snap = SnapshotStore("setpoint", plant, float)
    Memory("/var/lib/app/memory").remember(g, temp)   # then, after a restart: .resume(g, temp)

One process writes a store at a time (weft.Busy names the holder)."""

from __future__ import annotations

import typing
from typing import Any, Optional

from . import _native


class StoredEvent(typing.NamedTuple):
    seq: int
    timestamp_ns: int
    value: Any


def _schema_of(schema):
    from .graph import Schema
    return Schema.of(schema)


class Keyspace:
    """The keys of a FileStore under a prefix (keys are bytes, or str as UTF-8; they sort as
    bytes). Every write is atomic: there whole after a crash, or not at all."""

    __slots__ = ("_ks",)

    def __init__(self, native):
        self._ks = native

    def get(self, key) -> Optional[bytes]:
        return self._ks.get(key)

    def set(self, key, value) -> None:
        self._ks.set(key, value)

    def clear(self, key) -> None:
        self._ks.clear(key)

    def clear_range(self, begin, end=b"") -> None:
        """Clears [begin, end); an empty end: to the end of the keyspace."""
        self._ks.clear_range(begin, end)

    def range(self, begin=b"", end=b"", limit: Optional[int] = None) -> list:
        """The (key, value) pairs in [begin, end) in key order; an empty end: to the end."""
        return self._ks.range(begin, end, (1 << 62) if limit is None else limit)

    def commit(self, writes) -> None:
        """Several writes, all or none: ("set", key, value), ("clear", key), ("clear_range",
        begin, end)."""
        self._ks.commit(list(writes))

    def prefix(self, more) -> "Keyspace":
        return Keyspace(self._ks.prefix(more))

    @property
    def key_prefix(self) -> bytes:
        return self._ks.key_prefix


class FileStore:
    """Ordered byte keyspaces on local files, with atomic writes. `fsync=False`: a crash of the
    process loses nothing, a crash of the machine may lose the newest writes (never tear one)."""

    __slots__ = ("_store",)

    def __init__(self, root: str, *, fsync: bool = True, compact_above_bytes: int = 4 << 20):
        self._store = _native.FileStore(str(root), fsync, compact_above_bytes)

    def prefix(self, prefix=b"") -> Keyspace:
        return Keyspace(self._store.prefix(prefix))

    def compact(self) -> None:
        self._store.compact()

    def stats(self) -> dict:
        return self._store.stats()

    @property
    def root(self) -> str:
        return self._store.root


class EventLog:
    """Typed appends on a Weft log of its own; each reader's committed position is kept in the
    keyspace, so a reader resumes after what it committed. The schema is recorded at the first
    open: another is weft.SchemaMismatch."""

    __slots__ = ("_log", "schema")

    def __init__(self, name: str, keyspace: Keyspace, schema):
        self.schema = _schema_of(schema)
        self._log = _native.EventLog(name, keyspace._ks, self.schema.text)

    def append(self, value) -> int:
        """Its sequence number (the first is 0); durable when it returns if the store syncs."""
        if self.schema.validate is not None:
            self.schema.validate(value)
        return self._log.append(self.schema.encode(value))

    def read(self, from_seq: int = 0, limit: int = 1024) -> list:
        decode = self.schema.decode
        return [StoredEvent(seq, ts, decode(b)) for seq, ts, b in self._log.read(from_seq, limit)]

    def commit(self, reader: str, next_seq: int) -> None:
        self._log.commit(reader, next_seq)

    def committed(self, reader: str) -> int:
        return self._log.committed(reader)

    @property
    def next_seq(self) -> int:
        return self._log.next_seq


class SnapshotStore:
    """A typed latest value under a name in a keyspace."""

    __slots__ = ("_snap", "schema")

    def __init__(self, name: str, keyspace: Keyspace, schema):
        self.schema = _schema_of(schema)
        self._snap = _native.SnapshotStore(name, keyspace._ks, self.schema.text)

    def set(self, value) -> None:
        if self.schema.validate is not None:
            self.schema.validate(value)
        self._snap.set(self.schema.encode(value))

    def get(self):
        b = self._snap.get()
        return None if b is None else self.schema.decode(b)

    def clear(self) -> None:
        self._snap.clear()


class Memory:
    """A route's latest value with its envelope, kept on disk at `path` (a FileStore):
    `remember(graph, route)` writes each value the route publishes; after a restart
    `resume(graph, route)` publishes the remembered one again (True if there was one)."""

    __slots__ = ("_mem",)

    def __init__(self, path: str, *, fsync: bool = True):
        self._mem = _native.Memory(str(path), fsync)

    def remember(self, graph, route):
        """Returns the remembering (cancel() to stop)."""
        sub = self._mem.remember(graph._port(route))
        graph._flows.append(sub)
        return sub

    def resume(self, graph, route) -> bool:
        return self._mem.resume(graph._port(route))

    @property
    def write_errors(self) -> int:
        return self._mem.write_errors
