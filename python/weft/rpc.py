"""Resource contracts: what a resource offers, the same for every language.

    @weft.contract(namespace="demo.counter", version="0.1.0")
    class Counter:
        def increment(self, amount: int) -> int: ...
        @weft.read
        def value(self) -> int: ...

    Counter.__weft_contract__.hash     # the same hash a C++ ContractBuilder gives
    weft.check_contract(server, client)  # raises weft.ContractMismatch saying what differs

Methods are writes (they run alone) unless marked @weft.read (they may run beside other reads).
Parameter and result codecs come from the annotations: int -> i64, float -> f64, bool -> bool,
str -> str, bytes -> bytes, None -> none, numpy.ndarray -> ndarray, a @transferable type -> its
name, anything else (or no annotation) -> pickle. Format: docs/formats/rpc-contract.md.

Pickle runs code chosen by whoever made the bytes. Across processes it is refused unless the
receiving side names what it accepts: Server.register(..., allow_pickle=["method.param"]) for
arguments, weft.connect(..., allow_pickle=["method"]) for results. Naming one trusts every peer
that can reach it completely (docs/security.md).
"""

from __future__ import annotations

import collections.abc
import weakref as _weakref
import dataclasses as _dataclasses
import inspect
import pickle as _pickle
import threading as _threading
import typing
import warnings as _warnings
from dataclasses import dataclass, field
from typing import List, Optional

from . import _native
from ._errors import AlreadyExists, Cancelled, Closed, Corrupt, Error, InternalError, InvalidArgument, NotFound

CancelToken = _native.CancelToken
_INLINE_MAX = 64 << 10  # values above this travel as blocks of the server's pool

_BUILTIN = {int: "i64", float: "f64", bool: "bool", str: "str", bytes: "bytes", bytearray: "bytes",
            memoryview: "bytes", type(None): "none", None: "none"}


def read(fn):
    """Marks a contract method as a read: it may run beside other reads of the same resource."""
    fn.__weft_access__ = "read"
    return fn


def _codec(hint) -> str:
    if hint is inspect.Signature.empty:
        return "pickle"
    if hint in _BUILTIN:
        return _BUILTIN[hint]
    name = getattr(hint, "__weft_transferable__", None)
    if name:
        return name
    try:
        import numpy as np
        if hint is np.ndarray:
            return "ndarray"
    except ImportError:  # pragma: no cover - numpy is a dependency of the package
        pass
    return "pickle"


def _result(hint):
    """(codec, stream) of a return annotation; Iterator[X] / Generator[X, ...] streams X."""
    origin = typing.get_origin(hint)
    if origin in (collections.abc.Iterator, collections.abc.Generator, collections.abc.Iterable):
        args = typing.get_args(hint)
        return _codec(args[0] if args else inspect.Signature.empty), True
    if hint is inspect.Signature.empty:
        return "none", False
    return _codec(hint), False


@dataclass
class Method:
    name: str
    access: str  # "read" or "write"
    params: List[str]
    result: str
    stream: bool = False
    param_names: List[str] = field(default_factory=list)  # not part of the contract's text

    def line(self) -> str:
        parts = ["method", self.name, self.access, *self.params, "->"]
        if self.stream:
            parts.append("stream")
        parts.append(self.result)
        return " ".join(parts)


@dataclass
class Contract:
    namespace: str
    name: str
    version: str
    methods: List[Method] = field(default_factory=list)

    def canonical(self) -> str:
        """The contract as text: what both sides hash and compare."""
        lines = ["weft-contract 1", f"namespace {self.namespace}", f"name {self.name}",
                 f"version {self.version}"]
        lines += [m.line() for m in sorted(self.methods, key=lambda m: m.name.encode())]
        return "\n".join(lines) + "\n"

    @property
    def hash(self) -> str:
        """BLAKE2b-128 of the canonical text (checked by the native parser)."""
        return _native._contract_hash(self.canonical())

    def method(self, name: str) -> Optional[Method]:
        """The Method named `name`, or None."""
        return next((m for m in self.methods if m.name == name), None)

    def attribute(self, name: str) -> Method:
        """The Method a proxy's attribute `name` stands for; AttributeError if there is none."""
        m = None if name.startswith("_") else self.method(name)
        if m is None:
            raise AttributeError(name if name.startswith("_") else
                                 f"contract {self.namespace}/{self.name} has no method {name!r}")
        return m


def contract(namespace: str, version: str, name: Optional[str] = None):
    """Class decorator: the class's public methods declare a contract (bodies are `...`)."""

    def wrap(cls):
        methods = []
        for attr, fn in cls.__dict__.items():
            if attr.startswith("_") or not inspect.isfunction(fn):
                continue
            sig = inspect.signature(fn)
            try:
                hints = typing.get_type_hints(fn)
            except Exception:  # unresolvable annotations: fall back to what the signature says
                hints = {}
            params, names = [], []
            for p in list(sig.parameters.values())[1:]:  # skip self
                params.append(_codec(hints.get(p.name, p.annotation)))
                names.append(p.name)
            result, stream = _result(hints.get("return", sig.return_annotation))
            methods.append(Method(attr, getattr(fn, "__weft_access__", "write"), params, result, stream, names))
        c = Contract(namespace, name or cls.__name__, version, methods)
        try:  # validates now: a bad contract fails where it is defined
            _native._contract_hash(c.canonical())
        except Corrupt as e:
            raise InvalidArgument(f"contract {namespace}/{c.name}: {e}") from None
        cls.__weft_contract__ = c
        return cls

    return wrap


