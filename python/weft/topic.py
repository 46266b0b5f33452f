"""weft.Publisher and weft.Subscriber: zero-copy one-to-many publish/subscribe.

    pub = weft.Publisher("camera")
    frame = pub.loan_array((480, 640, 3), "uint8")   # a NumPy array in shared memory
    frame[:] = capture()
    pub.publish(frame)

    sub = weft.Subscriber("camera", history=1, on_full="drop_oldest")   # another process
    with sub.take(timeout=1.0) as sample:            # read-only, valid inside the block
        img = sample.array("uint8", (480, 640, 3))
"""

from __future__ import annotations

from typing import Optional

from . import _native
from ._errors import InvalidArgument
from ._util import array_over, dtype_of, element_count, await_descriptor, await_in_slices

_DEFAULTS = dict(queue_depth=256, keep_history=0, pool_bytes=64 << 20)


def _span_of(obj):
    """The _Span behind a memoryview or NumPy array made from a loan."""
    seen = 0
    while obj is not None and seen < 8:
        if isinstance(obj, _native._Span):
            return obj
        try:
            obj = getattr(obj, "obj", None) if isinstance(obj, memoryview) else getattr(obj, "base", None)
        except ValueError:  # a released memoryview: a loan already published or discarded
            raise InvalidArgument("this loan was already published or discarded") from None
        seen += 1
    raise InvalidArgument("not a loan of this publisher (pass the memoryview or array from loan())")


class Publisher(_native._Publisher):
    """Publishes samples to every subscriber of a topic; creates the topic if absent.

    queue_depth (a power of two), keep_history and pool_bytes apply when this call creates it;
    given for a topic that exists with other values, they raise weft.InvalidArgument.
    """

    def __init__(self, topic: str, queue_depth: Optional[int] = None, keep_history: Optional[int] = None,
                 pool_bytes: int = 64 << 20):
        must_match = queue_depth is not None or keep_history is not None
        super().__init__(topic, 256 if queue_depth is None else queue_depth,
                         0 if keep_history is None else keep_history, pool_bytes, must_match)
        self._loans = {}  # id(span) -> (block, size, span, memoryview)
        self._views = {}  # id(memoryview lent) -> id(span)
        self._topic = topic

    def __repr__(self) -> str:
        return f"<weft.Publisher {self._topic!r} subscribers={self.subscribers} loans={len(self._loans)}>"

    def loan(self, n: int) -> memoryview:
        """A writable memoryview of n bytes in shared memory, to fill and publish()."""
        block, span = self._loan(n)
        view = memoryview(span)
        self._loans[id(span)] = (block, n, span, view)
        self._views[id(view)] = id(span)
        return view

    def loan_array(self, shape, dtype):
        """A NumPy array of `shape` and `dtype` in shared memory, to fill and publish()."""
        dtype = dtype_of(dtype)
        return array_over(self.loan(element_count(shape) * dtype.itemsize), shape, dtype, "the loan")

    def _take_loan(self, loaned):
        # A memoryview we lent is found by identity (it may have been released already, by a
        # publish that an alias refused); anything else by the span behind it.
        key = self._views.get(id(loaned)) if isinstance(loaned, memoryview) else None
        if key is None:
            key = id(_span_of(loaned))
        entry = self._loans.pop(key, None)
        if entry is None:
            raise InvalidArgument("this loan was already published or discarded")
        return key, entry

    def _seal(self, key, entry, loaned, what: str) -> None:
        """Takes the loan's memory away from the publisher before `what`: the memoryview is
        released, an array made read-only; anything else still made from it refuses the call."""
        block, n, span, view = entry
        if loaned is view:
            try:
                view.release()
            except BufferError:
                pass
        elif hasattr(loaned, "flags"):
            loaned.flags.writeable = False
        aliases = span.exports - (0 if loaned is view else 1)  # a loan_array() array holds one
        if aliases > 0:
            self._loans[key] = entry
            raise InvalidArgument(f"an array or view made from this loan is still alive: {what} would leave it "
                                  "pointing at memory others use; drop it first (or loan with loan_array())")

    def publish(self, loaned, size: Optional[int] = None, timeout: Optional[float] = None) -> None:
        """Publishes a loan (the memoryview or array from loan()/loan_array()); the loan is
        consumed. Subscribers read its memory in place, so the publisher can no longer write it:
        the memoryview is released and the array made read-only; an array or view made from the
        loaned memoryview and still alive refuses the publish (drop it, then publish again).
        A subscriber whose queue is full with on_full="block" makes it wait up to `timeout`
        seconds (None: no limit); weft.Timeout then, and nothing was published: the loan is
        still yours, to publish again or discard."""
        key, entry = self._take_loan(loaned)
        block, n, span, view = entry
        self._seal(key, entry, loaned, "publishing")
        try:
            self._publish(block, n if size is None else size, timeout)
        except BaseException:
            self._loans[key] = entry  # still ours: publish again or discard
            raise
        self._consumed(entry)

    async def publish_async(self, loaned, size: Optional[int] = None, timeout: Optional[float] = None) -> None:
        """publish() without blocking the event loop: a wait for room runs in the loop's
        executor in slices of 0.1 s (a publish either delivers to every subscriber or to none,
        so slices repeat nothing). A task cancelled while it waits raises CancelledError; the
        loan is then still yours, unless the slice in flight published it."""
        key, entry = self._take_loan(loaned)
        block, n, span, view = entry
        self._seal(key, entry, loaned, "publishing")
        size = n if size is None else size
        published = []
        try:
            await await_in_slices(lambda t: self._publish(block, size, t), timeout,
                                  f"room in topic {self._topic!r}", published.append)
        except BaseException:
            if published:
                self._consumed(entry)
            else:
                self._loans[key] = entry
            raise
        self._consumed(entry)

    def _consumed(self, entry) -> None:
        block, n, span, view = entry
        self._views.pop(id(view), None)
        span._invalidate()

    def discard(self, loaned) -> None:
        """Returns a loan without publishing it."""
        key, entry = self._take_loan(loaned)
        block, _, span, view = entry
        self._seal(key, entry, loaned, "discarding")
        self._views.pop(id(view), None)
        span._invalidate()
        self._discard(block)

    def __enter__(self) -> "Publisher":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Sample:
    """One received sample: `with sub.take() as sample:`; a read-only view inside the block."""

    __slots__ = ("_sub", "_block", "_span", "_view", "seq", "publisher")

    def __init__(self, sub, block, span, seq, publisher):
        self._sub, self._block, self._span = sub, block, span
        self._view = None
        self.seq, self.publisher = seq, publisher

    def __enter__(self) -> "Sample":
        return self

    def __repr__(self) -> str:
        state = "released" if self._span is None else f"{len(memoryview(self._span))} bytes"
        return f"<weft.Sample seq={self.seq} publisher={self.publisher} {state}>"

    @property
    def view(self) -> memoryview:
        if self._view is None:
            self._view = memoryview(self._span)
        return self._view

    def array(self, dtype, shape=None):
        """The sample as a NumPy array (read-only, no copy): all of it, or `shape`."""
        if shape is None:
            dtype = dtype_of(dtype)
            shape = self.view.nbytes // dtype.itemsize
        return array_over(self.view, shape, dtype, "the sample")

    def bytes(self) -> bytes:
        """A copy of the sample's bytes."""
        return bytes(self.view)

    def release(self) -> None:
        """Gives the sample back (its views stop working); the end of a `with` block does it."""
        if self._span is None:
            return
        if self._view is not None:
            try:
                self._view.release()
            except BufferError:
                pass  # an array made from it is alive: the memory stays mapped, but may be reused
        self._span._invalidate()
        self._span = None
        self._sub._release(self._block)

    def __exit__(self, *exc) -> None:
        self.release()


