"""Camera-like frames from one process to another, as NumPy arrays read from shared memory."""

import multiprocessing as mp
import os

import numpy as np

import weft

NAME = f"example.py.{os.getpid()}"
SHAPE = (480, 640, 3)


def consumer():
    rx = weft.Channel.open(NAME)
    for i in range(10):
        with rx.read(timeout=5) as view:
            frame = np.frombuffer(view, dtype=np.uint8).reshape(SHAPE)  # no copy
            assert frame[0, 0, 0] == i and frame.mean() == i
            del frame
    print("consumer: 10 frames checked")


def main():
    tx = weft.Channel.create(NAME, capacity=8 << 20)
    p = mp.Process(target=consumer)
    p.start()
    nbytes = int(np.prod(SHAPE))
    for i in range(10):
        with tx.reserve(nbytes) as buf:
            np.frombuffer(buf, dtype=np.uint8).reshape(SHAPE)[:] = i  # written in place
    p.join(10)
    weft.Channel.unlink(NAME)
    raise SystemExit(p.exitcode)


if __name__ == "__main__":
    main()
