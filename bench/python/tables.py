"""A columnar table of (row_id u32, x, y, z f64) rows as a Weft transferable type: the table
of `weft bench rpc`'s numpy case, also used by the tests.

One buffer: a 64-byte header (u64 rows), then each column starting 64-byte aligned. The columns
are NumPy views of the buffer, so `from_buffer` over shared memory copies nothing, and a table
built in a loaned buffer (weft.loan_buffer) is sent as it is.
"""

import struct

import numpy as np

import weft


@weft.transferable
class Table:
    def __init__(self, rows, buf):
        self.rows, self.buf = rows, buf
        off = 64
        self.row_id = np.frombuffer(buf, dtype=np.uint32, count=rows, offset=off)
        off += (rows * 4 + 63) // 64 * 64
        self.x = np.frombuffer(buf, dtype=np.float64, count=rows, offset=off)
        self.y = np.frombuffer(buf, dtype=np.float64, count=rows, offset=off + rows * 8)
        self.z = np.frombuffer(buf, dtype=np.float64, count=rows, offset=off + rows * 16)

    @staticmethod
    def nbytes(rows):
        return 64 + (rows * 4 + 63) // 64 * 64 + rows * 24

    @staticmethod
    def build(rows, buf=None):
        """A table of `rows` rows in `buf` (default: new bytes): row_id i, x = i / 2, y = 1,
        z = -1/4."""
        buf = bytearray(Table.nbytes(rows)) if buf is None else buf
        memoryview(buf)[:8] = struct.pack("<Q", rows)
        t = Table(rows, buf)
        t.row_id[:] = np.arange(rows, dtype=np.uint32)
        t.x[:] = np.arange(rows) * 0.5
        t.y[:] = 1.0
        t.z[:] = -0.25
        return t

    def serialize(t):
        return t.buf  # a loaned buffer is sent as it is

    def deserialize(raw):
        return Table(struct.unpack_from("<Q", raw)[0], raw)

    def from_buffer(buf):
        return Table(struct.unpack_from("<Q", buf)[0], buf)
