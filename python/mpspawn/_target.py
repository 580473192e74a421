"""Client side of a Python job (entry "python" of build/mpspawn_python.so).

Builds the entry's JSON argument from (fn, args, kwargs), decodes its result,
and starts the private server a process uses when no socket= is given.

Protocol (args JSON of entry "python"):
    {"pickle": b64(pickle((fn, args, kwargs))), "sys_path": [...], "cwd": str,
     "main_path": str|null, "main_name": str|null, "cache_tag": str,
     "result_fd": int}
Result JSON: {"ok": bool, "pickle": b64} or {"ok": bool, "fd_len": n} (the
pickle was written to result_fd because it did not fit inline). The pickle
is the return value when ok, else (exception, traceback text).
"""
import atexit
import base64
import copyreg
import io
import json
import os
import pickle
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from multiprocessing.connection import Connection

from . import _lib
from ._common import TaskError, _signame

_preload = []
_server = None
_server_lock = threading.Lock()
_BUILD = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "build"))


def set_forkserver_preload(module_names):
    """As multiprocessing.set_forkserver_preload: the modules the private
    server imports once, before any job. Takes effect when that server
    starts (the first target job of this process)."""
    if not all(type(m) is str for m in module_names):
        raise TypeError("module_names must be a list of strings")
    _preload[:] = list(module_names)


STDERR_KEPT = 65536  # bytes of the server's stderr kept for start()'s error


def _copy_stderr(pipe, kept):
    """Copies the server's stderr to ours, keeping its last STDERR_KEPT
    bytes (a bytearray) for start()'s error message if the server dies
    while starting (a failing preload)."""
    with pipe:
        for chunk in iter(lambda: pipe.read1(65536), b""):
            kept += chunk
            del kept[:-STDERR_KEPT]
            try:
                os.write(2, chunk)
            except OSError:
                pass


class _PrivateServer:
    """mpforkserver with mpspawn_python.so, owned by this Python process.

    A socket in a private directory (mode 0700), removed with the server at
    exit. A directory rather than --embedded: the embedded mode is the
    library's own (it finds its server binary itself and cannot be given
    --preload), while a socket path is what mps_client_open takes. The
    server gets PR_SET_PDEATHSIG, so it ends with us even on SIGKILL."""

    def __init__(self):
        self.pid = os.getpid()
        self.dir = tempfile.mkdtemp(prefix="mpspawn-py-")
        self.socket = os.path.join(self.dir, "py.sock")
        server = _server_binary()
        modules = ",".join(_preload)
        env = dict(os.environ)
        env.pop("MPSPAWN_PYTHON_MAIN", None)
        main = _main_spec()
        if main:
            env["MPSPAWN_PYTHON_MAIN"] = main
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        rfd, wfd = os.pipe()
        try:
            self.proc = subprocess.Popen(
                [server, "--socket", self.socket, "--python-preload", modules,
                 "--ready-fd", str(wfd), "--log-level", "warning"],
                pass_fds=(wfd,), stdin=subprocess.DEVNULL, stderr=subprocess.PIPE,
                env=env, preexec_fn=_die_with_parent(os.getpid()))
        except BaseException:
            os.close(rfd)
            shutil.rmtree(self.dir, ignore_errors=True)
            raise
        finally:
            os.close(wfd)
        self._stderr = bytearray()
        self._copier = threading.Thread(target=_copy_stderr, daemon=True,
                                        args=(self.proc.stderr, self._stderr))
        self._copier.start()
        with os.fdopen(rfd, "rb") as ready:
            line = ready.readline()  # "1\n", or EOF when the server died
        if line.strip() != b"1":
            self.proc.wait()
            self._copier.join(5)
            shutil.rmtree(self.dir, ignore_errors=True)
            text = self._stderr.decode(errors="replace").strip()
            raise RuntimeError("the private forkserver (%s --python-preload '%s') failed to "
                               "start (exit %s):\n%s" % (server, modules, self.proc.returncode,
                                                          text))
        atexit.register(self.stop)

    def stop(self):
        # At exit: our non-daemon jobs are joined first (multiprocessing
        # joins its non-daemon children), as stopping the server ends them.
        if self.pid == os.getpid():
            from .process import join_non_daemon_children
            join_non_daemon_children()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def _server_binary():
    """$MPSPAWN_FORKSERVER, else the build tree's (PYTHONPATH=python), else
    the one installed with this package (PREFIX/lib/python3/dist-packages/
    mpspawn -> PREFIX/bin), else mpforkserver on PATH."""
    if os.environ.get("MPSPAWN_FORKSERVER"):
        return os.environ["MPSPAWN_FORKSERVER"]
    here = os.path.dirname(os.path.abspath(__file__))
    for path in (os.path.join(_BUILD, "mpforkserver"),
                 os.path.join(here, "..", "..", "..", "..", "bin", "mpforkserver")):
        if os.access(path, os.X_OK):
            return os.path.normpath(path)
    return shutil.which("mpforkserver") or "mpforkserver"


_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent):
    """The preexec_fn that gives the server PR_SET_PDEATHSIG. It runs in
    the forked child of a threaded process, so it only calls: the libc
    handle comes from the parent (a dlopen there could wait for good on a
    loader lock another thread held at the fork). A parent already gone
    when the signal is set would never send it: the child gives up."""
    prctl = _lib.libc.prctl

    def preexec():
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)
    return preexec


