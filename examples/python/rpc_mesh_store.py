"""A mesh store: a resource holding a million-vertex NumPy array, queried from another process.

The store keeps its vertices in the server's shared memory (weft.loan_array), so a client in
hold mode reads them in place: no copy, no deserialization. A client can also build a large
argument in shared memory (weft.loan_array on its proxy) for the store to read in place.

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

    @weft.read
    def everything(self) -> np.ndarray: ...

    @weft.read
    def nearest(self, points: np.ndarray) -> int: ...

    def translate(self, dx: float, dy: float, dz: float) -> int: ...


class MeshStoreImpl:
    def __init__(self, server: weft.Server, n: int):
        self.xyz = weft.loan_array(server, (n, 3), "float64")  # in the server's shared memory
        self.xyz[:] = np.random.default_rng(7).random((n, 3))

    def count(self) -> int:
        return len(self.xyz)

    def vertices(self, start: int, stop: int) -> np.ndarray:
        return self.xyz[start:stop]

    def everything(self) -> np.ndarray:
        return self.xyz  # sent as it is: the client gets the block itself

    def nearest(self, points: np.ndarray) -> int:
        """Index of the vertex nearest to the first point (the array is read in place)."""
        return int(np.argmin(((self.xyz - points[0]) ** 2).sum(axis=1)))

    def translate(self, dx: float, dy: float, dz: float) -> int:
        self.xyz += np.array([dx, dy, dz])
        return len(self.xyz)


expected = np.random.default_rng(7).random((VERTICES, 3))
pid, address = serve_in_child(f"mesh-{os.getpid()}",
                              lambda s: s.register(MeshStore, MeshStoreImpl(s, VERTICES), name="mesh"))
try:
    with weft.connect(MeshStore, name="mesh", address=address, timeout=30) as mesh:
        n = mesh.count()
        everything = mesh.vertices(0, n)  # 24 MB: a copy of our own
        total = everything.sum(axis=0)
        assert np.array_equal(everything, expected)
        with weft.hold(mesh.everything)() as held:  # the store's own memory, viewed in place
            assert np.array_equal(held.value, expected) and not held.value.flags.writeable
            print(f"held {held.value.nbytes >> 20} MB in place; holds: {weft.hold_stats()['active_holds']}")
        query = weft.loan_array(mesh, (100_000, 3), "float64")  # built where the store reads it
        query[:] = expected[42]
        assert mesh.nearest(query) == 42
        mesh.translate(1.0, 0.0, 0.0)
        moved = mesh.vertices(0, 10)
        assert np.allclose(moved, expected[:10] + [1.0, 0.0, 0.0])
        print(f"{n} vertices, centroid {np.round(total / n, 4)}")
finally:
    stop(pid)
print("mesh store example ok")
