"""Windows on routes (weft.graph.Graph.window_by_time, window, and their _aggregate forms):
event-time tumbling windows released by watermarks, count windows, per partition, with a
stated policy for late values and idle partitions that cannot hold the watermark back for
ever. Guide: docs/graph.md, "Windows"."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

from . import _native


@dataclasses.dataclass(frozen=True)
class WindowResult:
    """One window: its partition (the key partition_by gave), [start_ns, end_ns) in event time
    (count windows: the first and last value's), count, sum, min, max, mean, the percentiles
    asked for, its values if kept, whether it updates a window emitted before (a late value
    under late="update"), and with lineage=True the ids of the values it was made from."""
    partition: Any
    start_ns: int
    end_ns: int
    count: int
    sum: float
    min: float
    max: float
    mean: float
    percentiles: tuple
    values: Optional[tuple]
    update: bool
    inputs: Optional[tuple] = None  # the ids of the values it was made from (lineage=True)


@dataclasses.dataclass(frozen=True)
class WindowAggregate:
    """A window reduced to one value by its aggregate."""
    partition: Any
    start_ns: int
    end_ns: int
    value: Any


@dataclasses.dataclass(frozen=True)
class LateValue:
    partition: Any
    event_ns: int
    value: float
    watermark_ns: int


def _json_schema(cls, tuples=()):
    """A schema carrying `cls` as JSON (its partition a JSON value: str, int, float, bool or
    None, for it to leave the process)."""
    import json
    from .graph import Schema

    def encode(v):
        return json.dumps(dataclasses.asdict(v), separators=(",", ":")).encode()

    def decode(b):
        d = json.loads(bytes(b))
        for f in tuples:
            if d.get(f) is not None:
                d[f] = tuple(d[f])
        return cls(**d)

    return Schema(f"json weft.graph.{cls.__name__}.v1", encode, decode, cls)


WINDOW_RESULT = _json_schema(WindowResult, ("percentiles", "values", "inputs"))
WINDOW_AGGREGATE = _json_schema(WindowAggregate)
LATE_VALUE = _json_schema(LateValue)

_BUILTIN = {"count": lambda w: w.count, "sum": lambda w: w.sum, "min": lambda w: w.min, "max": lambda w: w.max,
            "mean": lambda w: w.mean}


class _Keys:
    """Partition keys (any hashable) to the small integer ids the native windows index by."""
    __slots__ = ("ids", "keys")

    def __init__(self):
        self.ids, self.keys = {}, []

    def id(self, key) -> int:
        i = self.ids.get(key)
        if i is None:
            i = self.ids[key] = len(self.keys)
            self.keys.append(key)
        return i


class Windowing:
    """A window operator on a graph (made by Graph.window_by_time and friends): snapshot(),
    flush(), tick(), close()."""

    def __init__(self, graph, native, keys: _Keys, subs: list, output, late_route, clock):
        self._graph, self._native, self._keys, self._subs = graph, native, keys, subs
        self.output, self.late_route, self._clock = output, late_route, clock

    def snapshot(self) -> dict:
        s = self._native.snapshot()
        s["idle"] = [self._keys.keys[i] for i in s["idle"]]
        return s

    def flush(self) -> None:
        """Emits every open window, as at the end of the stream."""
        self._native.flush()

    def tick(self, now_ns: Optional[int] = None) -> None:
        """Looks for partitions gone idle (by the clock, or `now_ns`)."""
        self._native.tick(self._clock() if now_ns is None else now_ns)

    def close(self) -> None:
        for s in self._subs:
            s.cancel()
        self._subs.clear()


def _result(keys: _Keys, t) -> WindowResult:
    pid, start, end, count, total, lo, hi, pct, values, update, _taints, inputs = t
    return WindowResult(keys.keys[pid], start, end, count, total, lo, hi, total / count if count else 0.0, pct,
                        None if values is None else tuple(values), update, inputs)


def install(graph, source, *, by_time: bool, width: float = 0.0, size: int = 0, trigger: int = 0, watermark=None,
            partition_by: Optional[Callable] = None, value: Optional[Callable] = None, late: str = "drop",
            lateness: float = 0.0, idle_after: float = 0.0, late_route=None, percentiles=(), keep_values: bool = False,
            aggregate=None, output=None, clock=None, lineage: bool = False) -> Windowing:
    from .graph import TypedRoute, _route_of, route as make_route
    src = _route_of(source)
    keys = _Keys()
    if aggregate is not None:
        reduce = _BUILTIN.get(aggregate) if isinstance(aggregate, str) else aggregate
        if reduce is None:
            raise ValueError(f"an aggregate is count, sum, min, max, mean or a function of the window, not {aggregate!r}")
        keep_values = keep_values or not isinstance(aggregate, str)
    if output is None:
        schema = WINDOW_AGGREGATE if aggregate is not None else WINDOW_RESULT
        output = make_route(src.owner, src.family, src.stream, schema, variant="window" if aggregate is None else "aggregate",
                            plane=src.plane, layer=src.layer)
    if aggregate is not None:
        def emit(t):
            w = _result(keys, t)
            graph.publish(output, WindowAggregate(w.partition, w.start_ns, w.end_ns, reduce(w)), taints=t[10])
    else:
        def emit(t):
            graph.publish(output, _result(keys, t), taints=t[10])
    now = clock.now_ns if clock is not None else _monotonic_ns
    on_late = None
    if late_route is not None:
        def on_late(pid, event_ns, v, wm):
            graph.publish(late_route, LateValue(keys.keys[pid], event_ns, v, wm))
    if by_time:
        native = _native.TimeWindows(int(width * 1e9), late, int(lateness * 1e9), int(idle_after * 1e9), list(percentiles),
                                     keep_values, emit, on_late, lineage)
    else:
        native = _native.CountWindows(size, trigger, list(percentiles), keep_values, emit, lineage)
    kid = keys.id
    if partition_by is None:
        kid(None)  # one partition, id 0
    from .graph import Subscription
    src_port = graph._port(src)
    subs = [Subscription(src_port, _native.window_feed(src_port, native, partition_by, value, keys.ids, keys.keys))]
    if by_time and watermark is not None:
        tick = native.tick if idle_after > 0 else None

        def on_watermark(w):
            if tick is not None:
                tick(now())  # partitions gone silent stop holding the watermark back
            if isinstance(w, tuple):
                native.advance_partition(kid(w[0]), int(w[1]), now())
            else:
                native.advance(int(w))
        subs.append(graph.observe(watermark, on_watermark))
    edge = src_port.add_edge(graph._port(output), "window" if by_time else "count window", "")
    subs.append(_EdgeOf(src_port, edge))
    op = Windowing(graph, native, keys, subs, output, late_route, now)
    graph._flows.append(op)
    return op


class _EdgeOf:
    __slots__ = ("_port", "_edge")

    def __init__(self, port, edge):
        self._port, self._edge = port, edge

    def cancel(self) -> None:
        if self._edge is not None:
            self._port.remove_edge(self._edge)
            self._edge = None


def _monotonic_ns() -> int:
    import time
    return time.monotonic_ns()
