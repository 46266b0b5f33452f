"""weft.graph inspection from Python: the topology as data and DOT with pipes, filters and flow
primitives as edges (gone when cancelled or closed); validation; route audits; lineage across
three hops by causality, trace and correlation."""

import json
import os
import subprocess

from weft import graph


def r(stream, tp=int):
    return graph.route("t", "insp", stream, tp)


def test_topology_validation_and_audit():
    g = graph.Graph()
    a, b, c, text = r("a"), r("b"), r("c"), r("text", str)
    p = g.pipe(a, b)
    f = g.pipe(g.filter(b, lambda v: v > 0), c)
    cap = g.capacitor(source=c, sink=a, capacity=1)  # the cycle a -> b -> c -> a goes through storage
    t = g.topology()
    kinds = sorted((e["from"].split("/")[2], e["to"].split("/")[2], e["kind"]) for e in t["edges"])
    assert kinds == [("a", "b", "pipe"), ("b", "c", "filter"), ("c", "a", "capacitor")]
    assert "->" in g.topology_dot()
    assert g.validate() == []
    cap.close()
    g.pipe(c, a)  # now a synchronous cycle
    assert any("a cycle with no capacitor" in p_ for p_ in g.validate())
    g.pipe(g.map(a, str), text)  # a map may change the schema: not a mismatch
    assert not any("schema mismatch" in p_ for p_ in g.validate())
    p.cancel()
    f.cancel()
    assert not any(e["kind"] in ("filter",) for e in g.topology()["edges"])
    g.publish(a, 1, producer=4)
    audit = g.route_audit(a)
    assert audit["published"] == 1 and audit["schema"] == "i64"
    assert [e["kind"] for e in audit["out"]] == ["map"] and [e["kind"] for e in audit["in"]] == ["pipe"]


def test_lineage_across_three_hops():
    g = graph.Graph()
    raw, smooth, alarm = r("raw"), r("smooth"), r("alarm")
    for x in (raw, smooth, alarm):
        g.configure_retention(x, graph.RetentionPolicy(keep_last=100))
    g.pipe(raw, smooth)
    g.observe(smooth, lambda v, e: g.publish(alarm, v * 10, cause=e) if v > 5 else None, envelope=True)
    g.publish(raw, 3, correlation=11)
    g.publish(raw, 8, correlation=12)
    _, out = g.latest(alarm, envelope=True)
    chain = g.lineage(causality_id=out.id)
    assert [name.split("/")[2] for name, _ in chain] == ["alarm", "smooth", "raw"]
    assert chain[-1][1].causality == 0
    assert len(g.lineage(trace_id=out.trace)) == 3
    assert [name.split("/")[2] for name, _ in g.lineage(correlation_id=11)] == ["raw", "smooth"]
    assert len(g.lineage(raw)) == 2
    assert g.lineage(causality_id=12345) == []


def test_weft_graph_cli_asks_a_served_graph():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    weft_bin = os.environ.get("WEFT_BIN", os.path.join(root, "build", "tools", "weft", "weft"))
    name = f"pytest{os.getpid()}"
    g = graph.Graph()
    temp = graph.route("plant", "boiler", "temp", float)
    shown = graph.route("plant", "boiler", "shown", float)
    g.capacitor(source=temp, sink=graph.sink(shown), capacity=2)
    g.publish(temp, 21.5, correlation=99)
    server = g.serve_queries(name)
    try:
        def ask(*args):
            r = subprocess.run([weft_bin, "graph", *args], capture_output=True, text=True, timeout=60)
            return r.returncode, r.stdout, r.stderr

        code, out, _ = ask("list")
        assert code == 0 and name in out.split()
        code, out, _ = ask("catalog", name)
        assert code == 0
        assert {r["name"] for r in json.loads(out)} >= {temp.name, shown.name}
        code, out, _ = ask("latest", name, temp.name)
        latest = json.loads(out)
        assert code == 0 and latest["found"] and latest["value"] == 21.5 and latest["envelope"]["correlation"] == 99
        code, out, _ = ask("topology", name, "--dot")
        assert code == 0 and "-> \"plant/boiler/shown/meta/read/logical\" [label=\"capacitor" in out, out
        code, out, _ = ask("audit", name, temp.name)
        assert code == 0 and json.loads(out)["out"][0]["kind"] == "capacitor"
        code, out, err = ask("latest", name, "plant/boiler/none/meta/read/logical")
        assert code == 1 and "plant/boiler/none" in err, err
        code, out, err = ask("catalog", "no-such-graph")
        assert code == 1 and err
        # The taint and repair-note queries.
        probe = graph.route("plant", "boiler", "probe", float)
        g.configure_retention(probe, graph.RetentionPolicy(keep_last=10))
        fixed = graph.route("plant", "boiler", "fixed", float)
        g.repair(probe, fixed, fix=lambda v: min(v, 25.0), note="clamped to 25")
        g.publish(probe, 30.0, taints="sensitive")
        g.publish(probe, 20.0)
        code, out, _ = ask("tainted", name, probe.name, "--taint", "sensitive")
        assert code == 0 and [e["taints"] for e in json.loads(out)] == [2]
        code, out, _ = ask("repairs", name, fixed.name)
        assert code == 0 and [n["note"] for n in json.loads(out)] == ["clamped to 25", "clamped to 25"]
        assert g.repair_notes(fixed)[-1] == (g.latest(probe, envelope=True)[1].id, "clamped to 25")
        code, out, err = ask("tainted", name, probe.name, "--taint", "purple")
        assert code == 1 and "purple" in err
    finally:
        server.close()
