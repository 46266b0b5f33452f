"""Contracts and resources shared by the RPC tests and the server processes they start."""

import struct
import time
from typing import Iterator, Optional

import numpy as np

import weft

import os.path as _os_path
import sys as _sys
_sys.path.insert(0, _os_path.join(_os_path.dirname(_os_path.abspath(__file__)), "..", "..", "bench", "python"))
from tables import Table  # noqa: E402  (the columnar table of the benchmarks)


@weft.transferable
class Point:
    def __init__(self, x: float, y: float):
        self.x, self.y = x, y

    def serialize(p: "Point") -> bytes:
        return struct.pack("<dd", p.x, p.y)

    def deserialize(raw: bytes) -> "Point":
        return Point(*struct.unpack("<dd", raw))


@weft.contract(namespace="demo.store", version="1.0")
class Store:
    def increment(self, amount: int) -> int: ...

    @weft.read
    def value(self) -> int: ...

    @weft.read
    def points(self, n: int) -> np.ndarray: ...

    def echo(self, s: str, b: bytes, f: float, flag: bool) -> str: ...

    def stash(self, anything) -> int: ...

    @weft.read
    def shifted(self, p: Point, dx: float) -> Point: ...

    @weft.read
    def lookup(self, key: str) -> str: ...

    @weft.read
    def nap(self, seconds: float) -> float: ...

    @weft.read
    def whoami(self) -> str: ...


class StoreImpl:
    def __init__(self):
        self.total = 0
        self.stashed = []

    def increment(self, amount: int) -> int:
        self.total += amount
        return self.total

    def value(self) -> int:
        return self.total

    def points(self, n: int) -> np.ndarray:
        return np.arange(n * 3, dtype=np.float64).reshape(n, 3)

    def echo(self, s: str, b: bytes, f: float, flag: bool) -> str:
        return f"{s}|{b.hex()}|{f}|{flag}"

    def stash(self, anything) -> int:
        self.stashed.append(anything)
        return len(self.stashed)

    def shifted(self, p: Point, dx: float) -> Point:
        return Point(p.x + dx, p.y)

    def lookup(self, key: str) -> str:
        if key == "boom":
            raise RuntimeError("the resource failed")
        raise weft.NotFound(f"no key {key!r}")

    def nap(self, seconds: float) -> float:
        import time
        time.sleep(seconds)
        return seconds

    def whoami(self) -> str:
        c = weft.caller()
        return f"{c.transport} {c.identity}"


@weft.contract(namespace="demo.grid", version="1.0")
class Grid:
    @weft.read
    def mesh(self) -> np.ndarray: ...

    @weft.read
    def table(self) -> Table: ...

    @weft.read
    def total(self, a: np.ndarray) -> float: ...

    @weft.read
    def last_block(self) -> str: ...

    @weft.read
    def count(self, n: int) -> Iterator[int]: ...

    @weft.read
    def chunks(self, n: int, size: int) -> Iterator[np.ndarray]: ...

    @weft.read
    def paced(self, n: int, gap: float) -> Iterator[int]: ...

    @weft.read
    def produced(self) -> int: ...

    def spin(self, seconds: float) -> bool: ...

    @weft.read
    def spins_cancelled(self) -> int: ...


class GridImpl:
    """Keeps its mesh and table in the server's shared memory, so they are returned in place."""

    def __init__(self, server: Optional["weft.Server"] = None, rows: int = 10_000):
        target = server if server is not None else None
        if target is not None:
            self._mesh = weft.loan_array(target, (rows, 3), "float64")
            self._table = Table.build(rows, weft.loan_buffer(target, Table.nbytes(rows)))
        else:
            self._mesh = np.empty((rows, 3))
            self._table = Table.build(rows)
        self._mesh[:] = np.arange(rows * 3, dtype=np.float64).reshape(rows, 3)
        self._last_block = 0
        self._produced = 0
        self._cancelled = 0

    def mesh(self) -> np.ndarray:
        return self._mesh

    def table(self) -> Table:
        return self._table

    def total(self, a: np.ndarray) -> float:
        self._last_block = weft.block_id(a) or 0  # the argument's own block: read in place
        return float(a.sum())

    def last_block(self) -> str:
        return str(self._last_block)  # block ids are u64

    def count(self, n: int) -> Iterator[int]:
        for i in range(n):
            yield i
            self._produced += 1

    def chunks(self, n: int, size: int) -> Iterator[np.ndarray]:
        for i in range(n):
            yield np.full(size, i, dtype=np.int64)

    def paced(self, n: int, gap: float) -> Iterator[int]:
        """n chunks, `gap` seconds apart; counted in produced() as they are made."""
        for i in range(n):
            if i:
                time.sleep(gap)
            self._produced += 1
            yield i

    def produced(self) -> int:
        return self._produced

    def spin(self, seconds: float) -> bool:
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            if weft.cancelled():
                self._cancelled += 1
                return True
            time.sleep(0.001)
        return False

    def spins_cancelled(self) -> int:
        return self._cancelled


@weft.contract(namespace="demo.codecs", version="1.0")
class Codecs:
    """Every builtin codec a client in another language can use, and errors (the TypeScript
    client's test)."""

    @weft.read
    def negate(self, b: bool) -> bool: ...

    @weft.read
    def add(self, a: int, b: int) -> int: ...

    @weft.read
    def scale(self, x: float, by: float) -> float: ...

    @weft.read
    def greet(self, name: str) -> str: ...

    @weft.read
    def reverse(self, data: bytes) -> bytes: ...

    def reset(self) -> None: ...

    @weft.read
    def ramp(self, n: int) -> np.ndarray: ...

    @weft.read
    def total(self, a: np.ndarray) -> float: ...

    @weft.read
    def refuse(self, why: str) -> str: ...

    @weft.read
    def countdown(self, n: int) -> Iterator[int]: ...


class CodecsImpl:
    def negate(self, b: bool) -> bool:
        return not b

    def add(self, a: int, b: int) -> int:
        return a + b

    def scale(self, x: float, by: float) -> float:
        return x * by

    def greet(self, name: str) -> str:
        return f"hello, {name}"

    def reverse(self, data: bytes) -> bytes:
        return bytes(data)[::-1]

    def reset(self) -> None:
        return None

    def ramp(self, n: int) -> np.ndarray:
        return np.arange(n, dtype=np.float64).reshape(n // 2, 2) if n % 2 == 0 else np.arange(n, dtype=np.float64)

    def total(self, a: np.ndarray) -> float:
        return float(np.asarray(a, dtype=np.float64).sum())

    def countdown(self, n: int) -> Iterator[int]:
        for i in reversed(range(n)):
            yield i

    def refuse(self, why: str) -> str:
        if why == "permission":
            raise weft.PermissionDenied("not for you")
        raise weft.InvalidArgument(f"bad: {why}")


def serve(server_id: str, **options) -> None:
    """Runs in a child process: serves a Store and a Grid until killed (options: weft.Server's,
    e.g. listen="tcp://127.0.0.1:0"; then the tcp address is printed after "ready")."""
    server = weft.Server(server_id, **options)
    server.register(Store, StoreImpl(), name="store", allow_pickle=["stash.anything"])
    server.register(Grid, GridImpl(server), name="grid")
    server.register(Codecs, CodecsImpl(), name="codecs")
    server.start()
    print(" ".join(["ready", *server.addresses[1:]]), flush=True)
    while True:
        time.sleep(1)
