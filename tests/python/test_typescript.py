"""Portable contracts and the TypeScript client: `weft contract export / validate / codegen
typescript`, and a client generated from rpc_demo's Codecs contract, built with tsc and run in
Node, calling a Python server through a NATS registry (through a tunnel over NATS, and direct),
over TLS 1.3 with host keys: every builtin codec, errors, a NumPy array as a typed array."""

import json
import os
import subprocess
import sys

import pytest

import rpc_demo
import weft
from test_rpc_tcp import keygen

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WEFT = os.environ.get("WEFT_BIN", os.path.join(ROOT, "build", "tools", "weft", "weft"))
NODE_MODULES = os.path.join(ROOT, "clients", "typescript", "node_modules")


def weft_cli(*args, cwd=None):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), WEFT_PYTHON=sys.executable)
    return subprocess.run([WEFT, *args], capture_output=True, text=True, env=env, cwd=cwd)


def test_export_validate_and_every_broken_document_refused(tmp_path):
    out = tmp_path / "codecs.json"
    r = weft_cli("contract", "export", "rpc_demo:Codecs", "--out", str(out))
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())  # the canonical text, its hash, and the parameters' names
    assert doc["hash"] == weft.rpc.contract_of(rpc_demo.Codecs).hash
    assert [p["name"] for p in doc["methods"][0]["params"]] == ["a", "b"]  # add(a, b)
    r = weft_cli("contract", "validate", str(out))
    assert r.returncode == 0 and r.stdout.startswith("ok demo.codecs.Codecs 1.0"), r.stderr
    for name, broken in [
        ("hash", dict(doc, hash="0" * 32)),
        ("method", dict(doc, methods=doc["methods"][1:])),
        ("format", dict(doc, weft_contract=2)),
        ("params", dict(doc, methods=[dict(doc["methods"][0], params=[{"name": "a b", "codec": "i64"}] * 2)] + doc["methods"][1:])),
    ]:
        bad = tmp_path / f"bad-{name}.json"
        bad.write_text(json.dumps(broken))
        r = weft_cli("contract", "validate", str(bad))
        assert r.returncode == 1 and "InvalidArgument" in r.stderr, (name, r.stderr)
    (tmp_path / "garbage.json").write_text("{not json")
    r = weft_cli("contract", "validate", str(tmp_path / "garbage.json"))
    assert r.returncode == 1 and "not JSON" in r.stderr
    r = weft_cli("contract", "export", "rpc_demo:Nothing")
    assert r.returncode == 1