def contract_of(obj) -> Contract:
    c = getattr(obj, "__weft_contract__", None)
    if c is None:
        raise InvalidArgument(f"{obj!r} is not a @weft.contract class")
    return c


def check_contract(server, client) -> None:
    """Raises weft.ContractMismatch if the two contracts differ, saying how (server first)."""
    s = server if isinstance(server, Contract) else contract_of(server)
    c = client if isinstance(client, Contract) else contract_of(client)
    _native._contract_compare(s.canonical(), c.canonical())


# ---- serving and calling in this process ---------------------------------------------------------
#
# A resource registered here is reached by a proxy that calls the object directly: no
# serialization, no copy; the resource's read/write scheduler (the C++ one) orders the calls.


_registry = {}
_registry_lock = _threading.Lock()


class _Registered:
    def __init__(self, contract: Contract, impl, name: str, on_shutdown):
        self.contract = contract
        self.impl = impl
        self.name = name
        self.on_shutdown = on_shutdown
        self.scheduler = _native._Scheduler()
        self.writes = {m.name: m.access == "write" for m in contract.methods}


def register(contract_cls, impl, name: str, on_shutdown=None) -> None:
    """Serves `impl` (a plain object with the contract's methods) as resource `name`.

    on_shutdown (or the object's own on_shutdown method) runs at unregister(), after the calls
    in flight have finished.
    """
    c = contract_of(contract_cls)
    missing = [m.name for m in c.methods if not callable(getattr(impl, m.name, None))]
    if missing:
        raise InvalidArgument(f"{type(impl).__name__} lacks {', '.join(missing)} of contract {c.namespace}/{c.name}")
    if on_shutdown is None:
        on_shutdown = getattr(impl, "on_shutdown", None)
    with _registry_lock:
        if name in _registry:
            raise AlreadyExists(f"a resource named {name!r} is already registered")
        _registry[name] = _Registered(c, impl, name, on_shutdown)


def unregister(name: str, timeout: Optional[float] = 30.0) -> None:
    """Stops serving `name`: new calls fail with weft.Closed, calls in flight finish first, then
    the resource's on_shutdown runs."""
    with _registry_lock:
        reg = _registry.pop(name, None)
    if reg is None:
        raise NotFound(f"no resource named {name!r}")
    reg.scheduler.enter(True, timeout)  # a write: waits for every earlier call to finish
    try:
        if reg.on_shutdown is not None:
            reg.on_shutdown()
    finally:
        reg.scheduler.leave(True)


def _scheduled(chunks, sched, write, timeout, cancel):
    """An in-process stream: each chunk is produced under the resource's scheduler (a writing
    stream runs alone while it produces), and a cancelled token stops it. Closing the stream
    early closes the method's generator."""
    it = iter(chunks)
    try:
        while True:
            if cancel is not None and cancel.cancelled:
                raise Cancelled("the stream was cancelled")
            sched.enter(write, timeout)
            outer = getattr(_current, "cancel", None)
            _current.cancel = cancel
            try:
                item = next(it)
            except StopIteration:
                return
            finally:
                _current.cancel = outer
                sched.leave(write)
            yield item
    finally:
        close = getattr(it, "close", None)
        if close is not None:
            close()


class Proxy:
    """Calls a resource's methods; the same API for every transport. Use as a context manager
    or call close()."""

    def __init__(self, reg: _Registered, contract: Contract, timeout: Optional[float]):
        self._reg = reg
        self._contract = contract
        self._timeout = timeout
        self._closed = False

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        return f"<weft.Proxy {self._contract.namespace}/{self._contract.name} {self._reg.name!r} in-process{state}>"

    def __getattr__(self, method: str):
        m = self._contract.attribute(method)
        write = self._reg.writes[method]
        stream = m.stream
        # Arguments and results checked as a remote call would encode them (the same codecs).
        check_args, check_result = _checker(m)

        def invoke(args, kwargs, timeout, cancel):
            if self._closed:
                raise Closed("proxy is closed")
            if _registry.get(self._reg.name) is not self._reg:
                raise Closed(f"resource {self._reg.name!r} is no longer served")
            if cancel is not None and cancel.cancelled:
                raise Cancelled("the call was cancelled")
            args = check_args(_bind(m, args, kwargs))
            sched = self._reg.scheduler
            sched.enter(write, timeout)
            outer = getattr(_current, "cancel", None)
            _current.cancel = cancel
            try:
                out = getattr(self._reg.impl, method)(*args)
            finally:
                _current.cancel = outer
                sched.leave(write)
            if cancel is not None and cancel.cancelled:
                raise Cancelled("the call was cancelled")
            if stream:
                return (check_result(x) for x in _scheduled(out, sched, write, timeout, cancel))
            return check_result(out)

        reg, sched, target = self._reg, self._reg.scheduler, getattr(self._reg.impl, method)
        nparams = len(m.params)

        def call(*args, **kwargs):  # the common case, kept lean
            if self._closed:
                raise Closed("proxy is closed")
            if _registry.get(reg.name) is not reg:
                raise Closed(f"resource {reg.name!r} is no longer served")
            if kwargs or len(args) != nparams:
                args = _bind(m, args, kwargs)
            args = check_args(args)
            sched.enter(write, self._timeout)
            try:
                out = target(*args)
            finally:
                sched.leave(write)
            return check_result(out)

        if stream:
            def call(*args, **kwargs):
                return invoke(args, kwargs, self._timeout, None)

        call.__name__ = method
        call.__weft_invoke__ = lambda args, hold, cancel, timeout: Held(invoke(args, {}, timeout, cancel), None) \
            if hold else invoke(args, {}, timeout, cancel)
        call.__weft_timeout__ = lambda: self._timeout
        call.__weft_stream__ = stream
        self.__dict__[method] = call  # built once per method, not per attribute lookup
        return call

    def close(self) -> None:
        """Closes the proxy; its calls raise weft.Closed from now on."""
        self._closed = True

    def __enter__(self) -> "Proxy":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _tcp(key, trust, ca, cert, plaintext) -> dict:
    """The TLS settings of tcp:// (weft.Server and weft.connect take the same ones)."""
    if isinstance(trust, str):
        trust = [trust]
    return {"key_file": None if key is None else str(key), "trusted_keys": list(trust or ()),
            "ca_file": None if ca is None else str(ca), "cert_file": None if cert is None else str(cert),
            "plaintext": bool(plaintext)}


