"""Contracts and resources shared by the RPC tests and the server processes they start."""

import struct
from typing import Optional

import numpy as np

import weft


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


def serve(server_id: str) -> None:
    """Runs in a child process: serves a Store until killed."""
    import time
    server = weft.Server(server_id)
    server.register(Store, StoreImpl(), name="store")
    server.start()
    print("ready", flush=True)
    while True:
        time.sleep(1)
