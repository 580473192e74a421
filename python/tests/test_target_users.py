"""A root server with embedded Python, used by a real unprivileged user:
the job runs as that user, and the arguments are unpickled only as that
user, in the job (never in the server)."""
import os
import pwd
import select
import shutil
import subprocess
import tempfile
import textwrap

import pytest

from conftest import BUILD, ROOT, needs_embedded_python

pytestmark = [needs_embedded_python,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root (a root server, useradd)")]

CLIENT = textwrap.dedent("""\
    import os, sys
    import mpspawn, jobfuncs
    sock, outdir = sys.argv[1:3]

    class Marker:
        # Unpickling this creates a directory: its owner says who unpickled.
        def __reduce__(self):
            return (os.mkdir, (os.path.join(outdir, "unpickled"),))

    p = mpspawn.Process(target=jobfuncs.state_after, args=(Marker(),), socket=sock)
    p.start()
    p.join(60)
    print(p.exitcode, repr(p.result))
    """)


@pytest.fixture
def user():
    name = "mpspy%d" % os.getpid()
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                    "--user-group", name], check=True, capture_output=True)
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(["userdel", name], capture_output=True)
        subprocess.run(["groupdel", name], capture_output=True)


@pytest.fixture
def root_server():
    d = tempfile.mkdtemp(prefix="mpspawn-pyroot-")
    os.chmod(d, 0o755)
    sock = os.path.join(d, "root.sock")
    ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
    os.set_inheritable(ready_w, True)
    proc = subprocess.Popen([os.path.join(BUILD, "mpforkserver"), "--socket", sock,
                             "--socket-mode", "0666", "--python-preload", "json",
                             "--ready-fd", str(ready_w)], pass_fds=[ready_w])
    os.close(ready_w)
    try:
        with os.fdopen(ready_r, "rb") as ready:
            assert select.select([ready], [], [], 60)[0] and ready.read(1) == b"1", \
                "the root server did not become ready"
        yield sock
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(d, ignore_errors=True)


def test_job_and_unpickling_run_as_the_client(user, root_server, tmp_path):
    # The user cannot read the tree under /root or a 0700 temporary
    # directory: give it a world-readable copy of the package and library.
    share = tempfile.mkdtemp(prefix="mpspawn-pyuser-")
    try:
        os.chmod(share, 0o755)
        shutil.copytree(os.path.join(ROOT, "python", "mpspawn"), os.path.join(share, "mpspawn"))
        shutil.copy(os.path.join(ROOT, "python", "tests", "jobfuncs.py"), share)
        shutil.copy(os.path.join(BUILD, "libmpspawn.so.0"), share)
        out = os.path.join(share, "out")
        os.mkdir(out)
        os.chown(out, user.pw_uid, user.pw_gid)
        env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": share,
               "MPSPAWN_LIBRARY": os.path.join(share, "libmpspawn.so.0")}
        r = subprocess.run(["/usr/bin/python3", "-c", CLIENT, root_server, out],
                           user=user.pw_uid, group=user.pw_gid, extra_groups=[], cwd="/",
                           env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        code, state = r.stdout.split(" ", 1)
        state = eval(state, {})
        assert code == "0"
        assert state["uid"] == state["euid"] == user.pw_uid
        assert state["gid"] == user.pw_gid and state["groups"] in ([], [user.pw_gid])
        # Unpickled by the user, in the job: not by the root server.
        assert os.stat(os.path.join(out, "unpickled")).st_uid == user.pw_uid
    finally:
        shutil.rmtree(share, ignore_errors=True)