@dataclass(frozen=True)
class Retry:
    """Retry for read methods (weft.connect(..., retry=)): up to `attempts` tries while the
    timeout allows, waiting a random part of `backoff` seconds before the second, doubled before
    each next one up to `max_backoff`. Only errors a retry can cure are retried (Unavailable,
    PeerDead, Closed, ResourceExhausted, Aborted); writes never are (they may have run)."""
    attempts: int = 3
    backoff: float = 0.02
    max_backoff: float = 1.0


@dataclass(frozen=True)
class Breaker:
    """A circuit breaker (weft.connect(..., breaker=)): after `failures` failed calls in a row
    (the server unreachable, dead, overloaded or too slow), calls fail at once with
    weft.Unavailable for `reset` seconds; then one trial call decides."""
    failures: int = 5
    reset: float = 5.0


def _policy(retry, hedge, breaker) -> dict:
    p = {}
    if retry is not None:
        r = Retry(attempts=retry) if isinstance(retry, int) else retry
        if not isinstance(r, Retry):
            raise InvalidArgument("retry: an int (attempts) or a weft.Retry")
        p.update(attempts=r.attempts, backoff_ms=int(r.backoff * 1000), max_backoff_ms=int(r.max_backoff * 1000))
    if hedge is not None:
        p["hedge_after_ms"] = max(1, int(hedge * 1000))
    if breaker is not None:
        if not isinstance(breaker, Breaker):
            raise InvalidArgument("breaker: a weft.Breaker")
        p.update(failures=breaker.failures, open_ms=int(breaker.reset * 1000))
    return p


def connect(contract_cls, name: str, address: Optional[str] = None, timeout: Optional[float] = 30.0,
            allow_pickle=(), key=None, trust=(), ca=None, cert=None, plaintext: bool = False,
            registry: Optional[str] = None, retry=None, hedge: Optional[float] = None, breaker=None):
    """A proxy to resource `name` under contract `contract_cls`: in this process (address None),
    at `ipc://<server id>` (another process on this host) or at `tcp://host:port` (another host).
    Each call waits at most `timeout` seconds (None: no limit). Raises weft.ContractMismatch,
    saying what differs, if the resource's contract does not fit (a server may have more
    methods); weft.PeerDead or weft.Unavailable if its server dies or the connection breaks
    during a call (the next call connects again). A method whose result is pickled must be named
    in allow_pickle (it trusts the server completely).

    tcp:// is TLS 1.3 with mutual authentication: `key` is this host's key file (weft keygen),
    `trust` the server's key ids ("ed25519:...") or `ca` a CA file that signed its certificate
    (`cert`: this side's certificate, signed by the server's CA). plaintext=True turns TLS off
    (no privacy, no identity): for trusted networks only.

    registry="nats://host:port[/bucket]" (instead of an address) finds the resource through
    NATS: the live servers of `name` with exactly this contract (weft.ContractMismatch if the name
    is served only under other contracts: a name alone is not enough), a direct address first,
    else a tunnel through NATS; after a broken connection the next call resolves again.

    When calls fail (other processes and hosts): retry=N or weft.Retry(...) retries reads;
    hedge=seconds sends a read not answered that soon to a second server too (another server of
    the name through a registry) and takes the first answer; breaker=weft.Breaker(...) fails calls
    at once while the server keeps failing. Writes are never retried or hedged."""
    client = contract_of(contract_cls)
    if registry is not None:
        if address is not None:
            raise InvalidArgument("weft.connect: give an address or a registry, not both")
        if not registry.startswith(("nats://", "tls://")):
            raise InvalidArgument(f"registry {registry!r}: expected nats://host:port[/bucket]")
        address = registry
    if address is not None and address.startswith(("ipc://", "tcp://", "nats://", "tls://")):
        _check_pickle(client, allow_pickle, lambda m: [(m.name, m.result)], "the result of method",
                      "weft.connect(..., allow_pickle=[...])")
        return _RemoteProxy(client, name, address, timeout, _tcp(key, trust, ca, cert, plaintext),
                            _policy(retry, hedge, breaker))
    if address not in (None, "inproc", "inproc://"):
        raise InvalidArgument(f"address {address!r}: expected ipc://<server id>, tcp://<host>:<port> or none "
                              f"(this process)")
    with _registry_lock:
        reg = _registry.get(name)
    if reg is None:
        raise NotFound(f"no resource named {name!r} is registered in this process")
    check_contract(reg.contract, client)
    return Proxy(reg, client, timeout)


