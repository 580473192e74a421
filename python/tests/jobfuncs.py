"""Targets for the tests' Python jobs: a module of their own, stdlib only,
so a job imports it cheaply (a test module would import pytest)."""
import os
import signal
import sys
import time


def add(x, y=0):
    return x + y


def state():
    """What a job sees of its caller's interpreter."""
    return {"cwd": os.getcwd(), "env": os.environ.get("MPSPAWN_TEST_VAR"),
            "uid": os.getuid(), "euid": os.geteuid(), "pid": os.getpid(),
            "ppid": os.getppid()}


def raise_value_error(text):
    raise ValueError(text)


def exit_with(code):
    sys.exit(code)


def big(n):
    return b"x" * n


def sleep(seconds):
    time.sleep(seconds)


def send_through(conn, value):
    conn.send(value)
    conn.close()


def kill_self_on(x, which):
    if x == which:
        os.kill(os.getpid(), signal.SIGKILL)
    return x


def getpid_with_a_peer(directory):
    """This worker's pid, once some other worker has run a task too (each
    task leaves its worker's pid in directory; bounded at 30 s): a test
    that needs tasks spread over workers then does not depend on how fast
    the other workers come up."""
    pid = os.getpid()
    open(os.path.join(directory, str(pid)), "w").close()
    deadline = time.monotonic() + 30
    while len(os.listdir(directory)) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    return pid


def getpid(_=None):
    return os.getpid()


def square(x):
    return x * x


_initialized = None


def initialize(value):
    global _initialized
    _initialized = value


def initialized(_=None):
    return _initialized


def failing_initializer():
    raise RuntimeError("initializer failed on purpose")


def sigint_disposition():
    h = signal.getsignal(signal.SIGINT)
    return "ignored" if h == signal.SIG_IGN else "default_int" if h is signal.default_int_handler else repr(h)


def state_after(*ignored):
    """state(), once the arguments (whatever they did when unpickled) are in."""
    st = state()
    st["groups"] = sorted(os.getgroups())
    st["gid"] = os.getgid()
    return st


def leave_thread_and_finalizer(conn):
    """Returns at once, leaving a non-daemon thread that sends later and a
    multiprocessing finalizer: the job must wait for both, as
    multiprocessing's children do."""
    import multiprocessing.util
    import threading
    multiprocessing.util.Finalize(None, conn.send, args=("finalized",), exitpriority=1)
    threading.Thread(target=lambda: (time.sleep(0.2), conn.send("thread"))).start()
    return "returned"


def write_later(path, seconds):
    time.sleep(seconds)
    with open(path, "w") as f:
        f.write("done")
