"""The reactive graph: typed routes with an owner, their latest values and observers.

A route names a signal by its owner, family and stream (and variant, plane and layer) and
carries a schema that owns its values' encoding::

    from weft import graph

    temp = graph.route("sensor", "env", "temperature", float)
    g = graph.Graph()
    with g.observe(temp, print):          # called with each value, on the publisher's thread
        g.publish(temp, 21.5)
    g.latest(temp)                         # 21.5
    for v in g.observe(temp): ...          # or as an iterator, `async for`, or .rx()

Values published in Python reach Python observers as the same objects (treat them as
immutable); bytes are made only when something needs them. The state lives in Weft's core
(weft/graph/graph.h), shared with C++ in the same process. Guide: docs/graph.md.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import struct
import threading
import typing
from typing import Any, Callable, Iterator, Optional

from . import _native
from ._errors import Closed as weft_Closed
from ._errors import Corrupt, InvalidArgument, SchemaMismatch, Timeout

Envelope = _native.Envelope

# Taint bits a value carries and passes on to every value made from it.
NONDETERMINISTIC, SENSITIVE, REPAIRED, INCOHERENT = 1, 2, 4, 8
_TAINT_NAMES = {"nondeterministic": NONDETERMINISTIC, "sensitive": SENSITIVE, "repaired": REPAIRED,
                "incoherent": INCOHERENT}


def taint_bits(taints) -> int:
    """Taint bits from bits, a name, or names."""
    if isinstance(taints, int):
        return taints
    if isinstance(taints, str):
        taints = (taints,)
    bits = 0
    for t in taints:
        if t not in _TAINT_NAMES:
            raise InvalidArgument(f"a taint is nondeterministic, sensitive or repaired, not {t!r}")
        bits |= _TAINT_NAMES[t]
    return bits


def taints_of(envelope) -> set:
    """The names of the taints an Envelope carries."""
    return {name for name, bit in _TAINT_NAMES.items() if envelope.taints & bit}


# ---- names ----

class OwnerName(str):
    """Who owns a signal (a device, service or component): a token of [A-Za-z0-9_-]."""


class StreamFamily(str):
    """A group of an owner's streams ("imu")."""


class StreamName(str):
    """One stream of a family ("accel")."""


# ---- schemas ----

class Schema:
    """What a route's values are: the canonical text both sides compare (its identity), how a
    value becomes bytes and back, and what a published value must be.

    Made by `Schema.of(type)` for int, float, str, bytes, bool, a dataclass (its fields of these
    types, nested dataclasses, or numpy.ndarray), or numpy.ndarray; `Schema.ndarray(dtype,
    shape)` for arrays of one dtype and shape (None in shape: any length); `Schema.pod(name,
    format)` for a C++ struct published by `Schema::Pod<T>(name)` (a `struct` format)."""

    __slots__ = ("text", "encode", "decode", "accept", "validate")

    def __init__(self, text: str, encode: Callable[[Any], bytes], decode: Optional[Callable[[bytes], Any]],
                 accept=None, validate: Optional[Callable[[Any], None]] = None):
        self.text = text
        self.encode = encode
        self.decode = decode
        self.accept = accept
        self.validate = validate

    def __repr__(self) -> str:
        return f"Schema({self.text!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Schema) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)

    @staticmethod
    def of(tp) -> "Schema":
        """The schema of a Python type."""
        if isinstance(tp, Schema):
            return tp
        if tp in _SCALAR_SCHEMAS:
            return _SCALAR_SCHEMAS[tp]
        if dataclasses.is_dataclass(tp) and isinstance(tp, type):
            return _dataclass_schema(tp)
        np = _numpy()
        if np is not None and tp is np.ndarray:
            return Schema.ndarray()
        raise InvalidArgument(f"no schema for {tp!r}: int, float, str, bytes, bool, a dataclass or numpy.ndarray")

    @staticmethod
    def ndarray(dtype=None, shape=None) -> "Schema":
        """NumPy arrays, of one dtype and shape if given (a None in shape: any length there)."""
        np = _numpy()
        dt = None if dtype is None else np.dtype(dtype)
        dims = None if shape is None else tuple(None if d is None else int(d) for d in shape)
        text = "ndarray " + (dt.str if dt is not None else "*") + " " + (
            "[" + ",".join("*" if d is None else str(d) for d in dims) + "]" if dims is not None else "*")

        def validate(a):
            if dt is not None and a.dtype != dt:
                raise InvalidArgument(f"a route of {text!r} takes arrays of {dt.str}, not {a.dtype.str}")
            if dims is not None and (a.ndim != len(dims) or any(d is not None and d != n for d, n in zip(dims, a.shape))):
                raise InvalidArgument(f"a route of {text!r} takes arrays of shape {dims}, not {a.shape}")

        def encode(a):
            a = np.ascontiguousarray(a)
            return _native._ndarray_header(a.dtype.str, list(a.shape)) + a.tobytes()

        def decode(b):
            try:
                d, shape_, off = _native._ndarray_parse(b)
            except ValueError as e:
                raise Corrupt(f"an ndarray value: {e}") from None
            return np.frombuffer(b, dtype=np.dtype(d), offset=off).reshape(shape_)

        return Schema(text, encode, decode, np.ndarray, validate if dt is not None or dims is not None else None)

    @staticmethod
    def pod(name: str, fmt: str, align: Optional[int] = None, cls=None) -> "Schema":
        """A C++ struct published with `Schema::Pod<T>(name)`: `fmt` is its layout as a `struct`
        format with the padding written out ("<3d"); values are tuples, or `cls(*fields)`."""
        s = struct.Struct(fmt)
        if align is None:
            align = max((struct.calcsize("<" + c) for c in fmt.lstrip("<>=!@") if c.isalpha() and c not in "xsp"), default=1)
        text = f"pod {name} size {s.size} align {align}"

        def encode(v):
            return s.pack(*(dataclasses.astuple(v) if dataclasses.is_dataclass(v) else v))

        def decode(b):
            try:
                t = s.unpack(b)
            except struct.error as e:
                raise Corrupt(f"a {name} value: {e}") from None
            return cls(*t) if cls is not None else t

        return Schema(text, encode, decode, cls if cls is not None else tuple)


