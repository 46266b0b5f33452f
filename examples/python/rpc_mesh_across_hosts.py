"""The mesh store served on one host and queried from another, found through NATS.

Three hosts: NATS on the first, the store on the second, a client on the third. The store
announces itself to NATS (weft.Server(registry=...)); the client asks NATS for "mesh" with the
MeshStore contract, connects straight to the store over TLS 1.3 (host keys made with
`weft keygen`, each side pinning the other's), and reads a million vertices as a NumPy array.

As root the hosts are network namespaces joined by a bridge (`ip netns`, removed at the end);
otherwise (or with --local) they are processes of this host on loopback.

    sudo python3 examples/python/rpc_mesh_across_hosts.py
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

import weft

VERTICES = 1_000_000
HERE = os.path.dirname(os.path.abspath(__file__))
WEFT = os.environ.get("WEFT_BIN") or shutil.which("weft") or os.path.join(HERE, "..", "..", "build", "tools", "weft", "weft")


@weft.contract(namespace="demo.mesh", version="0.2.0")
class MeshStore:
    @weft.read
    def count(self) -> int: ...

    @weft.read
    def vertices(self, start: int, stop: int) -> np.ndarray: ...

    @weft.read
    def centroid(self) -> np.ndarray: ...

    def translate(self, dx: float, dy: float, dz: float) -> int: ...


class MeshStoreImpl:
    def __init__(self, n: int):
        self.xyz = np.random.default_rng(7).random((n, 3))

    def count(self) -> int:
        return len(self.xyz)

    def vertices(self, start: int, stop: int) -> np.ndarray:
        return self.xyz[start:stop]

    def centroid(self) -> np.ndarray:
        return self.xyz.mean(axis=0)

    def translate(self, dx: float, dy: float, dz: float) -> int:
        self.xyz += np.array([dx, dy, dz])
        return len(self.xyz)


def serve(registry, key, trust, listen):
    """The store's host: serves until killed."""
    server = weft.Server(f"mesh-{os.getpid()}", listen=listen, key=key, trust=trust, registry=registry)
    server.register(MeshStore, MeshStoreImpl(VERTICES), name="mesh")
    server.start()
    print("serving", flush=True)
    while True:
        time.sleep(1)


def query(registry, key, trust):
    """The client's host."""
    deadline = time.monotonic() + 30
    while True:  # until the store has announced itself
        try:
            mesh = weft.connect(MeshStore, name="mesh", registry=registry, key=key, trust=trust, retry=3, timeout=30)
            break
        except (weft.NotFound, weft.Unavailable):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    with mesh:
        n = mesh.count()
        xyz = mesh.vertices(0, n)  # 24 MB across hosts, received straight into the array
        expected = np.random.default_rng(7).random((VERTICES, 3))
        assert np.array_equal(xyz, expected)
        assert np.allclose(mesh.centroid(), expected.mean(axis=0))
        print(f"{n} vertices from {mesh!r}; centroid {np.round(mesh.centroid(), 4)}")


class Hosts:
    """Three hosts: network namespaces on a bridge (root), or this host's loopback."""

    def __init__(self, local: bool):
        self.local = local
        self.tag = f"wm{os.getpid() % 10000}"
        self.addr = ["127.0.0.1"] * 3
        if local:
            return
        net = f"10.{150 + os.getpid() // 256 % 50}.{os.getpid() % 256}."
        self.ip(f"netns add {self.tag}-sw")
        self.ip(f"-n {self.tag}-sw link add br0 type bridge")
        self.ip(f"-n {self.tag}-sw link set br0 up")
        for i in range(3):
            ns, h, p = f"{self.tag}-{i}", f"{self.tag}h{i}", f"{self.tag}p{i}"
            self.addr[i] = net + str(i + 1)
            for cmd in (f"netns add {ns}", f"link add {h} type veth peer name {p}", f"link set {h} netns {ns}",
                        f"link set {p} netns {self.tag}-sw", f"-n {self.tag}-sw link set {p} master br0",
                        f"-n {self.tag}-sw link set {p} up", f"-n {ns} addr add {self.addr[i]}/24 dev {h}",
                        f"-n {ns} link set {h} up", f"-n {ns} link set lo up"):
                self.ip(cmd)

    @staticmethod
    def ip(args):
        subprocess.run(["ip", *args.split()], check=True, capture_output=True)

    def run(self, i, argv, **kw):
        prefix = [] if self.local else ["ip", "netns", "exec", f"{self.tag}-{i}"]
        return subprocess.Popen(prefix + argv, **kw)

    def close(self):
        if self.local:
            return
        for ns in [f"{self.tag}-{i}" for i in range(3)] + [f"{self.tag}-sw"]:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def main():
    if len(sys.argv) > 1 and sys.argv[1] in ("--serve", "--query"):
        args = sys.argv[2:]
        return serve(*args) if sys.argv[1] == "--serve" else query(*args)
    local = "--local" in sys.argv or os.geteuid() != 0
    hosts = Hosts(local)
    tmp = tempfile.mkdtemp(prefix="weft-mesh-")
    procs = []
    try:
        ids = {}
        for name in ("store", "client"):
            out = subprocess.run([WEFT, "keygen", "--out", f"{tmp}/{name}.key"], check=True, capture_output=True, text=True)
            ids[name] = out.stdout.split()[-1]
        port = 4222 if not local else 14000 + os.getpid() % 1000
        procs.append(hosts.run(0, ["nats-server", "-js", "-a", hosts.addr[0], "-p", str(port), "-sd", f"{tmp}/js"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        registry = f"nats://{hosts.addr[0]}:{port}"
        time.sleep(0.5)
        me = [sys.executable, os.path.abspath(__file__)]
        store = hosts.run(1, me + ["--serve", registry, f"{tmp}/store.key", ids["client"], f"tcp://{hosts.addr[1]}:7000"],
                          stdout=subprocess.PIPE, text=True)
        procs.append(store)
        assert store.stdout.readline().strip() == "serving"
        client = hosts.run(2, me + ["--query", registry, f"{tmp}/client.key", ids["store"]], stdout=subprocess.PIPE, text=True)
        out, _ = client.communicate(timeout=120)
        print(out, end="")
        assert client.returncode == 0
        print(f"mesh across hosts example ok ({'loopback' if local else 'network namespaces'})")
    finally:
        for p in procs:
            p.kill()
            p.wait()
        hosts.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
