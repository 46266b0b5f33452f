"""Writes that are facts (weft.graph.Graph.write_binding, lifecycle, install,
run_control_loop): a write binding keeps request, desired, reported and effective apart as
routes, and its reconciler drives desired to reported with guarded scheduling, typed retries
with backoff, and coherence taints; control loops read a route and write the next epoch.
Guide: docs/graph.md, "Writes"."""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Callable, Optional

from . import _native
from ._windows import _json_schema


@dataclasses.dataclass(frozen=True)
class WriteEvent:
    """One step of a reconciler, on a binding's event route. kind: requested, queued, sent,
    retry, acknowledged, mismatch, drift, incoherent, coherent, failed; value: the envelope id of
    the request or report it is about; failure: "none", "no_report" or "mismatch"; at_ns: the
    reconciler's clock."""
    binding: str
    kind: str
    attempt: int
    value: int
    failure: str
    at_ns: int


WRITE_EVENT = _json_schema(WriteEvent)


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """How a value is sent again while no matching report comes: up to `max_attempts` sends
    (0: without end), each waiting `ack_timeout` seconds for its report, the second after
    `backoff` seconds, each next one `multiplier` times longer, at most `max_backoff`."""
    max_attempts: int = 5
    ack_timeout: float = 1.0
    backoff: float = 0.1
    multiplier: float = 2.0
    max_backoff: float = 10.0


def _decode(schema, b):
    return schema.decode(b) if schema.decode is not None else bytes(b)


def _ns(seconds: float) -> int:
    return int(round(seconds * 1e9))


def _options(retry: Optional[RetryPolicy], coherence_deadline: float, min_interval: float, matches, schema, clock):
    r = retry or RetryPolicy()
    fn = None
    if matches is not None:
        fn = lambda a, b: bool(matches(_decode(schema, a), _decode(schema, b)))  # noqa: E731
    return dict(max_attempts=r.max_attempts, ack_timeout_ns=_ns(r.ack_timeout), backoff_ns=_ns(r.backoff),
                multiplier=float(r.multiplier), max_backoff_ns=_ns(r.max_backoff),
                coherence_deadline_ns=_ns(coherence_deadline), min_interval_ns=_ns(min_interval), matches=fn,
                clock=clock)


class WriteBinding:
    """One stream's write shadow: `request` (publish to ask), `desired` (what the reconciler
    sent: the actuator observes it), `reported` (the actuator publishes what it did),
    `effective` (what to trust: each report, tainted "incoherent" while it disagrees with desired
    past the deadline) and `events` (WriteEvent values)."""

    __slots__ = ("_native", "request", "desired", "reported", "effective", "events")

    def __init__(self, native, routes):
        self._native = native
        self.request, self.desired, self.reported, self.effective, self.events = routes

    def routes(self) -> tuple:
        return (self.request, self.desired, self.reported, self.effective, self.events)

    def snapshot(self) -> dict:
        """The reconciler: phase (idle, queued, in_flight, backoff, synced, failed), guard_open,
        coherent, attempt, next_at_ns, deadline_ns, last_failure (none, no_report, mismatch),
        request_id, reported_id, and counts (requests, coalesced, sends, retries, acknowledged,
        drifts, failures, incoherent)."""
        return json.loads(self._native.snapshot_json())

    def close(self) -> None:
        self._native.close()


def _shadow_routes(owner, family, stream, schema):
    from .graph import TypedRoute
    return (TypedRoute(owner, family, stream, schema, variant="request", plane="write", layer="logical"),
            TypedRoute(owner, family, stream, schema, variant="desired", plane="write", layer="shadow"),
            TypedRoute(owner, family, stream, schema, variant="reported", plane="read", layer="shadow"),
            TypedRoute(owner, family, stream, schema, variant="effective", plane="read", layer="logical"),
            TypedRoute(owner, family, stream, WRITE_EVENT, variant="event", plane="debug", layer="shadow"))


