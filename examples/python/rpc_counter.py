"""A counter resource: the same proxy in this process and from another one.

    python3 examples/python/rpc_counter.py
"""

import os

import weft
from _serve import serve_in_child, stop


@weft.contract(namespace="demo.counter", version="0.1.0")
class Counter:
    def increment(self, amount: int) -> int: ...

    @weft.read
    def value(self) -> int: ...

    def reset(self) -> int: ...


class CounterImpl:
    def __init__(self, initial: int = 0):
        self._value = initial

    def increment(self, amount: int) -> int:
        self._value += amount
        return self._value

    def value(self) -> int:
        return self._value

    def reset(self) -> int:
        old, self._value = self._value, 0
        return old


def use(counter, where):
    assert counter.increment(10) == 110
    assert counter.value() == 110
    assert counter.reset() == 110
    assert counter.value() == 0
    print(f"{where}: increment, value, reset as expected")


# In this process: a direct call, no serialization.
weft.register(Counter, CounterImpl(initial=100), name="counter")
with weft.connect(Counter, name="counter") as c:
    use(c, "in-process")
weft.unregister("counter")

# From another process: the same proxy over ipc://.
pid, address = serve_in_child(f"counter-{os.getpid()}",
                              lambda s: s.register(Counter, CounterImpl(initial=100), name="counter"))
try:
    with weft.connect(Counter, name="counter", address=address, timeout=10) as c:
        use(c, address)
finally:
    stop(pid)
print("counter example ok")