@dataclass(frozen=True)
class Caller:
    """Who calls a resource's method, as the server verified it: `transport` ("inproc", "ipc",
    "tcp"), `identity` ("uid:1000" on ipc, the peer's key id "ed25519:..." over TLS, "" when
    nothing is proven) and `address` ("pid 1234", "10.0.0.2:51234")."""
    transport: str
    identity: str
    address: str


_IN_PROCESS = Caller("inproc", "", "this process")


def caller() -> Caller:
    """Inside a resource's method: who calls it (weft.Caller)."""
    c = _native._caller()
    return _IN_PROCESS if c is None else Caller(*c)


# ---- codecs: Python values to the bytes of docs/formats/rpc-wire.md --------------------------------


_transferables = {}


def transferable(cls):
    """Class decorator: `cls` crosses processes through its own serialize(value) -> bytes and
    deserialize(bytes) -> value (static methods), under the codec name module.qualname.

    An optional from_buffer(memoryview) -> value builds a view over shared memory instead of a
    copy: used for held results and for arguments a resource reads in place. serialize may
    return a buffer; one that lies in a loaned block (weft.loan_buffer) is sent without a copy."""
    # The seed's style: fields declared as annotations, no __init__ of its own; deserialize then
    # builds it by keyword (Matrix(rows=..., cols=..., data=...)). Such a class becomes a dataclass.
    if "__init__" not in cls.__dict__ and cls.__dict__.get("__annotations__") and not _dataclasses.is_dataclass(cls):
        cls = _dataclasses.dataclass(cls)
    name = f"{cls.__module__}.{cls.__qualname__}".replace("<", "").replace(">", "")
    for fn in ("serialize", "deserialize", "from_buffer"):
        if fn == "from_buffer" and fn not in cls.__dict__:
            continue
        if not callable(getattr(cls, fn, None)):
            raise InvalidArgument(f"@transferable {cls.__qualname__} needs a {fn} method")
        if not isinstance(cls.__dict__.get(fn), staticmethod):
            setattr(cls, fn, staticmethod(cls.__dict__[fn]))
    cls.__weft_transferable__ = name
    _transferables[name] = cls
    return cls


def _owner_block(obj):
    """The _Block whose memory `obj` (an array, a memoryview, ...) views, if any."""
    for _ in range(64):
        if obj is None or isinstance(obj, _native._Block):
            return obj
        obj = obj.obj if isinstance(obj, memoryview) else getattr(obj, "base", None)
    return None


def block_id(obj):
    """The id of the pool block `obj` views (a held value, an argument read in place, a loan),
    or None if it is ordinary memory."""
    b = _owner_block(obj)
    return None if b is None else b.block


def _block_of(a):
    """The pool block a NumPy array was loaned in (weft.loan_array), if it is that whole array."""
    base = _owner_block(a)
    if base is None:
        return None
    info = getattr(base, "_weft_array", None)
    if info is None or not a.flags.c_contiguous or a.dtype.str != info[0] or tuple(a.shape) != info[1]:
        return None
    if a.__array_interface__["data"][0] != base.address + info[2]:
        return None
    return memoryview(base)[: info[2] + a.nbytes]


def _bind(m: Method, args, kwargs):
    """The arguments of a call to `m` in order, keyword arguments placed by the contract's
    parameter names (as a call in the same process would place them)."""
    if kwargs:
        args = list(args)
        names = m.param_names or [f"arg{i}" for i in range(len(m.params))]
        for name in names[len(args):]:
            if name not in kwargs:
                raise InvalidArgument(f"{m.name}() missing argument {name!r}")
            args.append(kwargs.pop(name))
        if kwargs:
            raise InvalidArgument(f"{m.name}() got unexpected keyword arguments {sorted(kwargs)}")
    if len(args) != len(m.params):
        raise InvalidArgument(f"{m.name}() takes {len(m.params)} arguments, got {len(args)}")
    return args


def _encode_arg(m: Method, i: int, codec: str, value, loan):
    """_encode for argument i of `m`, a value of the wrong type being weft.InvalidArgument."""
    try:
        return _encode(codec, value, loan)
    except (TypeError, ValueError, AttributeError, OverflowError) as e:
        _bad_argument(m, i, codec, value, e)


def _bad_argument(m: Method, i: int, codec: str, value, e: Exception):
    if isinstance(e, InvalidArgument):
        raise e
    raise InvalidArgument(f"{m.name}(): argument {_param_name(m, i)!r} must be {codec}, not "
                          f"{type(value).__name__} ({e})") from None


def _encode_result(m: Method, value, loan):
    """_encode for what `m`'s handler returned: a value that is not its result codec's is the
    resource's own error (weft.InternalError saying so)."""
    try:
        return _encode(m.result, value, loan)
    except (TypeError, ValueError, AttributeError, OverflowError) as e:
        if isinstance(e, Error):
            raise
        raise InternalError(f"{m.name}() returned {type(value).__name__}, not {m.result} ({e})") from None


