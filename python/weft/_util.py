"""Argument checks shared by the package's NumPy helpers: misuse raises weft.InvalidArgument."""

from __future__ import annotations

from ._errors import InvalidArgument


def dtype_of(dtype):
    """numpy.dtype(dtype), or weft.InvalidArgument saying what was wrong."""
    import numpy as np
    try:
        return np.dtype(dtype)
    except (TypeError, ValueError) as e:
        raise InvalidArgument(f"not a NumPy dtype: {dtype!r} ({e})") from None


def element_count(shape) -> int:
    """The number of elements of `shape` (an int or a tuple of non-negative ints)."""
    dims = shape if isinstance(shape, tuple) else (shape,)
    count = 1
    for dim in dims:
        if not isinstance(dim, int) or isinstance(dim, bool) or dim < 0:
            raise InvalidArgument(f"shape {shape!r}: dimensions must be non-negative integers")
        count *= dim
    return count


def array_over(buffer, shape, dtype, what: str):
    """A NumPy array of `shape` and `dtype` over `buffer` (no copy), or weft.InvalidArgument if
    it does not fit."""
    import numpy as np
    dtype = dtype_of(dtype)
    count = element_count(shape)
    size = memoryview(buffer).nbytes
    if count * dtype.itemsize > size:
        raise InvalidArgument(f"an array of shape {shape!r} and dtype {dtype} needs {count * dtype.itemsize} "
                              f"bytes; {what} has {size}")
    return np.frombuffer(buffer, dtype=dtype, count=count).reshape(shape)
