"""The layer check (scripts/check_layers.py) passes on the tree and catches each kind of violation."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "scripts", "check_layers.py")


def run(root):
    return subprocess.run([sys.executable, SCRIPT, str(root)], capture_output=True, text=True, timeout=120)


def test_the_tree_keeps_its_boundaries():
    r = run(ROOT)
    assert r.returncode == 0, r.stdout


def write(path, text=""):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_each_kind_of_violation_is_caught(tmp_path):
    write(tmp_path / "include/weft/rpc/rpc.h")
    write(tmp_path / "include/weft/shm/channel.h", '#include "../../src/shm/internal/x.h"\n')
    write(tmp_path / "src/shm/internal/x.h")
    write(tmp_path / "src/log/a.cc", '#include "weft/rpc/rpc.h"\n')           # a higher layer
    write(tmp_path / "src/log/b.cc", '#include "../shm/internal/x.h"\n')      # another module's internals
    write(tmp_path / "src/log/loose.h")                                       # private header outside internal/
    write(tmp_path / "python/src/m.cc", '#include "shm/internal/x.h"\n')      # a binding reaching inside
    write(tmp_path / "tests/log/t.cc", '#include "shm/internal/x.h"\n')       # tests of log, internals of shm
    write(tmp_path / "tests/shm/ok.cc", '#include "shm/internal/x.h"\n')      # allowed: its own module
    r = run(tmp_path)
    assert r.returncode == 1
    out = r.stdout
    assert "src/log/a.cc" in out and "a higher layer" in out
    assert "src/log/b.cc" in out and "another module's private header" in out
    assert "src/log/loose.h: a private header outside" in out
    assert "python/src/m.cc" in out
    assert "tests/log/t.cc" in out
    assert "include/weft/shm/channel.h" in out
    assert "tests/shm/ok.cc" not in out
    assert "6 violation(s)" in out


def test_the_thread_safety_analysis_rejects_an_unguarded_access(tmp_path):
    # The clang build compiles with -Wthread-safety -Werror (CMakeLists.txt); this shows the
    # annotations of weft/core/mutex.h make it catch a field read without its mutex.
    src = tmp_path / "t.cc"
    body = """
#include "weft/core/mutex.h"
struct Counter {
  weft::Mutex mu;
  int n WEFT_GUARDED_BY(mu) = 0;
  int Good() { weft::MutexLock g(mu); return n; }
  int Bad() { return %s; }
};
int main() { Counter c; return c.Good() + c.Bad(); }
"""
    def compile_(expr):
        src.write_text(body % expr)
        return subprocess.run(["clang++", "-std=c++20", "-fsyntax-only", "-Wthread-safety", "-Werror",
                               "-I", os.path.join(ROOT, "include"), str(src)], capture_output=True, text=True,
                              timeout=120)
    bad = compile_("n")
    assert bad.returncode != 0 and "requires holding mutex 'mu'" in bad.stderr
    good = compile_("0")
    assert good.returncode == 0, good.stderr