def _check_of(codec: str):
    """A function that checks one value of `codec` as the native encoder would accept it and
    returns it as a remote peer would decode it (1 for True, an int for a NumPy integer); the
    common types take a short path."""
    encode = _native._encode_value
    if codec == "i64":
        def check(v):
            if type(v) is int and -0x8000000000000000 <= v <= 0x7FFFFFFFFFFFFFFF:
                return v
            encode(codec, v)
            return int(v)
    elif codec == "f64":
        def check(v):
            if type(v) is float:
                return v
            encode(codec, v)
            return float(v)
    elif codec == "bool":
        def check(v):
            if type(v) is not bool:
                encode(codec, v)
            return bool(v)
    elif codec == "str":
        def check(v):
            if type(v) is not str or not v.isascii():
                encode(codec, v)  # (a lone surrogate is refused, as on the wire)
            return v
    elif codec == "none":
        def check(v):
            if v is not None:
                encode(codec, v)
            return None
    elif codec == "bytes":
        def check(v):
            memoryview(v)  # bytes-like; passed as it is, not copied
            return v
    elif codec == "ndarray":
        check = _as_array
    else:
        def check(v):  # pickle, @transferable types: their own
            return v
    return check


def _checker(m: Method):
    """For the in-process proxy: a function that checks a call's arguments as a remote call
    would encode them (the same native codecs), returning them as the resource gets them (an
    ndarray parameter as a NumPy array), and a check of the result."""
    checks = [_check_of(c) for c in m.params]
    result = _check_of(m.result)

    def name_the_argument(args, e):
        for i, (check, a) in enumerate(zip(checks, args)):
            try:
                check(a)
            except (TypeError, ValueError, OverflowError):
                _bad_argument(m, i, m.params[i], a, e)
        raise e

    if not checks:
        def check_args(args):
            return args
    elif len(checks) == 1:  # the common shapes, without a loop
        c0 = checks[0]

        def check_args(args):
            try:
                return (c0(args[0]),)
            except (TypeError, ValueError, OverflowError) as e:
                name_the_argument(args, e)
    elif len(checks) == 2:
        c0, c1 = checks

        def check_args(args):
            try:
                return (c0(args[0]), c1(args[1]))
            except (TypeError, ValueError, OverflowError) as e:
                name_the_argument(args, e)
    else:
        def check_args(args):
            try:
                return [check(a) for check, a in zip(checks, args)]
            except (TypeError, ValueError, OverflowError) as e:
                name_the_argument(args, e)

    def check_result(value):
        try:
            return result(value)
        except (TypeError, ValueError, OverflowError) as e:
            raise InternalError(f"{m.name}() returned {type(value).__name__}, not {m.result} ({e})") from None

    return check_args, check_result


_SCALARS = frozenset(("none", "bool", "i64", "f64", "str", "bytes"))


def _as_array(value):
    """An ndarray codec's value as a NumPy array (lists and other array-likes converted, as a
    remote call would); TypeError for what has no numeric array."""
    import numpy as np
    a = value if isinstance(value, np.ndarray) else np.asarray(value)
    if a.dtype.kind not in "biufc":
        raise TypeError(f"an array of {a.dtype} has no ndarray encoding (bool, int, uint, float, complex only)")
    return a


def _encode(codec: str, value, loan=None):
    """The wire bytes of a value (bytes or any buffer). `loan(n)`, if given, lends a block of the
    server's pool: large arrays are then written once, straight into shared memory. The scalar
    codecs are the native ones (weft/rpc/codec.h), as in C++."""
    if codec in _SCALARS:
        return _native._encode_value(codec, value)
    if codec == "ndarray":
        import numpy as np
        a = _as_array(value)
        wire = _block_of(a)
        if wire is not None:  # already in shared memory: sent as it is
            return wire
        header = _native._ndarray_header(a.dtype.str, list(a.shape))
        if loan is not None and len(header) + a.nbytes > _INLINE_MAX:
            block = loan(len(header) + a.nbytes)
            view = memoryview(block)
            view[: len(header)] = header
            np.copyto(np.frombuffer(block, dtype=a.dtype, count=a.size, offset=len(header)).reshape(a.shape), a)
            return view
        return header + np.ascontiguousarray(a).tobytes()
    if codec == "pickle":
        return _pickle.dumps(value, protocol=_pickle.HIGHEST_PROTOCOL)
    cls = _transferables.get(codec)
    if cls is None:
        raise InvalidArgument(f"no @transferable type for codec {codec!r}")
    out = cls.serialize(value)
    return out if isinstance(out, (bytes, memoryview, _native._Block)) else bytes(out)


def _decode(codec: str, data):
    """A value from its wire bytes: `data` is bytes, or a _Block over shared memory (a held
    result, an argument read in place), which arrays and from_buffer types then view."""
    try:
        if codec in _SCALARS:
            if codec == "bytes" and isinstance(data, bytes):
                return data
            return _native._decode_value(codec, data)
        if codec == "ndarray":
            import numpy as np
            dtype, shape, off = _native._ndarray_parse(data)
            if isinstance(data, _native._Block):  # can be passed on without a copy
                data._weft_array = (np.dtype(dtype).str, tuple(shape), off)
            return np.frombuffer(data, dtype=np.dtype(dtype), offset=off).reshape(shape)
        if codec == "pickle":
            return _pickle.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise Corrupt(f"{codec} value: {e}") from None
    cls = _transferables.get(codec)
    if cls is None:
        raise InvalidArgument(f"no @transferable type for codec {codec!r}")
    if isinstance(data, (_native._Block, _native._Received)):
        from_buffer = getattr(cls, "from_buffer", None)
        if from_buffer is not None:  # a view over shared memory or the received buffer, no copy
            return from_buffer(memoryview(data))
        data = bytes(data)
    return cls.deserialize(data)


