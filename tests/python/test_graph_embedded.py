"""weft.graph's embedded profile: a scalar sensor smooths and suppresses by deadband; a bulk
sensor publishes cheap metadata and opens payloads only on demand, checked against the metadata;
the profile check names what breaks it."""

import pytest

import weft
from weft import graph


def test_a_scalar_sensor_smooths_and_suppresses():
    g = graph.Graph()
    t = g.scalar_sensor("board", "env", "temp", smoothing=0.5, deadband=0.3)
    seen = []
    g.observe(t.logical, seen.append)
    for v in (20.0, 20.2, 21.0):
        t.read(v)
    assert seen == [20.0, 20.55] and t.suppressed == 1
    g.publish(t.raw, 30.0)  # a reading published on the raw route by anyone counts the same
    assert seen[-1] == pytest.approx(25.275)
    assert g.latest(t.logical, envelope=True)[1].causality == g.latest(t.raw, envelope=True)[1].id
    with pytest.raises(weft.InvalidArgument):
        t.read(float("nan"))
    with pytest.raises(weft.InvalidArgument):
        g.scalar_sensor("board", "env", "other", smoothing=0.0)


def test_a_bulk_sensor_opens_payloads_on_demand():
    g = graph.Graph()
    dump = g.bulk_sensor("bms", "battery", "diagnostics", keep=2, max_payload=1 << 16)
    metas = []
    g.observe(dump.meta, lambda m, e: metas.append((m, e)), envelope=True)
    for i in range(3):
        dump.capture(bytes([i]) * (1000 + i), kind=7)
    m, e = metas[-1]
    assert m == graph.BulkMeta(1002, m.crc32c, 7, m.captured_ns) and m.captured_ns > 0
    assert dump.open(m, e) == bytes([2]) * 1002
    with pytest.raises(weft.NotFound):
        dump.open(*metas[0])  # left the window of 2
    forged = graph.BulkMeta(m.bytes, m.crc32c ^ 1, m.kind, m.captured_ns)
    with pytest.raises(weft.Corrupt):
        dump.open(forged, e)
    s = dump.snapshot()
    assert s["opened"] == 2 and s["missed"] == 1 and s["published"] == 3
    with pytest.raises(weft.InvalidArgument):
        dump.capture(b"x" * ((1 << 16) + 1))
    assert s["published"] == dump.snapshot()["published"]  # refused: nothing published


def test_the_profile_check():
    g = graph.Graph()
    g.scalar_sensor("board", "env", "temp")
    g.bulk_sensor("bms", "battery", "diagnostics")
    assert g.check_embedded_profile() == []
    g.publish(graph.route("uart", "io", "line", str, layer="raw"), "hello")
    problems = g.check_embedded_profile()
    assert len(problems) == 1 and "uart/io/line" in problems[0]
