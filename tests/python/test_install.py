"""The package installs offline with Debian's Python (pip, no build isolation) and works."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_pip_install_offline(tmp_path):
    target = tmp_path / "site"
    r = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-build-isolation", "--no-index",
         "--no-deps", "--target", str(target), os.path.join(ROOT, "python")],
        capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-4000:]
    code = ("import os, weft; n = 'pytest.install.%d' % os.getpid();"
            "tx = weft.Channel.create(n); rx = weft.Channel.open(n); tx.write(b'ok');"
            "print(rx.read_bytes(timeout=1).decode(), weft.__file__); weft.Channel.unlink(n)")
    env = dict(os.environ, PYTHONPATH=str(target))
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       timeout=60, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    out, path = r.stdout.split()
    assert out == "ok"
    assert path.startswith(str(target))