# ---- serving to other processes ------------------------------------------------------------------

def _param_name(m: Method, i: int) -> str:
    """Parameter i's name; "arg<i>" for a Method built by hand without names."""
    return m.param_names[i] if i < len(m.param_names) else f"arg{i}"


def _check_pickle(c: Contract, allow, slots, what: str, how: str) -> None:
    """Refuses the pickle codec where bytes come from another process, unless named in `allow`."""
    allow = {allow} if isinstance(allow, str) else set(allow)
    for m in c.methods:
        for label, codec in slots(m):
            if codec == "pickle" and label not in allow:
                raise InvalidArgument(
                    f"{what} {label!r} of contract {c.namespace}/{c.name} has no codec but pickle, and "
                    f"unpickling bytes from another process runs code of that process's choosing: annotate "
                    f"it with a type Weft encodes (int, float, bool, str, bytes, numpy.ndarray, a "
                    f"@weft.transferable), or trust every peer completely with {how} naming {label!r}")


class Server:
    """Hosts resources at ipc://<id> for other processes (and in this process, directly).

        server = weft.Server("calc")
        server.register(Counter, CounterImpl(), name="counter")
        server.serve()        # or start() and carry on; shutdown() ends it
    """

    def __init__(self, id: str, allow_uids=(), max_clients: int = 256, max_clients_per_uid: int = 256,
                 max_held_bytes_per_client: int = 8 << 30, listen=(), key=None, trust=(), ca=None, cert=None,
                 plaintext: bool = False, authorize=None, registry: Optional[str] = None, advertise=(),
                 relay: bool = True, registry_ttl: float = 10.0):
        """Listens at ipc://<id>. Only processes of this uid may connect, and those of the uids in
        allow_uids (they do not map the server's shared pool: their values travel inline). At most
        max_clients connections at once (max_clients_per_uid from one uid or host); a client may
        hold max_held_bytes_per_client of results at once. docs/security.md.

        listen: "tcp://host:port" addresses (one, or a list; port 0 takes any, see `addresses`)
        for clients on other hosts, TLS 1.3 with this host's `key` (weft keygen) and clients
        accepted by key id (`trust`) or by a CA (`ca`; `cert` is then this server's certificate).
        plaintext=True turns TLS off. authorize(caller, resource, method) -> bool, if given, may
        refuse a call before it runs (weft.PermissionDenied): caller is a weft.Caller.

        registry: "nats://host:port[/bucket]" to announce every resource at (name, contract hash,
        addresses, this server's key id) from start() on; the routes are refreshed while the
        server lives and expire registry_ttl seconds after it dies. advertise: the tcp://
        addresses to announce instead of those listened on (a wildcard listener announces the
        host's interfaces). relay: also serve through tunnels over NATS, for clients that cannot
        dial this host (it may sit behind NAT); TLS runs inside them as on tcp://."""
        if isinstance(listen, str):
            listen = [listen]
        if isinstance(advertise, str):
            advertise = [advertise]
        hook = None
        if authorize is not None:
            def hook(who, resource, method):
                return authorize(Caller(*who), resource, method)
        self._native = _native._RpcServer(id, list(allow_uids), max_clients, max_clients_per_uid,
                                          max_held_bytes_per_client, list(listen),
                                          _tcp(key, trust, ca, cert, plaintext), hook,
                                          {"registry": registry, "ttl_ms": int(registry_ttl * 1000),
                                           "advertise": list(advertise), "relay": bool(relay)})
        # A server never shut down still shuts down when collected or when the interpreter
        # exits, so its pool's shared memory does not outlive the process.
        self._finalizer = _weakref.finalize(self, self._native.shutdown, 5.0)
        self._names = []
        self._started = False
        self._shut = False

    @property
    def address(self) -> str:
        return self._native.address

    @property
    def addresses(self) -> list:
        """Every address it listens on: ipc://<id>, then each tcp:// with the port bound."""
        return self._native.addresses

    def __repr__(self) -> str:
        state = "shut down" if self._shut else ("serving" if self._started else "not started")
        return f"<weft.Server {self.address} resources={self._names!r} {state}>"

    def register(self, contract_cls, impl, name: str, on_shutdown=None, allow_pickle=()) -> None:
        """Serves `impl` as resource `name` to other processes (and to this one, directly).

        A parameter whose codec is pickle (no annotation, or a type Weft has no codec for) is
        refused with weft.InvalidArgument naming it, unless listed in allow_pickle as
        "method.param": unpickling runs whatever code the client chose, so listing a parameter
        trusts every client that may connect completely."""
        if self._shut:
            raise Closed(f"server {self.address} is shut down; register before shutdown()")
        _check_pickle(contract_of(contract_cls), allow_pickle,
                      lambda m: [(f"{m.name}.{_param_name(m, i)}", c) for i, c in enumerate(m.params)],
                      "parameter", "Server.register(..., allow_pickle=[...])")
        register(contract_cls, impl, name, on_shutdown)  # also reachable in-process, directly
        reg = _registry[name]
        methods = sorted(reg.contract.methods, key=lambda m: m.name.encode())

        loan = self._native.loan

        def dispatch(index: int, args):
            m = methods[index]
            values = [_decode(codec, a) for codec, a in zip(m.params, args)]
            out = getattr(impl, m.name)(*values)
            if m.stream:
                return (_encode_result(m, x, loan) for x in out)
            return _encode_result(m, out, loan)

        try:
            self._native.register(name, reg.contract.canonical(), dispatch)
        except BaseException:
            unregister(name)
            raise
        self._names.append(name)

    def hold_stats(self) -> dict:
        """Blocks of this server's pool held here: loans and arguments still referenced."""
        return self._native.hold_stats()

    def start(self) -> None:
        """Starts serving in background threads and returns."""
        if not self._started:
            self._native.start()
            self._started = True

    def serve(self) -> None:
        """Serves until interrupted (Ctrl-C), then shuts down gracefully."""
        import time
        self.start()
        try:
            while True:
                time.sleep(0.2)
        except KeyboardInterrupt:
            pass
        finally:
            self.shutdown()

    def shutdown(self, timeout: Optional[float] = 30.0) -> None:
        """Stops accepting, finishes the calls in flight, runs each resource's on_shutdown."""
        self._shut = True
        self._native.shutdown(timeout)
        names, self._names = self._names, []
        for name in names:
            try:
                unregister(name, timeout)
            except Exception:
                pass

    def __enter__(self) -> "Server":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()


