# Builds weft._native from the C++ sources in this repository. Offline, with Debian's Python:
#   pip install --no-build-isolation ./python
import glob
import os
import platform

from pybind11.setup_helpers import Pybind11Extension
from setuptools import setup

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(here)
sources = sorted(glob.glob(os.path.join(here, "src", "*.cc")))
for module in ("core", "shm", "log", "net", "rpc", "bus", "graph"):
    sources += sorted(glob.glob(os.path.join(root, "src", module, "*.cc")))

os.chdir(here)  # setuptools wants paths relative to this file
sources = [os.path.relpath(s, here) for s in sources]

setup(
    packages=["weft"],
    package_data={"weft": ["py.typed", "*.pyi", "typescript/*.ts"]},
    ext_modules=[
        Pybind11Extension(
            "weft._native",
            sources,
            # A changed source list rebuilds the module (an in-tree build is otherwise kept while
            # it is newer than every source it lists).
            depends=["setup.py"],
            include_dirs=[os.path.relpath(os.path.join(root, "include"), here)],
            libraries=["sodium", "hiredis", "nats", "ssl", "crypto"],
            cxx_std=20,
            # -mcx16: topic rings use a 16-byte compare-and-swap (cmpxchg16b).
            extra_compile_args=["-O2", "-fvisibility=hidden"]
            + (["-mcx16"] if platform.machine() in ("x86_64", "AMD64") else []),
        )
    ],
)
