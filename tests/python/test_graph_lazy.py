"""weft.graph lazy payloads: metadata observed cheaply, payloads opened on demand and counted;
a payload nobody opens is never encoded."""

import dataclasses

import pytest

import weft
from weft import graph


@dataclasses.dataclass
class FrameMeta:
    index: int
    wanted: bool


class Frame:
    """A payload whose encoding is counted: opening in this process must not need it."""
    encoded = 0

    def __init__(self, pixels: bytes):
        self.pixels = pixels


def _frame_schema():
    def encode(f):
        Frame.encoded += 1
        return f.pixels
    return graph.Schema("frame.v1", encode, Frame, Frame)


def test_payloads_are_opened_on_demand_and_counted():
    g = graph.Graph()
    meta = graph.route("cam", "front", "frame", FrameMeta)
    payload = graph.route("cam", "front", "frame", _frame_schema(), variant="payload", layer="bulk")
    lazy = g.lazy(meta, payload, keep=3)
    opened, envs = [], []

    def on_meta(m, e):
        envs.append(e)
        if m.wanted:
            opened.append(lazy.open(e).pixels)

    g.observe(meta, on_meta, envelope=True)
    for i in range(8):
        lazy.publish(FrameMeta(i, i % 4 == 0), Frame(bytes([i]) * 1000), correlation=7)
    assert opened == [bytes([0]) * 1000, bytes([4]) * 1000]
    assert envs[5].correlation == 7 and envs[5].causality != 0
    assert lazy.open(envs[6]).pixels == bytes([6]) * 1000  # still kept
    with pytest.raises(weft.NotFound):
        lazy.open(envs[1])
    snap = lazy.snapshot()
    assert (snap["published"], snap["opened"], snap["missed"], snap["kept"]) == (8, 3, 1, 3)
    assert Frame.encoded == 0  # no payload was ever encoded
    assert any(e["kind"] == "lazy" for e in g.topology()["edges"])


def test_a_refused_payload_publishes_no_metadata():
    g = graph.Graph()
    meta = graph.route("cam", "front", "frame", FrameMeta)
    payload = graph.route("cam", "front", "frame", _frame_schema(), variant="payload", layer="bulk")
    lazy = g.lazy(meta, payload)
    seen = []
    g.observe(meta, seen.append)
    with pytest.raises(TypeError):
        lazy.publish(FrameMeta(0, True), "not a frame")
    assert seen == [] and lazy.snapshot()["published"] == 0
    lazy.publish(FrameMeta(1, True), Frame(b"x"))  # the control
    assert seen == [FrameMeta(1, True)]
