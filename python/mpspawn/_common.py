"""Shared pieces of the package: errors, the per-process client, job specs."""
import itertools
import json
import math
import multiprocessing
import os
import signal
import threading
import ctypes

from . import _lib
from ._lib import lib


TimeoutError = multiprocessing.TimeoutError


class TaskError(multiprocessing.ProcessError):
    """A job ended badly: its entry point set an error, it exited non-zero
    (call jobs), or a signal killed it. ``exitcode`` is as Process.exitcode."""

    def __init__(self, message, exitcode=None):
        super().__init__(message)
        self.exitcode = exitcode


class Call:
    """A Pool task that calls a preloaded C entry point by name."""

    def __init__(self, entry):
        self.entry = entry

    def __repr__(self):
        return "Call(%r)" % self.entry


def _check(r, client=None, what=None):
    if r < 0:
        msg = None
        if client:
            msg = lib.mps_client_error(client).decode(errors="replace") or None
        raise OSError(-r, msg or _lib.strerror(r), what)
    return r


def _open_client(socket=None):
    client = ctypes.c_void_p()
    message = ctypes.c_void_p()
    path = os.fsencode(socket) if socket is not None else None
    r = lib.mps_client_open(path, ctypes.byref(client), ctypes.byref(message))
    if r < 0:
        text = _lib.strerror(r)
        if message.value:
            text = ctypes.string_at(message.value).decode(errors="replace")
            _lib.libc.free(message)
        raise OSError(-r, text)
    return client.value


# One shared client per process and per socket, opened lazily; a forked
# child (os.fork) must not use its parent's connection, so it is keyed by pid.
_clients = {}
_clients_lock = threading.Lock()


def _shared_client(socket):
    key = (os.getpid(), socket)
    with _clients_lock:
        c = _clients.get(key)
        if c is None:
            c = _clients[key] = _open_client(socket)
        return c


def _signame(n):
    try:
        return "%s (%s)" % (signal.Signals(n).name, signal.strsignal(n))
    except ValueError:
        return str(n)


def _fileno(f):
    if f is None:
        return None
    if isinstance(f, int):
        return f
    return f.fileno()


def _make_spec(argv=None, call=None, call_args=None, name=None, daemon=None,
               env=None, cwd=None, stdin=None, stdout=None, stderr=None,
               pass_fds=(), timeout=None, fd_maps=(), pdeathsig=None):
    """A new mps_spec (caller frees it); raises before any job exists.
    fd_maps: more (child_fd, caller_fd) pairs, as pass_fds but renumbered."""
    spec = ctypes.c_void_p()
    _check(lib.mps_spec_new(ctypes.byref(spec)))
    spec = spec.value
    try:
        if argv is not None:
            args = [os.fsencode(a) for a in argv]
            if not args:
                raise ValueError("argv must not be empty")
            arr = (ctypes.c_char_p * (len(args) + 1))(*args, None)
            _check(lib.mps_spec_set_exec(spec, args[0], arr))
        else:
            text = json.dumps(call_args).encode()
            _check(lib.mps_spec_set_call(spec, call.encode(), text))
        if env is not None:
            _check(lib.mps_spec_env_clear(spec))
            for k, v in env.items():
                _check(lib.mps_spec_env_set(spec, os.fsencode(k), os.fsencode(v)))
        if cwd is not None:
            _check(lib.mps_spec_set_cwd(spec, os.fsencode(cwd)))
        for child_fd, f in ((0, stdin), (1, stdout), (2, stderr)):
            fd = _fileno(f)
            if fd is not None:
                _check(lib.mps_spec_map_fd(spec, child_fd, fd))
        for fd in pass_fds:
            _check(lib.mps_spec_map_fd(spec, fd, fd))
        for child_fd, fd in fd_maps:
            _check(lib.mps_spec_map_fd(spec, child_fd, fd))
        if name is not None:
            _check(lib.mps_spec_set_name(spec, name.encode()))
        if daemon:
            _check(lib.mps_spec_set_daemon(spec, True))
        if timeout is not None:
            _check(lib.mps_spec_set_timeout(spec, float(timeout), 0))
        if pdeathsig:
            _check(lib.mps_spec_set_pdeathsig(spec, int(pdeathsig)))
        return spec
    except BaseException:
        lib.mps_spec_free(spec)
        raise


def _free_child_fd(taken):
    """The lowest job fd number from 3 up that is not in taken."""
    n = 3
    while n in taken:
        n += 1
    return n


def _decode_result(text):
    return None if text is None else json.loads(text)


def _timeout_ms(timeout):
    if timeout is None:
        return -1
    if timeout <= 0:
        return 0  # multiprocessing: a negative timeout returns at once
    return int(math.ceil(timeout * 1000))


# Task ids for callback userdata; count's __next__ is atomic under the GIL.
_next_id = itertools.count(1).__next__