def _numpy():
    try:
        import numpy
        return numpy
    except ImportError:  # pragma: no cover
        return None


def _scalar(text: str, accept) -> Schema:
    def encode(v, _c=text):
        return _native._encode_value(_c, v)

    def decode(b, _c=text):
        try:
            return _native._decode_value(_c, b)
        except (ValueError, UnicodeDecodeError) as e:
            raise Corrupt(f"a {_c} value: {e}") from None

    return Schema(text, encode, decode, accept)


def _bytes_schema() -> Schema:
    return Schema("bytes", bytes, None, (bytes, bytearray, memoryview))


_SCALAR_SCHEMAS = {
    int: _scalar("i64", int),
    float: _scalar("f64", (float, int)),
    str: _scalar("str", str),
    bool: _scalar("bool", bool),
    bytes: _bytes_schema(),
}


def _dataclass_schema(cls) -> Schema:
    """A dataclass: its fields in order, each of a schema; encoded as each field's bytes after
    their length (u32, little-endian)."""
    hints = typing.get_type_hints(cls)
    fields = [(f.name, Schema.of(hints[f.name])) for f in dataclasses.fields(cls)]
    text = f"dataclass {cls.__module__}.{cls.__qualname__} {{" + ",".join(f"{n}:{s.text}" for n, s in fields) + "}"
    pack_len = struct.Struct("<I").pack
    unpack_len = struct.Struct("<I").unpack_from

    def encode(v):
        out = bytearray()
        for n, s in fields:
            b = s.encode(getattr(v, n))
            out += pack_len(len(b))
            out += b
        return bytes(out)

    def decode(b):
        values, at = [], 0
        for n, s in fields:
            if at + 4 > len(b):
                raise Corrupt(f"a {cls.__name__} value ends inside field {n}")
            (size,) = unpack_len(b, at)
            at += 4
            if at + size > len(b):
                raise Corrupt(f"a {cls.__name__} value's field {n} runs past its end")
            part = b[at:at + size]
            values.append(s.decode(part) if s.decode is not None else part)
            at += size
        if at != len(b):
            raise Corrupt(f"a {cls.__name__} value has {len(b) - at} bytes after its fields")
        return cls(*values)

    def validate(v):
        for n, s in fields:
            x = getattr(v, n)
            if s.accept is not None and not isinstance(x, s.accept):
                raise InvalidArgument(f"{cls.__name__}.{n} carries {s.text!r}: a {type(x).__name__} is not one of its values")
            if s.validate is not None:
                s.validate(x)

    return Schema(text, encode, decode, cls, validate)


# ---- routes ----

class TypedRoute:
    """A route: owner, family, stream, variant, plane and layer, and the schema of its values.
    Compared and hashed by its name and schema text."""

    __slots__ = ("owner", "family", "stream", "variant", "plane", "layer", "schema", "name", "ephemeral", "_hash")

    def __init__(self, owner, family, stream, schema, *, variant: str = "meta", plane: str = "read",
                 layer: str = "logical", ephemeral: bool = False):
        self.owner, self.family, self.stream = str(owner), str(family), str(stream)
        self.variant, self.plane, self.layer = variant, plane, layer
        self.ephemeral = ephemeral  # never retained
        self.schema = Schema.of(schema)
        self.name = "/".join((self.owner, self.family, self.stream, variant, plane, layer))
        self._hash = hash((self.name, self.schema.text))

    def __repr__(self) -> str:
        return f"TypedRoute({self.name!r}, {self.schema.text!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, TypedRoute) and other.name == self.name and other.schema.text == self.schema.text

    def __hash__(self) -> int:
        return self._hash

    def with_variant(self, variant: str, schema=None) -> "TypedRoute":
        """The same stream's other facet (its payload beside its meta, its desired state ...)."""
        return TypedRoute(self.owner, self.family, self.stream, schema if schema is not None else self.schema,
                          variant=variant, plane=self.plane, layer=self.layer)


def route(owner, family, stream, schema, **kw) -> TypedRoute:
    """A TypedRoute: `route("sensor", "env", "temp", float, variant="meta", plane="read",
    layer="logical", ephemeral=False)`."""
    return TypedRoute(owner, family, stream, schema, **kw)


@dataclasses.dataclass(frozen=True)
class Role:
    """A route named in a role (source or sink): it adds nothing at run time; graph methods take
    it where they take the route."""
    route: TypedRoute
    role: str


def source(r: TypedRoute) -> Role:
    """Names `r` as a source: where values come from."""
    return Role(r, "source")


def sink(r: TypedRoute) -> Role:
    """Names `r` as a sink: where values go."""
    return Role(r, "sink")


def _route_of(r) -> TypedRoute:
    if isinstance(r, TypedRoute):
        return r
    if isinstance(r, Role):
        return r.route
    raise InvalidArgument(f"a route (TypedRoute, source() or sink()) is needed, not {type(r).__name__}")


# ---- observation ----

