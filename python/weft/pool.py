"""weft.Pool: blocks of shared memory for many processes, reclaimed when a process dies."""

from __future__ import annotations

from . import _native
from ._util import array_over


class Pool(_native._Pool):
    """A shared-memory pool. Blocks are integers (the same in every process).

        pool = weft.Pool("tensors", bytes=256 << 20)      # opens, or creates if absent
        b = pool.allocate(4096)
        pool.buffer(b)[:5] = b"hello"                     # writable memoryview, in place
        a = pool.array(b, (32, 32), "float32")            # NumPy array in shared memory
        # another process: pool.hold(b); ...; pool.release(b)
        pool.release(b)

    A view or array must not be used after the last release of its block (the memory stays
    mapped but may be reused).
    """

    def __init__(self, name: str, bytes: int = 64 << 20, max_arenas: int = 16,
                 max_large_blocks: int = 256, max_block: int = 4 << 30, create: bool = True):
        """Opens pool `name`, or creates it if absent (create=False: open only). Small blocks
        come from arenas of `bytes` each, added as needed up to `max_arenas`."""
        super().__init__(name, create, bytes, max_arenas, max_large_blocks, max_block)

    def buffer(self, block: int) -> memoryview:
        """The block's bytes as a writable memoryview."""
        return memoryview(self._span(block))

    def array(self, block: int, shape, dtype):
        """The block as a NumPy array of `shape` and `dtype` (no copy)."""
        return array_over(self._span(block), shape, dtype, f"block {block}")

    def __enter__(self) -> "Pool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        if self.closed:
            return "<weft.Pool closed>"
        return f"<weft.Pool {self.name!r} holder {self.holder_slot}>"
