"""The smallest graph: a typed route, a value published, read back as the latest, observed as it
comes, with its envelope."""

import dataclasses

from weft import graph


@dataclasses.dataclass
class Temperature:
    celsius: float


def main():
    g = graph.Graph()
    temp = graph.route("sensor", "env", "temperature", Temperature)
    assert g.latest(temp) is None  # nothing yet
    seen = []
    g.observe(temp, seen.append)
    g.publish(temp, Temperature(21.5))
    g.publish(temp, Temperature(22.0))
    assert g.latest(temp) == Temperature(22.0)
    value, env = g.latest(temp, envelope=True)
    assert env.seq == 2 and env.id != 0
    assert seen == [Temperature(21.5), Temperature(22.0)]
    print(f"{temp.name}: latest {value.celsius} C (seq {env.seq})")
    print("simple latest example ok")


if __name__ == "__main__":
    main()