class Subscription:
    """Observation of a route until cancel() (or the end of a `with` block)."""

    __slots__ = ("_port", "_token")

    def __init__(self, port, token):
        self._port, self._token = port, token

    def cancel(self) -> None:
        """No call starts after it returns; one running on another thread is waited for."""
        if self._token is not None:
            self._port.unobserve(self._token)
            self._token = None

    @property
    def active(self) -> bool:
        return self._token is not None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cancel()


class Observation:
    """A route's values from now on, to take in turn: an iterator (`for v in ...`, blocking), an
    async iterator (`async for`), or an RxPY observable (`.rx()`). Values wait in a queue of
    `capacity`; when it is full the oldest is dropped (counted in `dropped`)."""

    def __init__(self, port, capacity: int = 1024, timeout: Optional[float] = None):
        self._port = port
        self._queue: collections.deque = collections.deque()
        self._capacity = capacity
        self._timeout = timeout
        self._cv = threading.Condition()
        self._waiters: list = []
        self.dropped = 0
        self._token = port.observe(self._push)

    def _push(self, v) -> None:
        with self._cv:
            if len(self._queue) >= self._capacity:
                self._queue.popleft()
                self.dropped += 1
            self._queue.append(v)
            self._cv.notify()
            waiters, self._waiters = self._waiters, []
        for loop, fut in waiters:
            loop.call_soon_threadsafe(lambda f=fut: f.done() or f.set_result(None))

    def close(self) -> None:
        if self._token is not None:
            self._port.unobserve(self._token)
            self._token = None
        with self._cv:
            self._cv.notify_all()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self):
        with self._cv:
            while not self._queue:
                if self._token is None:
                    raise StopIteration
                if not self._cv.wait(self._timeout):
                    raise Timeout(f"no value on {self._port.name} within {self._timeout} s")
            return self._queue.popleft()

    def __aiter__(self):
        return self

    async def __anext__(self):
        while True:
            with self._cv:
                if self._queue:
                    return self._queue.popleft()
                if self._token is None:
                    raise StopAsyncIteration
                loop = asyncio.get_running_loop()
                fut = loop.create_future()
                self._waiters.append((loop, fut))
            if self._timeout is None:
                await fut
            else:
                try:
                    await asyncio.wait_for(fut, self._timeout)
                except asyncio.TimeoutError:
                    raise Timeout(f"no value on {self._port.name} within {self._timeout} s") from None

    def rx(self):
        """The values as an RxPY observable (python3-rx): each subscriber observes the route
        directly from then on (this observation's queue is left aside)."""
        return _rx_of(self._port)


def _rx_of(port):
    import rx
    from rx.disposable import Disposable

    def subscribe(observer, scheduler=None):
        token = port.observe(observer.on_next)
        return Disposable(lambda: port.unobserve(token))

    return rx.create(subscribe)


class Stream:
    """Values derived from a route (filtered, mapped): observed like a route, piped into one."""

    def __init__(self, graph: "Graph", source, steps):
        self._graph, self._source, self._steps = graph, source, steps

    def _wrap(self, fn: Callable[[Any], None]) -> Callable[[Any], None]:
        for kind, f in reversed(self._steps):
            if kind == "filter":
                fn = (lambda pred, nxt: lambda v: nxt(v) if pred(v) else None)(f, fn)
            else:
                fn = (lambda m, nxt: lambda v: nxt(m(v)))(f, fn)
        return fn

    def _wrap_env(self, publish_with: Callable) -> Callable:
        """fn(value, envelope) that runs the steps, then publish_with(result, cause=envelope)."""
        def last(v, e):
            publish_with(v, cause=e)
        fn = last
        for kind, f in reversed(self._steps):
            if kind == "filter":
                fn = (lambda pred, nxt: lambda v, e: nxt(v, e) if pred(v) else None)(f, fn)
            else:
                fn = (lambda m, nxt: lambda v, e: nxt(m(v), e))(f, fn)
        return fn

    def observe(self, fn: Callable[[Any], None]) -> Subscription:
        port = self._graph._port(self._source)
        return Subscription(port, port.observe(self._wrap(fn)))

    def filter(self, predicate: Callable[[Any], bool]) -> "Stream":
        return Stream(self._graph, self._source, self._steps + [("filter", predicate)])

    def map(self, fn: Callable[[Any], Any]) -> "Stream":
        return Stream(self._graph, self._source, self._steps + [("map", fn)])

    def rx(self):
        import rx
        from rx.disposable import Disposable

        def subscribe(observer, scheduler=None):
            sub = self.observe(observer.on_next)
            return Disposable(sub.cancel)

        return rx.create(subscribe)


# ---- flow ----

@dataclasses.dataclass(frozen=True)
class FlowPolicy:
    """How values wait on an edge: `capacity` values at most; when full, `overflow` is "block"
    (the publisher waits, up to `timeout` seconds, then its publish raises ResourceExhausted),
    "drop_oldest", "drop_newest" or "coalesce" (the freshest replaces the newest waiting).
    None leaves a field to the level below (sink over source over the graph's defaults)."""
    capacity: Optional[int] = None
    overflow: Optional[str] = None
    timeout: Optional[float] = None


_BASE_FLOW = FlowPolicy(capacity=1024, overflow="block", timeout=None)


def _merge(*policies: Optional[FlowPolicy]) -> FlowPolicy:
    out = {}
    for p in policies:
        if p is None:
            continue
        for f in dataclasses.fields(FlowPolicy):
            v = getattr(p, f.name)
            if v is not None or f.name not in out:
                out[f.name] = v if v is not None else out.get(f.name)
    return FlowPolicy(**out)


def _timeout_ms(timeout: Optional[float]) -> int:
    return -1 if timeout is None else max(0, int(timeout * 1000))


