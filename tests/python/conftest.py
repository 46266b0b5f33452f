import os
import itertools
import sys

import pytest

_counter = itertools.count()


@pytest.fixture
def name():
    """A channel name unique to this test; unlinked afterwards."""
    import weft
    n = f"pytest.{os.getpid()}.{next(_counter)}"
    yield n
    try:
        weft.Channel.unlink(n)
    except weft.NotFound:
        pass


@pytest.fixture
def run_python():
    """Runs a Python snippet in a child interpreter with the same weft on its path."""
    import subprocess

    def run(code, **kw):
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(sys.path)
        return subprocess.Popen([sys.executable, "-c", code], env=env, **kw)

    return run


@pytest.fixture
def topic(name):
    """A topic name unique to this test; the topic and its pool are removed afterwards."""
    import weft
    yield name
    try:
        weft.unlink_topic(name)
    except weft.Error:
        pass
