"""The Python examples run and succeed."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_numpy_frames_example():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    r = subprocess.run([sys.executable, os.path.join(ROOT, "examples/python/numpy_frames.py")],
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "10 frames checked" in r.stdout


def run_example(name, folder="examples/python"):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    r = subprocess.run([sys.executable, os.path.join(ROOT, folder, name)],
                       env=env, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def test_rpc_counter_example():
    out = run_example("rpc_counter.py")
    assert "in-process: increment, value, reset as expected" in out
    assert "counter example ok" in out


def test_rpc_greeter_example():
    assert "greeter example ok" in run_example("rpc_greeter.py")


def test_rpc_mesh_store_example():
    out = run_example("rpc_mesh_store.py")
    assert "1000000 vertices" in out and "mesh store example ok" in out


def test_bus_tokens_example():
    out = run_example("bus_tokens.py")
    assert json.loads(out.splitlines()[0]) == {"tokens": 4000, "requests": 8, "both_members_read": True,
                                               "request_split": True, "ingested": 4000}
    assert "bus tokens example ok" in out


def test_bus_durable_example():
    out = run_example("bus_durable.py")
    report = json.loads(out.splitlines()[0])
    assert report == {"handled_before_kill": 400, "in_order_per_agent": True, "ingested": 1000, "killed": True,
                      "replayed": 1000, "resumed": 600}
    assert "bus durable example ok" in out


def test_rpc_mesh_across_hosts_example():
    # As root (CI): three network namespaces; NATS, the store and the client one on each.
    out = run_example("rpc_mesh_across_hosts.py")
    assert "1000000 vertices" in out and "mesh across hosts example ok" in out
    if os.geteuid() == 0:
        assert "(network namespaces)" in out


def test_graph_bursty_sensor_example():
    out = run_example("rate_matched_sensor.py", "examples/graph")
    assert "495 coalesced" in out and "bursty sensor example ok" in out


def test_graph_across_processes_example():
    assert "across processes example ok" in run_example("across_processes.py", "examples/graph")


@pytest.mark.parametrize("name,says", [
    ("simple_latest.py", "simple latest example ok"),
    ("imu_fusion.py", "imu fusion example ok"),
    ("rolling_window.py", "rolling window example ok"),
    ("cross_partition_join.py", "cross-partition join example ok"),
    ("entropy_stream.py", "entropy stream example ok"),
    ("actuator_shadow.py", "actuator shadow example ok"),
])
def test_graph_reference_examples(name, says):
    assert says in run_example(name, "examples/graph")