class Mailbox:
    """A route's values waiting for a consumer, under a FlowPolicy: `take(timeout)`,
    `try_take()`, iteration; `snapshot()` counts what it took in, handed on, dropped, coalesced,
    and how often and how long publishers waited for room (their credit)."""

    def __init__(self, native, name: str):
        self._native, self.name = native, name

    def take(self, timeout: Optional[float] = None):
        """The oldest waiting value; Timeout if none comes in time, Closed once closed and empty."""
        return self._native.take(-1.0 if timeout is None else timeout)

    def try_take(self):
        """The oldest waiting value, or None."""
        return self._native.try_take()

    def snapshot(self) -> dict:
        return self._native.snapshot()

    def close(self) -> None:
        self._native.close()

    def __iter__(self):
        while True:
            try:
                yield self._native.take(-1.0)
            except weft_Closed:
                return

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


ManualClock = _native.ManualClock


@dataclasses.dataclass(frozen=True)
class RetentionPolicy:
    """How long a route keeps its values: the newest `keep_last`, those younger than `max_age`
    seconds, and `durable` (a directory) to keep them in a Weft log across restarts."""
    keep_last: Optional[int] = None
    max_age: Optional[float] = None
    durable: Optional[str] = None


# ---- the graph ----

class Graph:
    """Routes by name, each declared on first use with its schema (another schema for the same
    name is SchemaMismatch), its latest value and its observers."""

    def __init__(self):
        self._core = _native.GraphCore()
        self._ports: dict = {}
        self._flow_default: Optional[FlowPolicy] = None
        self._source_flow: dict = {}
        self._sink_flow: dict = {}
        self._flows: list = []  # the flow primitives made here live as long as the graph
        self._writes: list = []  # write bindings and lifecycles
        self._loops: dict = {}   # control loops by name

    def _port(self, r):
        r = _route_of(r)
        port = self._ports.get(r)
        if port is None:
            s = r.schema
            port = self._core.declare(r.name, s.text, s.encode, s.decode, s.accept, s.validate)
            if r.ephemeral:
                port.mark_ephemeral()
            self._ports[r] = port
        return port

    def publisher(self, r) -> Callable[[Any], None]:
        """The route's publish function, bound: the fastest way to publish many values."""
        return self._port(r).publish

    def publish(self, r, value, *, producer: int = 0, event_ns: int = 0, correlation: int = 0,
                cause: Optional[Envelope] = None, taints=0) -> None:
        """Publishes `value` to the route: it becomes the latest, and every observer is called
        with it, on this thread. `cause` (an Envelope) makes it part of that value's trace (and
        passes on its taints); `taints` marks it (Taint bits, or names: "nondeterministic",
        "sensitive", "repaired"). An observer's exception is raised here once every observer ran."""
        port = self._ports.get(r)
        if port is None:
            port = self._port(r)
        if producer or event_ns or correlation or cause is not None or taints:
            port.publish_with(value, producer, event_ns, correlation, cause, taint_bits(taints))
        else:
            port.publish(value)

    def latest(self, r, *, envelope: bool = False):
        """The newest value, or None; with envelope=True, (value, Envelope) or None."""
        port = self._ports.get(r)
        if port is None:
            port = self._port(r)
        return port.latest_envelope() if envelope else port.latest()

    def observe(self, r, fn: Optional[Callable] = None, *, envelope: bool = False, replay: bool = False,
                capacity: int = 1024, timeout: Optional[float] = None):
        """With `fn`: calls fn(value) (or fn(value, envelope)) for each value published from now
        on and returns a Subscription; with replay=True the retained values come first (oldest
        first), then the live ones, in order, none twice. Without `fn`: an Observation to
        iterate (`for`, `async for`) or to turn into an RxPY observable (`.rx()`)."""
        port = self._port(r)
        if fn is None:
            return Observation(port, capacity, timeout)
        return Subscription(port, port.observe(fn, envelope, replay))

    # -- retention --

    def configure_retention(self, r, policy: "RetentionPolicy") -> None:
        """Keeps the route's values for history() and replay: the newest `keep_last`, those
        younger than `max_age` seconds, in memory, or on disk in a Weft log at `durable` (a
        directory), read back when a process configures the route again (its latest, history
        and count go on). InvalidArgument for an ephemeral route; SchemaMismatch for a log of
        another schema; Busy while another process writes that log."""
        if policy.keep_last is None and policy.max_age is None:
            raise InvalidArgument("a retention policy needs keep_last or max_age")
        self._port(r).set_retention(policy.keep_last or 0, int((policy.max_age or 0) * 1000), policy.durable or "")

    def history(self, r, *, envelope: bool = False) -> list:
        """The retained values, oldest first (with envelope=True, (value, Envelope) pairs)."""
        return self._port(r).history(envelope)

    def filter(self, src, predicate: Callable[[Any], bool]) -> Stream:
        """The values of `src` (a route or a Stream) for which predicate(value) is true."""
        if isinstance(src, Stream):
            return src.filter(predicate)
        return Stream(self, _route_of(src), [("filter", predicate)])

    def map(self, src, fn: Callable[[Any], Any]) -> Stream:
        """fn(value) for each value of `src`."""
        if isinstance(src, Stream):
            return src.map(fn)
        return Stream(self, _route_of(src), [("map", fn)])

    def pipe(self, src, r) -> Subscription:
        """Publishes each value of `src` (a route, a Stream, or an RxPY observable) to route `r`;
        values from a route or Stream carry their cause (trace and causality)."""
        dst = self._port(r)
        if isinstance(src, Stream):
            port = self._port(src._source)
            kind = "map" if any(k == "map" for k, _ in src._steps) else "filter"
            # Each value goes on caused by the one it was made from: its trace and taints follow.
            return _Edged(Subscription(port, port.observe(src._wrap_env(dst.publish_with), True)), port,
                          port.add_edge(dst, kind, ""))
        if isinstance(src, (TypedRoute, Role)):
            port = self._port(src)
            sub = Subscription(port, port.observe(lambda v, e: dst.publish_with(v, cause=e), True))
            return _Edged(sub, port, port.add_edge(dst, "pipe", ""))
        subscribe = getattr(src, "subscribe", None)
        if subscribe is None:
            raise InvalidArgument(f"pipe takes a route, a Stream or an RxPY observable, not {type(src).__name__}")
        disposable = subscribe(dst.publish)
        return _Disposed(disposable)

    # -- flow --

    def configure_flow_defaults(self, policy: FlowPolicy) -> None:
        """The graph's edge policy, under what sources and sinks say."""
        self._flow_default = policy

    def configure_source_flow(self, r, policy: FlowPolicy) -> None:
        """What a source's edges default to."""
        self._source_flow[_route_of(r).name] = policy

    def configure_sink_flow(self, r, policy: FlowPolicy) -> None:
        """What a sink requires of the edges into it (over the source's and the graph's)."""
        self._sink_flow[_route_of(r).name] = policy

    def describe_edge(self, *, source=None, sink=None) -> FlowPolicy:
        """The policy of an edge from `source` to `sink`: each field from the sink's policy, else
        the source's, else the graph's defaults, else capacity 1024, block, no timeout."""
        src = self._source_flow.get(_route_of(source).name) if source is not None else None
        dst = self._sink_flow.get(_route_of(sink).name) if sink is not None else None
        return _merge(_BASE_FLOW, self._flow_default, src, dst)

    def mailbox(self, r, policy: Optional[FlowPolicy] = None, *, name: str = "") -> Mailbox:
        """A mailbox of the route's values from now on, under `policy` over the route's edge
        policy (describe_edge(source=r))."""
        p = _merge(self.describe_edge(source=r), policy)
        port = self._port(r)
        name = name or f"mailbox of {port.name}"
        box = Mailbox(_native.Mailbox(port, p.capacity, p.overflow, _timeout_ms(p.timeout), name), name)
        self._flows.append(box)
        return box

    def capacitor(self, *, source, sink, capacity: int = 1, demand=None, immediate: bool = False,
                  overflow: Optional[str] = None, timeout: Optional[float] = None):
        """Bounded storage from `source` to `sink`: it holds up to `capacity` values (one slot
        keeps the freshest; more slots make the publisher wait when full, or `overflow`), and each
        value on `demand` (or each .discharge(n)) releases the oldest to the sink. With
        `immediate`, demand that finds it empty is remembered and the next values pass."""
        c = _native.Capacitor(self._port(source), self._port(sink), capacity, overflow or "", _timeout_ms(timeout),
                              None if demand is None else self._port(demand), immediate)
        self._flows.append(c)
        return c

    def resistor(self, *, source, sink, gate=None, release=None):
        """From `source` to `sink`: every value; with `gate` (a route of bools), only while its
        latest is true; with `release`, the freshest value held until a value on `release`."""
        r = _native.Resistor(self._port(source), self._port(sink), None if gate is None else self._port(gate),
                             None if release is None else self._port(release))
        self._flows.append(r)
        return r

    def watchdog(self, *, reset_by, output, after: float, clock=None):
        """If `after` seconds pass with no value on `reset_by`, publishes on `output` (an int
        route) the count of intervals missed in a row, every `after` while the silence lasts.
        `clock`: a ManualClock for tests (after then counts its nanoseconds as seconds * 1e9)."""
        w = _native.Watchdog(self._port(reset_by), self._port(output), int(after * 1e9), clock)
        self._flows.append(w)
        return w

    def flow_snapshot(self, x) -> dict:
        """Counts of a mailbox, capacitor or resistor; or of a route: values published and
        observers."""
        if isinstance(x, (TypedRoute, Role)):
            port = self._port(x)
            return {"name": port.name, "published": port.published, "observers": port.observers}
        return x.snapshot()

    def mailbox_snapshot(self, box: Mailbox) -> dict:
        return box.snapshot()

    # -- taints and repairs --

    def mark(self, source, output, *, taint, transform=None):
        """Publishes each value of `source` (transformed, if given) on `output`, marked with
        `taint` ("nondeterministic", "sensitive", "repaired", or bits) besides what its cause
        carries; every value made from it carries it on."""
        bits = taint_bits(taint)
        src, dst = self._port(source), self._port(output)
        f = transform or (lambda v: v)
        sub = Subscription(src, src.observe(lambda v, e: dst.publish_with(f(v), 0, 0, 0, e, bits), True))
        return _Edged(sub, src, src.add_edge(dst, "taint", "+".join(sorted(n for n, b in _TAINT_NAMES.items() if bits & b))))

    def repair(self, source, output, *, fix, note: str):
        """Publishes fix(value) on `output` for each value of `source`, marked repaired, and keeps
        `note` for it: repair_notes(output) says which value was repaired and how."""
        src, dst = self._port(source), self._port(output)

        def on(v, e):
            _native.note_repair(dst, e.id, note)
            dst.publish_with(fix(v), 0, 0, 0, e, REPAIRED)
        sub = Subscription(src, src.observe(on, True))
        return _Edged(sub, src, src.add_edge(dst, "repair", note))

    def repair_notes(self, r) -> list:
        """(id of the value repaired, note) for the repairs published on route `r`, oldest first
        (the newest 4,096). The repaired value's envelope names that id as its causality."""
        return _native.repair_notes(self._port(r))

    def tainted(self, r, taint=None) -> list:
        """The Envelopes of the values route `r` retains that carry `taint` (any taint if None):
        the taint query."""
        bits = taint_bits(taint) if taint is not None else sum(_TAINT_NAMES.values())
        return [e for _, e in self.lineage(r) if e.taints & bits]

    # -- windows --

    def window_by_time(self, source, *, width: float, watermark=None, partition_by=None, value=None,
                       late: str = "drop", lateness: float = 0.0, idle_after: float = 0.0, late_route=None,
                       percentiles=(), keep_values: bool = False, output=None, clock=None, lineage: bool = False):
        """Event-time tumbling windows of `width` seconds over `source` (event time: each value's
        envelope), per partition (`partition_by(value)`, any hashable; None: one partition), of
        `value(value)` (a number; default the value itself), closed when the watermark passes
        their end: `watermark` is a route of ints (ns: the stream's watermark) or of (partition,
        ns) tuples (each partition's; the stream's is the least of those not idle, a partition
        silent for `idle_after` seconds on `clock` is idle). Late values: late="drop", "side"
        (published on `late_route` as LateValue) or "update" (within `lateness` seconds the
        window is published again, update=True). Publishes a WindowResult per window on
        `output` (default: the source's stream, variant "window"); with lineage=True each
        result names the ids of its inputs (window_inputs). Returns the operator (output,
        snapshot(), flush(), tick(), close())."""
        return _windows.install(self, source, by_time=True, width=width, watermark=watermark, partition_by=partition_by,
                                value=value, late=late, lateness=lateness, idle_after=idle_after, late_route=late_route,
                                percentiles=percentiles, keep_values=keep_values, output=output, clock=clock,
                                lineage=lineage)

    def window_aggregate_by_time(self, source, *, width: float, aggregate="sum", **kw):
        """window_by_time reduced by `aggregate` ("count", "sum", "min", "max", "mean", or a
        function of the WindowResult, which then has its values): publishes WindowAggregate
        (partition, start_ns, end_ns, value) on `output` (default: variant "aggregate")."""
        return _windows.install(self, source, by_time=True, width=width, aggregate=aggregate, **kw)

    def window(self, source, *, size: int, trigger: int = 0, partition_by=None, value=None, percentiles=(),
               keep_values: bool = True, output=None, lineage: bool = False):
        """Count windows: each partition's last `size` values, published as a WindowResult
        (with its values) every `trigger` values (default: size, tumbling)."""
        return _windows.install(self, source, by_time=False, size=size, trigger=trigger, partition_by=partition_by,
                                value=value, percentiles=percentiles, keep_values=keep_values, output=output,
                                lineage=lineage)

    def window_inputs(self, result, source) -> list:
        """The Envelopes of the values of `source` a window result (made with lineage=True) came
        from, as far as `source` retains them: lineage across a window."""
        wanted = set(result.inputs or ())
        return [e for _, e in self.lineage(source) if e.id in wanted]

    def window_aggregate(self, source, *, size: int, aggregate="sum", **kw):
        """window reduced by `aggregate`, as window_aggregate_by_time."""
        return _windows.install(self, source, by_time=False, size=size, aggregate=aggregate, **kw)

    # -- joins --

    def lookup_join(self, left, right_state, *, key_left, key_right, combine, output):
        """For each value of `left`, the latest value of `right_state` with its key (or None):
        publishes combine(left_value, right_value) on `output`, caused by the left value."""
        return _joins.lookup_join(self, left, right_state, key_left=key_left, key_right=key_right, combine=combine,
                                  output=output)

    def interval_join(self, left, right, *, within: float, key_left, key_right, combine, output, watermark=None):
        """Pairs a value of `left` with each value of `right` of the same key whose event times
        are at most `within` seconds apart, whichever comes first: publishes combine(l, r) on
        `output`, caused by the later of the two. `watermark` (a route of ints, ns) lets the
        join forget what can pair with nothing to come; values behind it are late, dropped and
        counted (snapshot())."""
        return _joins.interval_join(self, left, right, within=within, key_left=key_left, key_right=key_right,
                                    combine=combine, output=output, watermark=watermark)

    # -- lazy payloads --

    def lazy(self, meta, payload, *, keep: int = 16, name: str = "") -> "LazyPayload":
        """A stream's cheap metadata route beside its bulk payload route: `publish(meta_value,
        payload_value)` publishes the payload on its route (kept: the newest `keep`) and then
        the metadata, caused by it; observers of the metadata open the payload only if they
        want it (`open(envelope)`), and every opening is counted (`snapshot()["opened"]`, the
        payload demand). A payload nobody opens is never encoded or copied."""
        l = LazyPayload(self, meta, payload, keep, name)
        self._flows.append(l)
        return l

    # -- placement --

    def place(self, r, where: str = "shm", *, topic: str = "", queue_depth: int = 1024,
              pool_bytes: int = 64 << 20, subject: str = "", low_latency: bool = True):
        """Shares the route with the other processes that place it the same way: their values
        are published here with their envelopes, on the placement's thread, and ours go to
        them. `where="shm"`: the processes of this host, over a Weft topic named after the
        route (or `topic`). `where="nats://host:port[,...][/namespace]"`: processes on any host,
        over the NATS subject weft.graph.[<namespace>.]<the route's six tokens> (or `subject`);
        delivery is at most once, to the placements connected at the time. Returns the
        placement (where, stats(), close())."""
        if where == "shm":
            p = _native.ShmPlacement(self._port(r), topic, queue_depth, pool_bytes)
        elif where.startswith(("nats://", "tls://")):
            p = _native.NatsPlacement(self._port(r), where, subject, low_latency)
        else:
            raise InvalidArgument(f"a route is placed on 'shm' (this host) or a 'nats://' url, not {where!r}")
        self._flows.append(p)
        return p

    # -- embedded profile --

    def scalar_sensor(self, owner, family, stream, *, smoothing: float = 1.0, deadband: float = 0.0):
        """A scalar sensor: float readings on a raw route (read(value)), and a logical route
        made from them: smoothing * reading + (1 - smoothing) * the previous logical value,
        published when it moved by more than `deadband`, caused by the reading."""
        return _embedded.scalar_sensor(self, owner, family, stream, smoothing=smoothing, deadband=deadband)

    def bulk_sensor(self, owner, family, stream, *, keep: int = 4, max_payload: int = 64 << 20):
        """A bulk sensor: capture(data) publishes the payload (bytes, kept: the newest `keep`) and
        then a BulkMeta (size, CRC-32C, kind, time) caused by it on the cheap metadata route;
        observers open the payload only if they want it (open(meta, envelope)), counted."""
        return _embedded.bulk_sensor(self, owner, family, stream, keep=keep, max_payload=max_payload)

    def check_embedded_profile(self, max_meta_bytes: int = 64) -> list:
        """What breaks the embedded profile, one sentence each: raw routes whose values vary in
        size, metadata routes with values over `max_meta_bytes`."""
        return _native.check_embedded_profile(self._core, max_meta_bytes)

    # -- writes --

    def write_binding(self, owner, family, stream, schema, *, retry=None, coherence_deadline: float = 2.0, guard=None,
                      min_interval: float = 0.0, matches=None, clock=None):
        """A write shadow for one stream: routes request, desired, reported, effective and events
        (owner/family/stream with variants request, desired, reported, effective, event), and a
        reconciler that sends each request (the newest, when several wait) while `guard` (a bool
        route) is true and `min_interval` seconds have passed since the last send, sends it again
        after `retry`'s backoff while no report matches (`matches(desired, reported)`, else equal
        encodings), and taints effective values "incoherent" while reported disagrees with
        desired past `coherence_deadline` seconds. `clock`: a ManualClock for tests."""
        return _writes.write_binding(self, owner, family, stream, schema, retry=retry,
                                     coherence_deadline=coherence_deadline, guard=guard, min_interval=min_interval,
                                     matches=matches, clock=clock)

    def lifecycle(self, owner, family, *, intent_schema, gate_on_health: bool = True, **kw):
        """A device's or runtime's lifecycle: a write binding of stream "lifecycle" (its request
        route is `intent`), its event route, and a `health` route of bools that holds intents
        back until the device is healthy (gate_on_health). Takes write_binding's options."""
        return _writes.lifecycle(self, owner, family, intent_schema=intent_schema, gate_on_health=gate_on_health, **kw)

    def scheduler_snapshot(self, route=None):
        """The reconciler of the write binding that has `route`, or a list of every binding's."""
        return _writes.scheduler_snapshot(self, route)

    def install(self, step):
        """Installs a ReadThenWriteNextEpochStep in its control loop (step.loop); returns it."""
        return _writes.install(self, step)

    def run_control_loop(self, name: str = "main") -> int:
        """Runs every step of loop `name` once, in install order; returns the epoch (1, 2, ...)."""
        return _writes.run_control_loop(self, name)

    # -- inspection --

    def serve_queries(self, name: str):
        """Serves this graph's query plane (catalog, latest, topology, audit, validate, lineage)
        at ipc://graph.<name>, for `weft graph <query> <name>` and any Weft client of the
        contract weft.graph/Query. Returns the server (address, close())."""
        server = _native.QueryServer(self._core, name)
        self._flows.append(server)
        return server

    def topology(self) -> dict:
        """The graph as data: {"routes": [{name, schema, published, observers, refused,
        retained, ephemeral}], "edges": [{from, to, kind, name}]} (pipes, filters, capacitors,
        resistors, watchdogs)."""
        import json
        return json.loads(self._core.topology_json())

    def topology_dot(self) -> str:
        """The graph in Graphviz's DOT language."""
        return self._core.topology_dot()

    def validate(self) -> list:
        """What is wrong, one sentence each: an edge joining routes of different schemas, a
        cycle of edges with no capacitor on it, a sink whose values nobody observes, moves on or
        retains."""
        return self._core.validate()

    def lineage(self, route=None, *, trace_id: int = 0, causality_id: int = 0, correlation_id: int = 0) -> list:
        """(route name, Envelope) of retained values: with causality_id, that value and then its
        cause, its cause's cause ...; else those matching the route, trace and correlation given,
        oldest first. Values are found as long as their routes retain them."""
        name = _route_of(route).name if route is not None else ""
        return self._core.lineage(name, trace_id, causality_id, correlation_id)

    def route_audit(self, r) -> dict:
        """One route: schema, values published, publishes refused, observers, producers (id ->
        values), the edges in and out, whether it is retained or ephemeral; for a route of a
        write binding, "write": its reconciler's scheduler_snapshot (requests, sends, retries...)."""
        name = _route_of(r).name
        self._port(r)
        t = self.topology()
        entry = next(x for x in t["routes"] if x["name"] == name)
        entry["in"] = [e for e in t["edges"] if e["to"] == name]
        entry["out"] = [e for e in t["edges"] if e["from"] == name]
        for b in self._writes:  # a route of a write binding: its reconciler's requests and state
            if any(x.name == name for x in b.routes()):
                entry["write"] = b.snapshot()
        return entry

    def catalog(self) -> list:
        """(name, schema text, values published) of every route, in name order."""
        return self._core.routes()