class Subscriber(_native._Subscriber):
    """Receives every sample published on a topic after it subscribed (plus `history` earlier
    ones per publisher, if the topic keeps them). on_full: "block" (the publisher waits),
    "drop_oldest", "drop_newest", or "fail" (the publish is refused with weft.ResourceExhausted)."""

    def __init__(self, topic: str, history: int = 0, on_full: str = "block",
                 spin_us: Optional[float] = None, queue_depth: Optional[int] = None,
                 keep_history: Optional[int] = None, pool_bytes: int = 64 << 20):
        must_match = queue_depth is not None or keep_history is not None
        super().__init__(topic, history, on_full, spin_us, 256 if queue_depth is None else queue_depth,
                         0 if keep_history is None else keep_history, pool_bytes, must_match)
        self._topic, self._on_full = topic, on_full

    def __repr__(self) -> str:
        return f"<weft.Subscriber {self._topic!r} on_full={self._on_full!r}>"

    def take(self, timeout: Optional[float] = None) -> Sample:
        """The next sample (WouldBlock with timeout=0, Timeout after `timeout` seconds)."""
        return Sample(self, *self._take(timeout))

    async def take_async(self, timeout: Optional[float] = None) -> Sample:
        """Awaits the next sample without blocking the event loop (the descriptor wakes it)."""
        return await await_descriptor(self.fileno(), lambda: Sample(self, *self._take(0)), timeout,
                                      f"topic {self._topic!r}")

    def __aiter__(self):
        """`async for data in sub:` each sample's bytes (copied), waiting without limit."""
        return self._samples_async()

    async def _samples_async(self):
        while True:
            with await self.take_async(None) as sample:
                data = sample.bytes()
            yield data

    def __iter__(self):
        """Yields each sample's bytes (copied), waiting without limit."""
        while True:
            with self.take(None) as sample:
                yield sample.bytes()

    def __enter__(self) -> "Subscriber":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def unlink_topic(name: str) -> None:
    """Removes topic `name` and its pool (weft.NotFound if there is none). Publishers and
    subscribers still attached keep working until they close; a later open makes a new topic."""
    _native._unlink_topic(name)
