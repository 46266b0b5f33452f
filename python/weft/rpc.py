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
import pickle as _pickle
import struct as _struct
import threading as _threading
import typing
from dataclasses import dataclass, field
from typing import List, Optional

from . import _native
from ._errors import AlreadyExists, Closed, Corrupt, InvalidArgument, NotFound

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
                raise Closed("proxy is closed")
            if _registry.get(self._reg.name) is not self._reg:
                raise Closed(f"resource {self._reg.name!r} is no longer served")
            sched = self._reg.scheduler
            sched.enter(write, self._timeout)
            try:
                return getattr(self._reg.impl, method)(*args, **kwargs)
            finally:
                sched.leave(write)

        call.__name__ = method
        self.__dict__[method] = call  # built once per method, not per attribute lookup
        return call

    def close(self) -> None:
        self._closed = True

    def __enter__(self) -> "Proxy":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def connect(contract_cls, name: str, address: Optional[str] = None, timeout: Optional[float] = 30.0):
    """A proxy to resource `name` under contract `contract_cls`: in this process (address None)
    or at `ipc://<server id>`. Each call waits at most `timeout` seconds (None: no limit).
    Raises weft.ContractMismatch, saying what differs, if the resource has another contract;
    weft.PeerDead if its server dies during a call."""
    client = contract_of(contract_cls)
    if address is not None and address.startswith("ipc://"):
        return _IpcProxy(client, name, address, timeout)
    if address not in (None, "inproc", "inproc://"):
        raise InvalidArgument(f"address {address!r}: expected ipc://<server id> or none (this process)")
    with _registry_lock:
        reg = _registry.get(name)
    if reg is None:
        raise NotFound(f"no resource named {name!r} is registered in this process")
    check_contract(reg.contract, client)
    return Proxy(reg, client, timeout)


# ---- codecs: Python values to the bytes of docs/formats/rpc-wire.md --------------------------------


_transferables = {}


def transferable(cls):
    """Class decorator: `cls` crosses processes through its own serialize(value) -> bytes and
    deserialize(bytes) -> value (static methods), under the codec name module.qualname."""
    name = f"{cls.__module__}.{cls.__qualname__}".replace("<", "").replace(">", "")
    for fn in ("serialize", "deserialize"):
        if not callable(getattr(cls, fn, None)):
            raise InvalidArgument(f"@transferable {cls.__qualname__} needs a {fn} method")
        if not isinstance(cls.__dict__.get(fn), staticmethod):
            setattr(cls, fn, staticmethod(cls.__dict__[fn]))
    cls.__weft_transferable__ = name
    _transferables[name] = cls
    return cls


def _encode(codec: str, value) -> bytes:
    if codec == "none":
        return b""
    if codec == "i64":
        return _struct.pack("<q", value)
    if codec == "f64":
        return _struct.pack("<d", value)
    if codec == "bool":
        return b"\x01" if value else b"\x00"
    if codec == "str":
        return value.encode("utf-8")
    if codec == "bytes":
        return bytes(value)
    if codec == "ndarray":
        import numpy as np
        a = np.ascontiguousarray(value)
        return _native._ndarray_header(a.dtype.str, list(a.shape)) + a.tobytes()
    if codec == "pickle":
        return _pickle.dumps(value, protocol=_pickle.HIGHEST_PROTOCOL)
    cls = _transferables.get(codec)
    if cls is None:
        raise InvalidArgument(f"no @transferable type for codec {codec!r}")
    return bytes(cls.serialize(value))


def _decode(codec: str, data: bytes):
    try:
        if codec == "none":
            return None
        if codec == "i64":
            return _struct.unpack("<q", data)[0]
        if codec == "f64":
            return _struct.unpack("<d", data)[0]
        if codec == "bool":
            if data not in (b"\x00", b"\x01"):
                raise ValueError("not 0 or 1")
            return data == b"\x01"
        if codec == "str":
            return data.decode("utf-8")
        if codec == "bytes":
            return data
        if codec == "ndarray":
            import numpy as np
            dtype, shape, off = _native._ndarray_parse(data)
            return np.frombuffer(data, dtype=np.dtype(dtype), offset=off).reshape(shape)
        if codec == "pickle":
            return _pickle.loads(data)
    except (_struct.error, ValueError, UnicodeDecodeError) as e:
        raise Corrupt(f"{codec} value: {e}") from None
    cls = _transferables.get(codec)
    if cls is None:
        raise InvalidArgument(f"no @transferable type for codec {codec!r}")
    return cls.deserialize(data)


# ---- serving to other processes ------------------------------------------------------------------

class Server:
    """Hosts resources at ipc://<id> for other processes (and in this process, directly).

        server = weft.Server("calc")
        server.register(Counter, CounterImpl(), name="counter")
        server.serve()        # or start() and carry on; shutdown() ends it
    """

    def __init__(self, id: str):
        self._native = _native._RpcServer(id)
        self._names = []
        self._started = False

    @property
    def address(self) -> str:
        return self._native.address

    def register(self, contract_cls, impl, name: str, on_shutdown=None) -> None:
        register(contract_cls, impl, name, on_shutdown)  # also reachable in-process, directly
        reg = _registry[name]
        methods = sorted(reg.contract.methods, key=lambda m: m.name.encode())

        def dispatch(index: int, args):
            m = methods[index]
            values = [_decode(codec, a) for codec, a in zip(m.params, args)]
            return _encode(m.result, getattr(impl, m.name)(*values))

        try:
            self._native.register(name, reg.contract.canonical(), dispatch)
        except BaseException:
            unregister(name)
            raise
        self._names.append(name)

    def start(self) -> None:
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


class _IpcProxy:
    """The proxy for a resource in another process: same API as the in-process one."""

    def __init__(self, contract: Contract, name: str, address: str, timeout: Optional[float]):
        self._contract = contract
        self._timeout = timeout
        self._client = _native._RpcClient(contract.canonical(), name, address, timeout)

    def __getattr__(self, method: str):
        if method.startswith("_"):
            raise AttributeError(method)
        m = self._contract.method(method)
        if m is None:
            raise AttributeError(f"contract {self._contract.namespace}/{self._contract.name} has no method {method!r}")

        def call(*args):
            if len(args) != len(m.params):
                raise InvalidArgument(f"{method}() takes {len(m.params)} arguments, got {len(args)}")
            data = [_encode(codec, a) for codec, a in zip(m.params, args)]
            return _decode(m.result, self._client.call(method, data, self._timeout))

        call.__name__ = method
        self.__dict__[method] = call  # built once per method, not per attribute lookup
        return call

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> "_IpcProxy":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