class _Edged:
    """A pipe's subscription and the edge it shows in the topology; cancel ends both."""

    def __init__(self, sub, port, edge):
        self._sub, self._port, self._edge = sub, port, edge

    def cancel(self) -> None:
        if self._edge is not None:
            self._port.remove_edge(self._edge)
            self._edge = None
        self._sub.cancel()

    @property
    def active(self) -> bool:
        return self._edge is not None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cancel()


class _Disposed:
    """A Subscription over an RxPY disposable."""

    def __init__(self, d):
        self._d = d

    def cancel(self) -> None:
        if self._d is not None:
            self._d.dispose()
            self._d = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cancel()


class LazyPayload:
    """Made by Graph.lazy."""

    __slots__ = ("_graph", "_native", "meta", "payload", "_payload_port")

    def __init__(self, graph: "Graph", meta, payload, keep: int, name: str):
        self._graph, self.meta, self.payload = graph, _route_of(meta), _route_of(payload)
        self._payload_port = graph._port(self.payload)
        self._native = _native.LazyPayload(graph._port(self.meta), self._payload_port, keep, name)

    def publish(self, meta_value, payload_value, *, producer: int = 0, event_ns: int = 0, correlation: int = 0,
                cause: Optional[Envelope] = None) -> None:
        g = self._graph
        kept = self._native.capture(lambda: g.publish(self.payload, payload_value, producer=producer, event_ns=event_ns,
                                                      correlation=correlation, cause=cause))
        g.publish(self.meta, meta_value, producer=producer, event_ns=event_ns, correlation=correlation, cause=kept)

    def open(self, envelope: Envelope):
        """The payload the metadata with this envelope announced (counted); weft.NotFound once
        it has left the window."""
        return self._native.open(self._payload_port, envelope.causality)

    def snapshot(self) -> dict:
        """{name, keep, kept, published, opened (the demand), missed, never_opened}."""
        return self._native.snapshot()

    def close(self) -> None:
        self._native.close()