class _RemoteProxy(Proxy):
    """weft.Proxy for a resource in another process or on another host: the same API and the
    same checks as the in-process one (isinstance(p, weft.Proxy) on every transport)."""

    def __init__(self, contract: Contract, name: str, address: str, timeout: Optional[float], tcp: dict,
                 policy: dict):
        self._contract = contract
        self._timeout = timeout
        self._where = f"{name!r} at {address}"
        self._client = _native._RpcClient(contract.canonical(), name, address, timeout, tcp, policy)

    def __repr__(self) -> str:
        return f"<weft.Proxy {self._contract.namespace}/{self._contract.name} {self._where}>"

    def __getattr__(self, method: str):
        m = self._contract.attribute(method)

        client = self._client
        loan = client.loan if client.shares_pool else None  # another uid's client: all inline

        def invoke(args, hold, cancel, timeout, kwargs=None):
            args = _bind(m, args, kwargs)
            data = [_encode_arg(m, i, codec, a, loan) for i, (codec, a) in enumerate(zip(m.params, args))]
            if m.stream:
                return _RemoteStream(client.open_stream(method, data, timeout, hold, cancel), m.result, timeout)
            out = client.call(method, data, timeout, hold, cancel)
            value = _decode(m.result, out)
            if hold:
                return Held(value, out if isinstance(out, _native._Block) else None)
            return value

        def call(*args, **kwargs):
            return invoke(args, False, None, self._timeout, kwargs)

        call.__name__ = method
        call.__weft_invoke__ = invoke
        call.__weft_timeout__ = lambda: self._timeout
        call.__weft_stream__ = m.stream
        self.__dict__[method] = call  # built once per method, not per attribute lookup
        return call

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> "_RemoteProxy":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _RemoteStream:
    """The chunks of a streaming method, decoded as they come. close() (or leaving a `with`)
    cancels what is left."""

    def __init__(self, native, codec: str, timeout):
        self._native = native
        self._codec = codec
        self._timeout = timeout
        self._done = False

    def __iter__(self):
        return self

    def __next__(self):
        if self._done:
            raise StopIteration
        out = self._native.next(self._timeout)
        if out is None:
            self._done = True
            raise StopIteration
        return _decode(self._codec, out)

    def close(self) -> None:
        if not self._done:
            self._done = True
            self._native.cancel()

    cancel = close

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


# ---- hold mode, loans, cancellation --------------------------------------------------------------

_current = _threading.local()  # the cancel token of the in-process call running on this thread


class Held:
    """A result kept in shared memory: `value` views it in place (a NumPy array, a from_buffer
    type) until release() or the end of a `with` block. Arrays taken from it stay valid for as
    long as they are referenced; the block is returned when the last reference goes."""

    __slots__ = ("_value", "_buffer", "_released")

    def __init__(self, value, buffer):
        self._value = value
        self._buffer = buffer
        self._released = False

    def __repr__(self) -> str:
        where = "in shared memory" if self._buffer is not None else "a copy"
        state = "released" if self._released else type(self._value).__name__
        return f"<weft.Held {state}, {where}>"

    @property
    def value(self):
        if self._released:
            raise Closed("the held result was released")
        return self._value

    @property
    def buffer(self):
        """The raw wire bytes in shared memory (a memoryview), or None if the result was small."""
        if self._released:
            raise Closed("the held result was released")
        return None if self._buffer is None else memoryview(self._buffer)

    @property
    def in_shared_memory(self) -> bool:
        return self._buffer is not None

    def release(self) -> None:
        """Gives the result's shared memory back; `value` stops working."""
        self._value = None
        self._buffer = None
        self._released = True

    def __enter__(self) -> "Held":
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def __del__(self):
        if not self._released and self._buffer is not None:
            _warnings.warn("a weft.Held result was garbage-collected without release()", ResourceWarning, stacklevel=2)


