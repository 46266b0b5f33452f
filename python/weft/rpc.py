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
