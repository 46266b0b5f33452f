"""A mesh store: a resource holding a million-vertex NumPy array, queried from another process.

    python3 examples/python/rpc_mesh_store.py
"""

import os

import numpy as np

import weft
from _serve import serve_in_child, stop

VERTICES = 1_000_000


@weft.contract(namespace="demo.mesh", version="0.1.0")
class MeshStore:
    @weft.read
    def count(self) -> int: ...

    @weft.read
    def vertices(self, start: int, stop: int) -> np.ndarray: ...

    def translate(self, dx: float, dy: float, dz: float) -> int: ...


class MeshStoreImpl:
    def __init__(self, n: int):
        rng = np.random.default_rng(7)
        self.xyz = rng.random((n, 3))

    def count(self) -> int:
        return len(self.xyz)

    def vertices(self, start: int, stop: int) -> np.ndarray:
        return self.xyz[start:stop]

    def translate(self, dx: float, dy: float, dz: float) -> int:
        self.xyz += np.array([dx, dy, dz])
        return len(self.xyz)


expected = np.random.default_rng(7).random((VERTICES, 3))
pid, address = serve_in_child(f"mesh-{os.getpid()}",
                              lambda s: s.register(MeshStore, MeshStoreImpl(VERTICES), name="mesh"))
try:
    with weft.connect(MeshStore, name="mesh", address=address, timeout=30) as mesh:
        n = mesh.count()
        everything = mesh.vertices(0, n)  # 24 MB: travels as a block of the server's pool
        total = everything.sum(axis=0)
        assert np.array_equal(everything, expected)
        mesh.translate(1.0, 0.0, 0.0)
        moved = mesh.vertices(0, 10)
        assert np.allclose(moved, expected[:10] + [1.0, 0.0, 0.0])
        print(f"{n} vertices, centroid {np.round(total / n, 4)}")
finally:
    stop(pid)
print("mesh store example ok")
