"""An ephemeral entropy stream: random draws are never retained (ephemeral), and everything made
from them is marked nondeterministic, through a map, a window and a join, so a consumer can tell
a reproducible value from one that is not. A value made without them stays clean."""

import dataclasses
import os
import struct

from weft import graph


@dataclasses.dataclass
class Jittered:
    base: float
    jitter: float


def main():
    g = graph.Graph()
    raw = graph.route("lab", "rng", "draws", float, layer="raw", ephemeral=True)
    entropy = graph.route("lab", "rng", "entropy", float, ephemeral=True)
    g.mark(raw, entropy, taint="nondeterministic")
    scaled = graph.route("lab", "rng", "scaled", float)
    g.pipe(g.map(entropy, lambda v: v * 0.01), scaled)
    g.configure_retention(scaled, graph.RetentionPolicy(keep_last=100))
    base = graph.route("lab", "plan", "setpoint", float)
    jittered = graph.route("lab", "plan", "jittered", Jittered)
    g.lookup_join(base, scaled, key_left=lambda v: 0, key_right=lambda v: 0,
                  combine=lambda b, j: Jittered(b, j if j is not None else 0.0), output=jittered)
    windows = g.window(scaled, size=4)

    g.publish(base, 1.0)  # before any draw: clean
    clean = g.latest(jittered, envelope=True)[1]
    for _ in range(8):
        g.publish(raw, struct.unpack("<d", os.urandom(8))[0] % 1.0)
    g.publish(base, 2.0)
    v, tainted = g.latest(jittered, envelope=True)
    w, wenv = g.latest(windows.output, envelope=True)
    assert graph.taints_of(clean) == set()  # the control
    assert graph.taints_of(tainted) == {"nondeterministic"}
    assert graph.taints_of(wenv) == {"nondeterministic"} and w.count == 4
    assert g.history(raw) == []  # ephemeral: never retained
    assert len(g.tainted(scaled, "nondeterministic")) == 8  # the taint query over what scaled retains
    assert g.tainted(scaled, "sensitive") == []
    print(f"jittered {v.base} by {v.jitter:.4f}: taints {sorted(graph.taints_of(tainted))}")
    print("entropy stream example ok")


if __name__ == "__main__":
    main()