def build_typescript(directory, contract_json, client_ts, program):
    """Generates `client_ts` from a contract document, copies `program` (a .ts file) beside it,
    and builds both with tsc against clients/typescript's packages."""
    r = weft_cli("contract", "codegen", "typescript", str(contract_json), "--out", str(directory / client_ts))
    assert r.returncode == 0, r.stderr
    with open(program) as f:
        (directory / os.path.basename(program)).write_text(f.read())
    with open(os.path.join(ROOT, "clients", "typescript", "tsconfig.json")) as f:
        (directory / "tsconfig.json").write_text(f.read())
    os.symlink(NODE_MODULES, directory / "node_modules")
    r = subprocess.run([os.path.join(NODE_MODULES, ".bin", "tsc"), "-p", str(directory)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.fixture
def typescript_client(tmp_path):
    """The Codecs client generated and built with tsc: the directory holding codecs_main.js."""
    doc = tmp_path / "codecs.json"
    assert weft_cli("contract", "export", "rpc_demo:Codecs", "--out", str(doc)).returncode == 0
    build_typescript(tmp_path, doc, "client.ts", os.path.join(ROOT, "tests", "typescript", "codecs_main.ts"))
    return tmp_path


@pytest.fixture
def codecs_server(demo_server, tmp_path, nats_server):
    ids = {name: keygen(tmp_path / f"{name}.key") for name in ("server", "client", "stranger")}
    r = weft_cli("keygen", "--cert", str(tmp_path / "client.key"))
    assert r.returncode == 0 and r.stdout.startswith("-----BEGIN CERTIFICATE-----"), r.stderr
    (tmp_path / "client.crt").write_text(r.stdout)
    registry = f"nats://127.0.0.1:{nats_server}"
    demo_server(key=str(tmp_path / "server.key"), trust=ids["client"], registry=registry, listen="tcp://127.0.0.1:0")
    return registry, tmp_path, ids


def run_client(client_dir, registry, keys, trust, via, name="codecs"):
    r = subprocess.run(["node", str(client_dir / "codecs_main.js"), registry, str(keys / "client.key"),
                        str(keys / "client.crt"), trust, via, name], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout)


@pytest.mark.parametrize("via", ["relay", "direct"])
def test_the_typescript_client_calls_every_codec_and_sees_errors(typescript_client, codecs_server, via):
    registry, keys, ids = codecs_server
    out = run_client(typescript_client, registry, keys, ids["server"], via)
    assert out["negate"] is False
    assert out["add"] == "42" and out["add_big"] == str(9007199254740993 + 1)
    assert out["scale"] == -3.0
    assert out["greet"] == "hello, wörld"
    assert out["reverse"] == [3, 2, 1] and out["reverse_big"] is True
    assert out["reset"] is None
    assert out["ramp"] == {"dtype": "<f8", "shape": [5, 2], "data": list(range(10)), "kind": "Float64Array"}
    assert out["ramp_big"] == {"shape": [500000, 2], "kind": "Float64Array", "first": 0, "last": 999999}
    assert out["total"] == 6.5 and out["total_i32"] == 10
    assert out["countdown"] == list(reversed(range(40)))
    assert out["early"] == [99999, 99998, 99997] and out["after_stream"] == "hello, again"
    assert out["permission"][0] == "PermissionDenied" and "not for you" in out["permission"][1]
    assert out["other"][0] == "InvalidArgument"


def test_the_typescript_client_is_refused_by_name_and_by_key(typescript_client, codecs_server):
    registry, keys, ids = codecs_server
    assert run_client(typescript_client, registry, keys, ids["server"], "relay", "nobody")["connect"][0] == "NotFound"
    # "store" is served, under another contract: a name alone is not enough.
    mismatch = run_client(typescript_client, registry, keys, ids["server"], "relay", "store")["connect"]
    assert mismatch[0] == "ContractMismatch" and "a name alone is not enough" in mismatch[1]
    # A server that proves another key than the one trusted: refused before any call.
    assert run_client(typescript_client, registry, keys, ids["stranger"], "relay")["connect"][0] == "Unauthenticated"


def test_the_typescript_mesh_example(tmp_path, run_python, nats_server):
    """examples/typescript/query_mesh.ts against the mesh store of examples/python, as its
    comment says to build and run it."""
    examples = os.path.join(ROOT, "examples")
    env_path = os.pathsep.join([os.path.join(examples, "python"), *sys.path])
    ids = {name: keygen(tmp_path / f"{name}.key") for name in ("store", "client")}
    (tmp_path / "client.crt").write_text(weft_cli("keygen", "--cert", str(tmp_path / "client.key")).stdout)
    env = dict(os.environ, PYTHONPATH=env_path, WEFT_PYTHON=sys.executable)
    r = subprocess.run([WEFT, "contract", "export", "rpc_mesh_across_hosts:MeshStore", "--out", str(tmp_path / "mesh.json")],
                       env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    build_typescript(tmp_path, tmp_path / "mesh.json", "mesh_client.ts", os.path.join(examples, "typescript", "query_mesh.ts"))
    registry = f"nats://127.0.0.1:{nats_server}"
    store = subprocess.Popen([sys.executable, os.path.join(examples, "python", "rpc_mesh_across_hosts.py"), "--serve",
                              registry, str(tmp_path / "store.key"), ids["client"], "tcp://127.0.0.1:0"],
                             env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert store.stdout.readline().strip() == "serving"
        r = subprocess.run(["node", str(tmp_path / "query_mesh.js"), registry, str(tmp_path / "client.key"),
                            str(tmp_path / "client.crt"), ids["store"]], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        out = json.loads(r.stdout)
        assert out["count"] == "1000000" and out["first_shape"] == [4, 3] and out["shape"] == [1000000, 3]
        assert out["dtype"] == "<f8" and abs(out["mean_x"] - out["centroid"][0]) < 1e-9
    finally:
        store.kill()
        store.wait()


def test_the_typescript_client_retries_reads_only_and_its_breaker_opens(tmp_path, codecs_server, demo_server):
    """resilience_main.ts: a read retried across a server's death to its successor, found beside
    the dead one's stale route in the registry (the client
    without retry, the control, sees the broken connection once); a write never retried; a
    breaker open after two failures in a row refusing without dialing (control: without it the
    third call dials)."""
    registry, keys, ids = codecs_server
    doc = tmp_path / "codecs.json"
    assert weft_cli("contract", "export", "rpc_demo:Codecs", "--out", str(doc)).returncode == 0
    build_typescript(tmp_path, doc, "client.ts", os.path.join(ROOT, "tests", "typescript", "resilience_main.ts"))
    node = subprocess.Popen(["node", str(tmp_path / "resilience_main.js"), registry, str(keys / "client.key"),
                             str(keys / "client.crt"), ids["server"]],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert node.stdout.readline().strip() == "ready", node.stderr.read()
        first, _ = demo_server.processes[0]
        first.kill()
        first.wait()
        second, _ = demo_server(key=str(keys / "server.key"), trust=ids["client"], registry=registry,
                                listen="tcp://127.0.0.1:0")
        node.stdin.write("go\n")
        node.stdin.flush()
        assert node.stdout.readline().strip() == "ready", node.stderr.read()
        second.kill()
        second.wait()
        node.stdin.write("go\n")
        node.stdin.flush()
        out = json.loads(node.stdout.readline())
    finally:
        node.kill()
        node.wait()
    assert out["before"] == [["ok", "hello, a"], ["ok", "hello, b"], ["ok", "hello, c"]]
    assert out["retried"] == ["ok", "hello, again"], out
    assert out["plain_first"][0] == "Unavailable" and "connection lost" in out["plain_first"][1]
    assert out["plain_second"] == ["ok", "hello, again"]
    assert out["write_once"][0] == "Unavailable" and "connection lost" in out["write_once"][1], out["write_once"]
    assert [o[0] for o in out["guarded"]] == ["Unavailable", "Unavailable"]
    assert out["open"][0] == "Unavailable" and "circuit" in out["open"][1], out["open"]
    assert [o[0] for o in out["unguarded"]] == ["Unavailable"] * 3
    assert "circuit" not in out["unguarded"][2][1]