class RaftState(typing.NamedTuple):
    term: int
    leader: int  # 0: none known in this term
    role: str    # "follower", "candidate" or "leader"


_ROLES = ("follower", "candidate", "leader")


class Consensus:
    """Raft-style leader election made of the graph's own parts (visible in its topology): per
    member, a watchdog is the election timeout (reset by a leader's heartbeat or a vote given),
    a second watchdog ticks heartbeats through a resistor gated by the member's is_leader
    route, and a capacitor holds the tally of granted votes. Members talk on the `messages`
    route: place it (`g.place(c.messages, ...)`) to spread a cluster over processes and hosts.

        c = Consensus.install(g, member=2, members=3)
        g.place(c.messages, "nats://10.0.0.1:4222/plant")
        c.state()    # RaftState(term, leader, role)
    """

    __slots__ = ("_native", "messages", "leader", "member")

    MESSAGE = Schema.pod("raft.message.v1", "<QIIII")   # term, from, to, kind, granted
    STATE = Schema.pod("raft.state.v1", "<QII")         # term, leader, role

    def __init__(self, native, messages: TypedRoute, leader: TypedRoute, member: int):
        self._native, self.messages, self.leader, self.member = native, messages, leader, member

    @staticmethod
    def install(graph: "Graph", *, member: int, members: int = 3, cluster: str = "raft", heartbeat: float = 0.05,
                election_timeout: float = 0.3, clock=None) -> "Consensus":
        """Installs member `member` (1..members) of cluster `cluster` in `graph`. A member starts
        an election after `election_timeout` seconds of silence plus a share of it set by its id
        (so members rarely time out together); a leader beats every `heartbeat` seconds."""
        native = _native.Consensus(graph._core, cluster, member, members, int(heartbeat * 1e9),
                                   int(election_timeout * 1e9), clock)
        messages = TypedRoute(cluster, "consensus", "messages", Consensus.MESSAGE, variant="meta", plane="write",
                              layer="logical")
        leader = TypedRoute(cluster, "consensus", "leader", Consensus.STATE, variant=f"m{member}", plane="state",
                            layer="internal")
        c = Consensus(native, messages, leader, member)
        graph._flows.append(c)
        return c

    def state(self) -> RaftState:
        term, leader, role = self._native.state()
        return RaftState(term, leader, _ROLES[role])

    def close(self) -> None:
        self._native.close()


