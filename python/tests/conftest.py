import os
import subprocess
import sys
import tempfile
import time

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.join(ROOT, "build")


@pytest.fixture(scope="session")
def server():
    """A private mpforkserver with tests/preload_table.so preloaded: its socket path."""
    preload = os.path.join(BUILD, "tests", "preload_table.so")
    if not os.path.exists(preload):
        pytest.skip("make build/tests/preload_table.so first")
    d = tempfile.mkdtemp(prefix="mpspawn-py-")
    sock = os.path.join(d, "s.sock")
    proc = subprocess.Popen([os.path.join(BUILD, "mpforkserver"), "--socket", sock,
                             "--preload", preload], stderr=subprocess.DEVNULL)
    for _ in range(200):
        if os.path.exists(sock):
            break
        time.sleep(0.01)
    yield sock
    proc.terminate()
    proc.wait()
