"""The package as Python's ecosystem expects it: typed (py.typed and a stub of weft._native that
matches the module), documented (every public name), signatures visible to help()."""

import inspect
import os
import subprocess
import sys

import weft

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_the_native_stub_matches_the_module():
    r = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "native_stub.py"), "--check"],
                       capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)),
                       timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    pkg = os.path.dirname(weft.__file__)
    assert os.path.exists(os.path.join(pkg, "py.typed"))
    stub = open(os.path.join(ROOT, "python", "weft", "_native.pyi")).read()
    for name in dir(weft._native):
        if not name.startswith("__"):
            assert f"class {name}" in stub or f"def {name}(" in stub, name


def test_every_public_name_is_documented():
    missing = []
    for name in weft.__all__:
        obj = getattr(weft, name)
        if not (obj.__doc__ or "").strip():
            missing.append(name)
        if inspect.isclass(obj) and not issubclass(obj, weft.Error):
            for attr, value in vars(obj).items():
                if not attr.startswith("_") and callable(value) and not (value.__doc__ or "").strip():
                    missing.append(f"{name}.{attr}")
    assert missing == []


def test_help_shows_signatures():
    # Python-level API: inspect sees real signatures; native methods carry theirs in the docstring.
    assert list(inspect.signature(weft.Channel.create).parameters)[:3] == ["name", "capacity", "max_record"]
    assert "timeout" in inspect.signature(weft.Subscriber.take).parameters
    assert "timeout" in inspect.signature(weft.call_async).parameters
    assert weft.Channel.write.__doc__.splitlines()[0].startswith("write(self: weft._native._Channel, data")