def _invoker(method):
    fn = getattr(method, "__weft_invoke__", None)
    if fn is None:
        raise InvalidArgument(f"{method!r} is not a method of a weft proxy")
    return fn


_DEFAULT = object()


def call(method, *args, timeout=_DEFAULT, cancel=None, hold: bool = False):
    """Calls a proxy's method with per-call options: `timeout` (seconds; default the proxy's),
    `cancel` (a weft.CancelToken: cancel() from any thread ends the call with weft.Cancelled),
    `hold` (return a weft.Held instead of a copy)."""
    if timeout is _DEFAULT:
        timeout = method.__weft_timeout__()
    return _invoker(method)(args, hold, cancel, timeout)


async def call_async(method, *args, timeout=_DEFAULT, hold: bool = False):
    """Awaits a proxy's method without blocking the event loop: the call runs in the loop's
    executor (the GIL is released while it waits on the server). Cancelling the awaiting task
    cancels the call (weft.Cancelled on the server's side; the task sees CancelledError).
    A streaming method gives a weft.AsyncStream: `async for x in await weft.call_async(p.items)`."""
    if timeout is _DEFAULT:
        timeout = method.__weft_timeout__()
    invoke = _invoker(method)
    token = CancelToken()
    out = await _in_executor(lambda: invoke(args, hold, token, timeout), token)
    if getattr(method, "__weft_stream__", False):
        return AsyncStream(out, token)
    return out


_END = object()


def _next_or_end(it):
    try:
        return next(it)
    except StopIteration:
        return _END


async def _in_executor(fn, token):
    """Awaits fn() run in the loop's executor; a cancelled task cancels `token` and waits for
    fn to end (at once: the calls it makes watch the token)."""
    import asyncio
    future = asyncio.get_running_loop().run_in_executor(None, fn)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        token.cancel()
        try:
            await future
        except Exception:
            pass
        raise


class AsyncStream:
    """The chunks of a streaming method for asyncio (from weft.call_async): `async for chunk in
    stream`. Each chunk is awaited in the loop's executor, so the loop never blocks. Cancelling
    the awaiting task cancels the call (the method sees weft.cancelled()), as do aclose() and
    leaving `async with` before the end."""

    def __init__(self, chunks, token: CancelToken):
        self._chunks = chunks
        self._it = iter(chunks)
        self._token = token
        self._done = False

    def __repr__(self) -> str:
        return f"<weft.AsyncStream{' ended' if self._done else ''}>"

    def __aiter__(self) -> "AsyncStream":
        return self

    async def __anext__(self):
        if self._done:
            raise StopAsyncIteration
        try:
            out = await _in_executor(lambda: _next_or_end(self._it), self._token)
        except BaseException:
            self._end()
            raise
        if out is _END:
            self._done = True
            raise StopAsyncIteration
        return out

    def _end(self) -> None:
        if self._done:
            return
        self._done = True
        self._token.cancel()
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()

    async def aclose(self) -> None:
        """Cancels what is left of the stream."""
        self._end()

    async def __aenter__(self) -> "AsyncStream":
        return self

    async def __aexit__(self, *exc) -> None:
        self._end()


def hold(method):
    """`with weft.hold(proxy.method)(*args) as held:` -- the result stays in shared memory and
    `held.value` views it in place (no copy) until released."""
    invoke = _invoker(method)

    def held_call(*args, timeout=_DEFAULT, cancel=None):
        return invoke(args, True, cancel, method.__weft_timeout__() if timeout is _DEFAULT else timeout)

    return held_call


def cancelled() -> bool:
    """Inside a resource's method: whether the caller has cancelled this call."""
    token = getattr(_current, "cancel", None)
    if token is not None:
        return token.cancelled
    return _native._cancelled()


def hold_stats() -> dict:
    """Blocks of shared memory held by this process (held results, loans, borrowed arguments):
    {'active_holds', 'total_held_bytes', 'oldest_hold_seconds'}."""
    return _native._hold_stats()


def loan_buffer(target, nbytes: int):
    """A writable buffer of `nbytes` in the shared memory of `target`'s server (`target`: an
    ipc proxy or a weft.Server). Sent as an argument or returned as a result, it is not copied."""
    if isinstance(target, _RemoteProxy):
        return target._client.loan(nbytes)
    if isinstance(target, Server):
        return target._native.loan(nbytes)
    if isinstance(target, Proxy):
        return bytearray(nbytes)  # in-process: nothing is copied anyway
    raise InvalidArgument(f"loan_buffer needs an ipc proxy or a weft.Server, got {type(target).__name__}")


def loan_array(target, shape, dtype="float64"):
    """A NumPy array in the shared memory of `target`'s server, to fill in place: passed as an
    argument (or returned by a resource, for a weft.Server) it crosses without a copy."""
    import numpy as np
    dt = np.dtype(dtype)
    shape = tuple(shape) if isinstance(shape, (tuple, list)) else (int(shape),)
    if isinstance(target, Proxy) and not isinstance(target, _RemoteProxy):  # in-process: nothing is copied anyway
        return np.empty(shape, dt)
    header = _native._ndarray_header(dt.str, list(shape))
    count = 1
    for d in shape:
        count *= d
    block = loan_buffer(target, len(header) + count * dt.itemsize)
    memoryview(block)[: len(header)] = header
    block._weft_array = (dt.str, shape, len(header))
    return np.frombuffer(block, dtype=dt, count=count, offset=len(header)).reshape(shape)