from . import _embedded, _joins, _windows, _writes  # noqa: E402
from ._embedded import BulkMeta, BulkSensor, ScalarSensor  # noqa: E402
from ._writes import Lifecycle, ReadThenWriteNextEpochStep, RetryPolicy, WriteBinding, WriteEvent  # noqa: E402
from ._joins import Joining, plan_repartition  # noqa: E402
from ._windows import LATE_VALUE, LateValue, WindowAggregate, WindowResult, Windowing  # noqa: E402
from ._stores import EventLog, FileStore, Keyspace, Memory, SnapshotStore, StoredEvent  # noqa: E402

__all__ = ["BulkMeta", "BulkSensor", "ScalarSensor", "NONDETERMINISTIC", "SENSITIVE", "REPAIRED", "INCOHERENT", "Lifecycle", "ReadThenWriteNextEpochStep", "RetryPolicy", "WriteBinding", "WriteEvent", "taint_bits", "taints_of", "Joining", "plan_repartition", "LATE_VALUE", "LateValue", "WindowAggregate", "WindowResult", "Windowing", "LazyPayload", "Consensus", "Envelope", "EventLog", "RaftState", "FileStore", "FlowPolicy", "Graph", "Keyspace", "Memory", "SnapshotStore", "StoredEvent", "Mailbox", "ManualClock", "Observation", "RetentionPolicy", "OwnerName", "Role", "Schema", "SchemaMismatch", "Stream",
           "StreamFamily", "StreamName", "Subscription", "TypedRoute", "route", "sink", "source"]
