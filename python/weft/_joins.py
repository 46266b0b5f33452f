"""Joins on routes (weft.graph.Graph.lookup_join, interval_join) and the repartition planner.
Guide: docs/graph.md, "Joins"."""

from __future__ import annotations

import collections
import hashlib
import itertools
import json
from typing import Any, Callable, Optional

from . import _native
from ._windows import _EdgeOf, _Keys


class Joining:
    """A join operator on a graph: output, snapshot(), inputs_of(envelope), close()."""

    LINEAGE_KEEP = 4096  # outputs whose inputs are remembered, the newest

    def __init__(self, subs: list, output, snapshot: Callable[[], dict]):
        self._subs, self.output, self._snapshot = subs, output, snapshot
        self._inputs: collections.OrderedDict = collections.OrderedDict()

    def snapshot(self) -> dict:
        return self._snapshot()

    def _emit(self, graph, value, cause, taints, left_id: int, right_id: int) -> None:
        out_id = graph._port(self.output).publish_with(value, 0, 0, 0, cause, int(taints))
        self._inputs[out_id] = (left_id, right_id)
        if len(self._inputs) > self.LINEAGE_KEEP:
            self._inputs.popitem(last=False)

    def inputs_of(self, envelope) -> Optional[tuple]:
        """Lineage across the join: (left id, right id) of the values an output (its Envelope)
        was made from (right id 0: a lookup that found nothing), or None once forgotten. The
        graph's lineage(causality_id=...) then follows either side as far as it is retained."""
        return self._inputs.get(envelope.id)

    def close(self) -> None:
        for s in self._subs:
            s.cancel()
        self._subs.clear()


def lookup_join(graph, left, right_state, *, key_left: Callable, key_right: Callable, combine: Callable, output) -> Joining:
    state: dict = {}
    counts = {"left": 0, "matched": 0, "missed": 0}

    def on_right(v, e):
        state[key_right(v)] = (v, e)

    def on_left(v, e):
        counts["left"] += 1
        r, re_ = state.get(key_left(v), (None, None))
        counts["matched" if r is not None else "missed"] += 1
        op._emit(graph, combine(v, r), e, re_.taints if re_ is not None else 0, e.id, re_.id if re_ is not None else 0)

    op = Joining([], output, lambda: dict(counts, keys=len(state)))
    op._subs += [graph.observe(right_state, on_right, envelope=True), graph.observe(left, on_left, envelope=True)]
    return _finish(graph, op, left, right_state, output, "lookup join")


def interval_join(graph, left, right, *, within: float, key_left: Callable, key_right: Callable, combine: Callable,
                  output, watermark=None) -> Joining:
    keys = _Keys()
    objs: dict = {}
    ids = itertools.count()

    def on_pair(li, ri):
        (lv, le), (rv, re_) = objs[li], objs[ri]
        later, earlier = (le, re_) if le.event_ns >= re_.event_ns else (re_, le)
        op._emit(graph, combine(lv, rv), later, earlier.taints, le.id, re_.id)

    def on_drop(i):
        objs.pop(i, None)

    native = _native.IntervalJoin(int(within * 1e9), on_pair, on_drop)
    kid = keys.id

    def side(add, key):
        def on_value(v, e):
            i = next(ids)
            objs[i] = (v, e)
            if not add(kid(key(v)), e.event_ns, i, 0.0):
                del objs[i]  # late: dropped, counted
        return on_value

    op = Joining([], output, native.snapshot)
    op._subs += [graph.observe(left, side(native.add_left, key_left), envelope=True),
                 graph.observe(right, side(native.add_right, key_right), envelope=True)]
    if watermark is not None:
        op._subs.append(graph.observe(watermark, lambda w: native.advance(int(w))))
    return _finish(graph, op, left, right, output, "interval join")


def _finish(graph, op: Joining, left, right, output, kind: str) -> Joining:
    out = graph._port(output)
    for src in (left, right):
        port = graph._port(src)
        op._subs.append(_EdgeOf(port, port.add_edge(out, kind, "")))
    graph._flows.append(op)
    return op


def _key_number(k) -> int:
    if isinstance(k, int) and 0 <= k < 1 << 64:
        return k
    return int.from_bytes(hashlib.blake2b(repr(k).encode(), digest_size=8).digest(), "little")


def plan_repartition(counts, partitions: int) -> dict:
    """Where a join across `partitions` partitions would place its keys, from counts of values
    per key (a dict, or (key, count) pairs): {"partitions", "load", "mean", "skew", "hot":
    [{key, values, split}], "partition_of": {key: partition}, "text": a table to read}.
    Integer keys are placed as the bus shards them (their 8 bytes); others by a hash of their repr."""
    items = list(counts.items()) if isinstance(counts, dict) else list(counts)
    numbers = [(_key_number(k), int(n)) for k, n in items]
    j, text, where = _native.plan_repartition(numbers, partitions)
    plan = json.loads(j)
    back = {num: k for (k, _), (num, _) in zip(items, numbers)}
    for h in plan["hot"]:
        h["key"] = back.get(h["key"], h["key"])
    plan["partition_of"] = {k: p for (k, _), p in zip(items, where)}
    plan["text"] = text
    return plan
