"""IMU fusion: accelerometer and gyro samples come at their own rates and out of step. Two
capacitors stage each stream until the fusion step asks (explicit demand); an event-time
interval join binds each accelerometer sample to the gyro samples within 2 ms of it, and the
watermark lets the join forget what can pair with nothing to come."""

import dataclasses

from weft import graph

MS = 1_000_000


@dataclasses.dataclass
class Accel:
    t_ns: int
    x: float


@dataclasses.dataclass
class Gyro:
    t_ns: int
    z: float


@dataclasses.dataclass
class Fused:
    accel_ns: int
    gyro_ns: int
    x: float
    z: float


def main():
    g = graph.Graph()
    accel_raw = graph.route("imu", "motion", "accel", Accel, layer="raw")
    gyro_raw = graph.route("imu", "motion", "gyro", Gyro, layer="raw")
    accel = graph.route("imu", "motion", "accel", Accel)
    gyro = graph.route("imu", "motion", "gyro", Gyro)
    pull = graph.route("fusion", "motion", "pull", int)
    watermark = graph.route("imu", "motion", "watermark", int)
    fused = graph.route("fusion", "motion", "pose", Fused)

    # Staging: up to 64 samples each, released one per demand value.
    a_cap = g.capacitor(source=accel_raw, sink=accel, capacity=64, demand=pull)
    g_cap = g.capacitor(source=gyro_raw, sink=gyro, capacity=64, demand=pull)
    join = g.interval_join(accel, gyro, within=0.002, key_left=lambda a: 0, key_right=lambda r: 0,
                           combine=lambda a, r: Fused(a.t_ns, r.t_ns, a.x, r.z), output=fused, watermark=watermark)
    out = []
    g.observe(fused, out.append)

    # 10 accel samples every 5 ms; gyro every 5 ms, 1 ms later (pairs) and one stray 3 ms off.
    for i in range(10):
        t = i * 5 * MS
        g.publish(accel_raw, Accel(t, float(i)), event_ns=t + 1)
        g.publish(gyro_raw, Gyro(t + 1 * MS, -float(i)), event_ns=t + 1 * MS + 1)
    assert out == []  # staged: nothing moves until the fusion step asks
    for i in range(10):
        g.publish(pull, i)
        g.publish(watermark, i * 5 * MS)
    assert len(out) == 10
    assert all(f.gyro_ns - f.accel_ns == 1 * MS and f.z == -f.x for f in out)
    assert g.flow_snapshot(a_cap)["delivered"] == 10 and g.flow_snapshot(g_cap)["delivered"] == 10
    snap = join.snapshot()
    print(f"{len(out)} fused samples; join state {snap}")
    print("imu fusion example ok")


if __name__ == "__main__":
    main()
