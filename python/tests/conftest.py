import os
import sys
import select
import shutil
import subprocess
import tempfile

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
    # The server says "1" on --ready-fd once it listens: wait for that
    # line (or EOF, if it died) rather than polling for the socket file.
    ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
    os.set_inheritable(ready_w, True)
    proc = subprocess.Popen([os.path.join(BUILD, "mpforkserver"), "--socket", sock,
                             "--preload", preload, "--ready-fd", str(ready_w)],
                            pass_fds=[ready_w])
    os.close(ready_w)
    with os.fdopen(ready_r, "rb") as ready:
        if not select.select([ready], [], [], 30)[0] or ready.read(1) != b"1":
            proc.kill()
            proc.wait()
            pytest.fail("mpforkserver did not become ready (exit %s)" % proc.poll())
    yield sock
    proc.terminate()
    proc.wait()
    shutil.rmtree(d, ignore_errors=True)


def _embedded_version():
    """The Python the build embedded (Debian's python3-embed)."""
    try:
        out = subprocess.run(["pkg-config", "--modversion", "python3-embed"],
                             capture_output=True, text=True, timeout=30).stdout
        return tuple(int(x) for x in out.strip().split(".")[:2])
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None


# Python targets need the caller to be the embedded interpreter's version
# (pickles and extension modules do not cross versions); another python3 on
# PATH still runs the argv and call tests.
needs_embedded_python = pytest.mark.skipif(
    _embedded_version() != tuple(sys.version_info[:2]),
    reason="this python3 is not the version mpspawn_python.so embeds")