def write_binding(graph, owner, family, stream, schema, *, retry=None, coherence_deadline: float = 2.0, guard=None,
                  min_interval: float = 0.0, matches: Optional[Callable[[Any, Any], bool]] = None, clock=None):
    from .graph import Schema
    schema = Schema.of(schema)
    routes = _shadow_routes(str(owner), str(family), str(stream), schema)
    for r in routes:
        graph._port(r)  # declared with the Python schema, so Python observers get typed values
    native = _native.WriteBinding(graph._core, str(owner), str(family), str(stream), schema.text,
                                  guard=None if guard is None else graph._port(guard),
                                  **_options(retry, coherence_deadline, min_interval, matches, schema, clock))
    b = WriteBinding(native, routes)
    graph._flows.append(b)
    graph._writes.append(b)
    return b


class Lifecycle(WriteBinding):
    """A device's or runtime's lifecycle: a write binding of stream "lifecycle" whose requests
    are intents, with a `health` route (bool) that, with gate_on_health, holds intents back until
    the device says it is healthy."""

    __slots__ = ("intent", "health", "_lifecycle")

    def __init__(self, lifecycle, routes, health):
        super().__init__(lifecycle.binding, routes)
        self._lifecycle = lifecycle
        self.intent = self.request
        self.health = health


def lifecycle(graph, owner, family, *, intent_schema, gate_on_health: bool = True, retry=None,
              coherence_deadline: float = 2.0, min_interval: float = 0.0, matches=None, clock=None):
    from .graph import Schema, TypedRoute
    schema = Schema.of(intent_schema)
    routes = _shadow_routes(str(owner), str(family), "lifecycle", schema)
    health = TypedRoute(str(owner), str(family), "lifecycle", bool, variant="health", plane="read", layer="logical")
    for r in routes + (health,):
        graph._port(r)
    native = _native.Lifecycle(graph._core, str(owner), str(family), schema.text, gate_on_health,
                               **_options(retry, coherence_deadline, min_interval, matches, schema, clock))
    lc = Lifecycle(native, routes, health)
    graph._flows.append(lc)
    graph._writes.append(lc)
    return lc


class ReadThenWriteNextEpochStep:
    """A control step: each epoch, reads the latest value of `read` (None before the first) and
    writes fn(value) on `output` (None: no write this epoch), caused by the value read. `write`
    is the step's shared write stream: what any observer of `output` sees. With
    fn_takes_epoch, fn(value, epoch)."""

    def __init__(self, read, output, fn: Callable, *, name: str = "", loop: str = "main",
                 fn_takes_epoch: bool = False):
        from .graph import _route_of
        self.read, self.output = _route_of(read), _route_of(output)
        self.fn, self.loop, self.fn_takes_epoch = fn, loop, fn_takes_epoch
        self.name = name or f"{self.read.name} -> {self.output.name}"
        self._graph = None

    @property
    def write(self):
        """The shared write stream (a Stream over `output`), once installed."""
        if self._graph is None:
            from ._errors import InvalidArgument
            raise InvalidArgument(f"step {self.name} is not installed")
        from .graph import Stream
        return Stream(self._graph, self.output, [])


def install(graph, step: ReadThenWriteNextEpochStep):
    loop = graph._loops.get(step.loop)
    if loop is None:
        loop = graph._loops[step.loop] = _native.ControlLoop(step.loop)
    read_schema, out_schema = step.read.schema, step.output.schema
    fn, with_epoch = step.fn, step.fn_takes_epoch

    def next_value(b, epoch):
        v = None if b is None else _decode(read_schema, b)
        out = fn(v, epoch) if with_epoch else fn(v)
        return None if out is None else out_schema.encode(out)

    loop.install(step.name, graph._port(step.read), graph._port(step.output), next_value)
    step._graph = graph
    return step


def run_control_loop(graph, name: str = "main") -> int:
    loop = graph._loops.get(name)
    if loop is None:
        from ._errors import NotFound
        raise NotFound(f"no control loop {name!r}: install a step with loop={name!r} first")
    return loop.run_once()


def scheduler_snapshot(graph, route=None):
    if route is None:
        return [b.snapshot() for b in graph._writes]
    from .graph import _route_of
    r = _route_of(route)
    for b in graph._writes:
        if any(x.name == r.name for x in b.routes()) or getattr(b, "health", None) == r:
            return b.snapshot()
    from ._errors import NotFound
    raise NotFound(f"no write binding has route {r.name}")
