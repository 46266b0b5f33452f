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


def build_dir():
    # WEFT_BIN is <build>/tools/weft/weft (the Makefile's pytest target sets it).
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(os.environ["WEFT_BIN"]))))


def test_cmake_install_serves_c_and_cpp_consumers(tmp_path):
    prefix = tmp_path / "prefix"
    r = subprocess.run(["cmake", "--install", build_dir(), "--prefix", str(prefix)], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    lib = prefix / "lib"
    assert (lib / "pkgconfig" / "weft.pc").exists() and (lib / "cmake" / "weft" / "weftConfig.cmake").exists()
    env = dict(os.environ, PKG_CONFIG_PATH=str(lib / "pkgconfig"), LD_LIBRARY_PATH=str(lib))
    # C, through pkg-config.
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "weft"], env=env, capture_output=True, text=True,
                           check=True).stdout.split()
    exe = tmp_path / "c_consumer"
    subprocess.run(["cc", "-o", str(exe), os.path.join(ROOT, "tests", "install", "consumer.c"), *flags],
                   check=True, timeout=120)
    r = subprocess.run([str(exe)], env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stdout.strip() == "c consumer ok", (r.returncode, r.stdout, r.stderr)
    # C++, through find_package(weft).
    cbuild = tmp_path / "cpp"
    subprocess.run(["cmake", "-S", os.path.join(ROOT, "tests", "install", "cpp"), "-B", str(cbuild),
                    f"-DCMAKE_PREFIX_PATH={prefix}"], check=True, capture_output=True, timeout=300)
    subprocess.run(["cmake", "--build", str(cbuild)], check=True, capture_output=True, timeout=600)
    r = subprocess.run([str(cbuild / "consumer")], env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stdout.strip() == "c++ consumer ok", (r.returncode, r.stdout, r.stderr)


def test_the_python_module_and_the_c_abi_share_one_library():
    # The module links libweft.so; loading the C ABI as well maps the same file once.
    import ctypes
    import weft._native as native
    lib = ctypes.CDLL(os.path.join(build_dir(), "src", "capi", "libweft.so.1"))
    assert lib.weft_abi_version() == 1
    maps = open("/proc/self/maps").read().split("\n")
    paths = {line.split()[-1] for line in maps if "libweft.so" in line}
    assert len(paths) == 1, paths
    assert native.__file__.startswith(build_dir())
