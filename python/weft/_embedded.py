"""The embedded profile (weft.graph.Graph.scalar_sensor, bulk_sensor, check_embedded_profile):
the shapes a small device's signals take. A scalar sensor is a raw route of float readings and
a logical route made from it (smoothed, with a deadband); a bulk sensor publishes cheap
metadata per capture and keeps the payload behind it, opened on demand. Guide: docs/graph.md,
"Embedded profile"."""

from __future__ import annotations

import dataclasses

from . import _native


@dataclasses.dataclass(frozen=True)
class BulkMeta:
    """A bulk capture's metadata: the payload's size and CRC-32C, the device's kind, its time."""
    bytes: int
    crc32c: int
    kind: int
    captured_ns: int


class ScalarSensor:
    """`raw` and `logical` routes of floats; read(value) publishes a reading; `suppressed`
    counts readings the deadband kept from the logical route."""

    __slots__ = ("_native", "raw", "logical")

    def __init__(self, native, raw, logical):
        self._native, self.raw, self.logical = native, raw, logical

    def read(self, value: float, *, event_ns: int = 0) -> None:
        self._native.read(float(value), event_ns)

    @property
    def suppressed(self) -> int:
        return self._native.suppressed

    def close(self) -> None:
        self._native.close()


class BulkSensor:
    """`meta` (BulkMeta values, cheap) and `payload` (bytes, kept: the newest `keep`) routes;
    capture(data) publishes both; open(meta, envelope) returns the payload a metadata value
    announced (NotFound once it left the window, Corrupt if it does not match), counted."""

    __slots__ = ("_native", "meta", "payload")

    def __init__(self, native, meta, payload):
        self._native, self.meta, self.payload = native, meta, payload

    def capture(self, data, *, kind: int = 0, event_ns: int = 0) -> None:
        self._native.capture(bytes(data), kind, event_ns)

    def open(self, meta: BulkMeta, envelope) -> bytes:
        return self._native.open(envelope, meta.bytes, meta.crc32c, meta.kind, meta.captured_ns)

    def snapshot(self) -> dict:
        return self._native.snapshot()


def _meta_schema():
    from .graph import Schema
    return Schema.pod("weft.bulk.meta.v1", "<QIIq", cls=BulkMeta)


def scalar_sensor(graph, owner, family, stream, *, smoothing: float = 1.0, deadband: float = 0.0) -> ScalarSensor:
    from .graph import TypedRoute
    raw = TypedRoute(str(owner), str(family), str(stream), float, layer="raw")
    logical = TypedRoute(str(owner), str(family), str(stream), float, layer="logical")
    graph._port(raw)
    graph._port(logical)
    s = ScalarSensor(_native.ScalarSensor(graph._core, str(owner), str(family), str(stream), float(smoothing),
                                          float(deadband)), raw, logical)
    graph._flows.append(s)
    return s


def bulk_sensor(graph, owner, family, stream, *, keep: int = 4, max_payload: int = 64 << 20) -> BulkSensor:
    from .graph import TypedRoute
    meta = TypedRoute(str(owner), str(family), str(stream), _meta_schema(), layer="logical")
    payload = TypedRoute(str(owner), str(family), str(stream), bytes, variant="payload", layer="bulk")
    graph._port(meta)
    graph._port(payload)
    s = BulkSensor(_native.BulkSensor(graph._core, str(owner), str(family), str(stream), keep, max_payload), meta, payload)
    graph._flows.append(s)
    return s