class _SpawnerThread:
    """The thread that starts private servers, and lives as long as we do.

    PR_SET_PDEATHSIG fires when the thread that forked the child ends, not
    the process: a server started from a Pool's worker thread would get
    SIGTERM when that pool is joined. So servers are started from this
    thread, which ends only with the process (it is a daemon thread)."""

    def __init__(self):
        self.pid = os.getpid()
        self.requests = queue.SimpleQueue()
        threading.Thread(target=self._loop, daemon=True, name="mpspawn-server-starter").start()

    def _loop(self):
        while True:
            fn, box = self.requests.get()
            try:
                box["value"] = fn()
            except BaseException as e:
                box["error"] = e
            box["done"].set()

    def run(self, fn):
        box = {"done": threading.Event()}
        self.requests.put((fn, box))
        box["done"].wait()
        if "error" in box:
            raise box["error"]
        return box["value"]


_spawner = None


def private_socket():
    """The socket of this process's private Python server, started on first use."""
    global _server, _spawner
    with _server_lock:
        if _server is None or _server.proc.poll() is not None or _server.pid != os.getpid():
            if _spawner is None or _spawner.pid != os.getpid():
                _spawner = _SpawnerThread()
            _server = _spawner.run(_PrivateServer)
            _server.pid = os.getpid()
        return _server.socket


def main_module():
    """Our __main__ as a job finds it: ("name", MODULE) for `python -m`,
    ("path", FILE) for a script, or None (an interactive session, -c)."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name and spec.name != "__main__":
        return "name", spec.name
    path = getattr(main, "__file__", None)
    if path and os.path.exists(path):
        return "path", os.path.abspath(path)
    return None


def _main_spec():
    """"name:MODULE" or "path:FILE" for the server to preload our __main__
    (as multiprocessing's forkserver does), or None."""
    main = main_module()
    return main and "%s:%s" % main


def build_args(fn, args, kwargs, result_fd, first_conn_fd, avoid_fds=()):
    """(args JSON dict, [(child_fd, parent_fd), ...]) for entry "python".

    A Connection (mpspawn.Pipe() end) among the arguments travels as an fd:
    it is mapped into the job at a free child fd number and pickled as
    Connection(child_fd, readable, writable)."""
    fds = []
    taken = set(avoid_fds) | {0, 1, 2, result_fd}

    def reduce_connection(conn):
        child = first_conn_fd
        while child in taken:
            child += 1
        taken.add(child)
        fds.append((child, conn.fileno()))
        return Connection, (child, conn.readable, conn.writable)

    buf = io.BytesIO()
    pickler = pickle.Pickler(buf, pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = copyreg.dispatch_table.copy()
    pickler.dispatch_table[Connection] = reduce_connection
    pickler.dump((fn, tuple(args), dict(kwargs or {})))
    payload = buf.getvalue()
    # The job runs the main module only when the pickle needs it: on a
    # shared server, running the client's script costs its imports.
    main = None
    if b"__main__" in payload:
        main = main_module()
        if main is None:
            raise pickle.PicklingError(
                "the target uses functions of __main__, which here is an interactive "
                "session or `python -c`: a job cannot import it. Define them in a module "
                "or a script file.")
    out = prepare_args(main)
    out.update(pickle=base64.b64encode(payload).decode(), result_fd=result_fd)
    return out, fds


def decode_result(text, result_memfd, exitcode, error):
    """The target's return value; raises its exception (remote traceback as a
    note), or TaskError when the job died without a result (a signal)."""
    if text is None:
        if exitcode is not None and exitcode < 0:
            raise TaskError("the job was killed by signal %s" % _signame(-exitcode), exitcode)
        raise TaskError(error or "the job ended without a result (exit %s)" % exitcode, exitcode)
    out = json.loads(text)
    if "fd_len" in out:
        # At most what the memfd holds, whatever length the job claims.
        size = os.fstat(result_memfd).st_size
        data = os.pread(result_memfd, min(int(out["fd_len"]), size), 0)
    else:
        data = base64.b64decode(out["pickle"])
    value = pickle.loads(data)
    if out["ok"]:
        return value
    raise remote_exception(*value, exitcode=exitcode)


def remote_exception(exc, tb, exitcode=None):
    """The exception to raise in the caller for one a job raised: itself,
    with the job's traceback as a note (SystemExit becomes a TaskError: it
    must not end the caller)."""
    if isinstance(exc, SystemExit):
        return TaskError("the target called sys.exit(%r)" % (exc.code,), exitcode)
    if not isinstance(exc, BaseException):
        return TaskError(str(exc), exitcode)
    if hasattr(exc, "add_note"):
        exc.add_note("Traceback in the job:\n" + tb)
    else:
        exc.args = exc.args + ("\n\nTraceback in the job:\n" + tb,)
    return exc


def prepare_args(main):
    """The part of a job's arguments that makes it see the caller's
    interpreter state: sys.path, cwd, the main module (main_module() or
    None), the version check."""
    kind, what = main or (None, None)
    return {"sys_path": list(sys.path), "cwd": os.getcwd(),
            "main_path": what if kind == "path" else None,
            "main_name": what if kind == "name" else None,
            "cache_tag": sys.implementation.cache_tag}
