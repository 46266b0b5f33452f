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
"""

from __future__ import annotations

import collections.abc
import inspect
import typing
from dataclasses import dataclass, field
from typing import List, Optional

from . import _native
from ._errors import Corrupt, InvalidArgument

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
        lines = ["weft-contract 1", f"namespace {self.namespace}", f"name {self.name}",
                 f"version {self.version}"]
        lines += [m.line() for m in sorted(self.methods, key=lambda m: m.name.encode())]
        return "\n".join(lines) + "\n"

    @property
    def hash(self) -> str:
        """BLAKE2b-128 of the canonical text (checked by the native parser)."""
        return _native._contract_hash(self.canonical())

    def method(self, name: str) -> Optional[Method]:
        return next((m for m in self.methods if m.name == name), None)


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
            params = []
            for p in list(sig.parameters.values())[1:]:  # skip self
                params.append(_codec(hints.get(p.name, p.annotation)))
            result, stream = _result(hints.get("return", sig.return_annotation))
            methods.append(Method(attr, getattr(fn, "__weft_access__", "write"), params, result, stream))
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
        raise TypeError(f"{obj!r} is not a @weft.contract class")
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

import threading as _threading

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
    from ._errors import AlreadyExists
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
    from ._errors import NotFound
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


class Proxy:
    """Calls a resource's methods; the same API for every transport. Use as a context manager
    or call close()."""

    def __init__(self, reg: _Registered, contract: Contract, timeout: Optional[float]):
        self._reg = reg
        self._contract = contract
        self._timeout = timeout
        self._closed = False

    def __getattr__(self, method: str):
        if method.startswith("_"):
            raise AttributeError(method)
        if self._contract.method(method) is None:
            raise AttributeError(f"contract {self._contract.namespace}/{self._contract.name} has no method {method!r}")
        write = self._reg.writes[method]

        def call(*args, **kwargs):
            if self._closed:
                from ._errors import Closed
                raise Closed("proxy is closed")
            if _registry.get(self._reg.name) is not self._reg:
                from ._errors import Closed
                raise Closed(f"resource {self._reg.name!r} is no longer served")
            sched = self._reg.scheduler
            sched.enter(write, self._timeout)
            try:
                return getattr(self._reg.impl, method)(*args, **kwargs)
            finally:
                sched.leave(write)

        call.__name__ = method
        return call

    def close(self) -> None:
        self._closed = True

    def __enter__(self) -> "Proxy":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def connect(contract_cls, name: str, address: Optional[str] = None, timeout: Optional[float] = 30.0) -> Proxy:
    """A proxy to resource `name` under contract `contract_cls`. Each call waits at most
    `timeout` seconds for its turn (None: no limit). Raises weft.ContractMismatch, saying what
    differs, if the resource was registered under another contract."""
    from ._errors import NotFound
    if address not in (None, "inproc", "inproc://"):
        raise InvalidArgument(f"address {address!r}: this build serves resources in-process only so far")
    client = contract_of(contract_cls)
    with _registry_lock:
        reg = _registry.get(name)
    if reg is None:
        raise NotFound(f"no resource named {name!r} is registered in this process")
    check_contract(reg.contract, client)
    return Proxy(reg, client, timeout)
