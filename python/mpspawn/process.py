"""mpspawn.Process: multiprocessing.Process over a forkserver job."""
import atexit
import ctypes
import os
import select
import signal
import sys
import threading
import time

from . import _lib, _target
from ._lib import lib

from ._common import (TaskError, _check, _shared_client, _make_spec, _decode_result,
                      _free_child_fd, _timeout_ms, _next_id)


# Started non-daemon processes: joined at exit, as multiprocessing joins its
# non-daemon children (and before the private server stops). Held strongly,
# as multiprocessing's _children, so that Process(...).start() is joined
# too; ended ones are dropped at each start, as its _cleanup() does.
_non_daemon = set()
_non_daemon_lock = threading.Lock()


def _track_non_daemon(proc):
    with _non_daemon_lock:
        for p in list(_non_daemon):
            if p._closed or p._proc is None or \
                    lib.mps_exitcode(p._proc) != _lib.EXITCODE_NONE:
                _non_daemon.discard(p)
        _non_daemon.add(proc)


def join_non_daemon_children():
    with _non_daemon_lock:
        children = list(_non_daemon)
    for p in children:
        try:
            if not p._closed and p._proc is not None and p._pid_owner == os.getpid():
                p.join()
        except Exception:
            pass


atexit.register(join_non_daemon_children)


def _check_not_bootstrapping():
    """multiprocessing's guard: the client's main module, imported by a
    server or a job to find its functions, must not start jobs itself."""
    if getattr(sys, "_mpspawn_bootstrapping", False):
        raise RuntimeError(
            "An attempt has been made to start a new process before the current process "
            "has finished its bootstrapping phase: the main module was imported to find "
            "a target and tried to start a job. Guard that code with "
            "'if __name__ == \"__main__\":', as multiprocessing requires.")


class Process:
    """One job: see the module docstring. Mirrors multiprocessing.Process."""

    def __init__(self, argv=None, *, target=None, args=(), kwargs=None,
                 call=None, call_args=None, name=None, daemon=None, env=None,
                 cwd=None, stdin=None, stdout=None, stderr=None, pass_fds=(),
                 timeout=None, socket=None):
        if sum(x is not None for x in (argv, call, target)) != 1:
            raise ValueError("give exactly one of argv, call or target")
        if target is not None and not callable(target):
            raise TypeError("target must be callable")
        self._argv = list(argv) if argv is not None else None
        self._call, self._call_args = call, call_args
        self._target = (target, tuple(args), dict(kwargs or {})) if target is not None else None
        self._result_memfd = None
        self._value = None  # (ok, value or exception) once decoded
        self._opts = dict(env=env, cwd=cwd, stdin=stdin, stdout=stdout,
                          stderr=stderr, pass_fds=tuple(pass_fds), timeout=timeout)
        self._socket = socket
        self._name = name or "Process-%d" % _next_id()
        self._daemon = bool(daemon)
        self._proc = None
        self._closed = False
        self._ended = False
        self._exitcode = None
        self._result = self._result_error = None

    def _check_closed(self):
        if self._closed:
            raise ValueError("process object is closed")

    def start(self):
        self._check_closed()
        assert self._proc is None, "cannot start a process twice"
        _check_not_bootstrapping()
        if self._target is not None:
            client, spec = self._target_spec()
        else:
            client = _shared_client(self._socket)
            spec = _make_spec(self._argv, self._call, self._call_args, name=self._name,
                              daemon=self._daemon, **self._opts)
        try:
            proc = ctypes.c_void_p()
            _check(lib.mps_process_new(client, spec, ctypes.byref(proc)), client)
        except BaseException:
            self._close_memfd()
            raise
        finally:
            lib.mps_spec_free(spec)
        r = lib.mps_start(proc)
        if r < 0:
            msg = lib.mps_client_error(client).decode(errors="replace")
            lib.mps_process_close(proc)
            self._close_memfd()
            what = self._argv[0] if self._argv else (self._call or "python")
            raise OSError(-r, msg or _lib.strerror(r), what)
        self._proc = proc.value
        self._pid_owner = os.getpid()
        if not self._daemon:
            _track_non_daemon(self)

    def _target_spec(self):
        """(client, spec) of a Python target: entry "python" of the private
        server (or of socket=, a server configured with python_preload), with
        a memfd at a free child fd for a result too big to travel inline."""
        private = self._socket is None
        socket = _target.private_socket() if private else self._socket
        client = _shared_client(socket)
        taken = set(self._opts["pass_fds"])
        result_fd = _free_child_fd(taken)
        fn, args, kwargs = self._target
        call_args, fd_maps = _target.build_args(fn, args, kwargs, result_fd, result_fd + 1, taken)
        self._result_memfd = os.memfd_create("mpspawn-result", os.MFD_CLOEXEC)
        try:
            # The private server ends with us (PR_SET_PDEATHSIG), and its
            # jobs with it: a Python child never outlives a caller killed
            # before it could join (multiprocessing's gh-80180).
            spec = _make_spec(None, "python", call_args, name=self._name, daemon=self._daemon,
                              fd_maps=[(result_fd, self._result_memfd)] + fd_maps,
                              pdeathsig=signal.SIGKILL if private else None, **self._opts)
        except BaseException:
            self._close_memfd()
            raise
        return client, spec

    def _close_memfd(self):
        if self._result_memfd is not None:
            os.close(self._result_memfd)
            self._result_memfd = None

    def _update(self):
        # Reads the end once and keeps it: the result strings live only as
        # long as the handle, and close() may come before .result.
        if self._ended or self._proc is None:
            return
        code = lib.mps_exitcode(self._proc)
        if code == _lib.EXITCODE_NONE:
            return
        self._exitcode = code
        r, e = lib.mps_result(self._proc), lib.mps_result_error(self._proc)
        self._result = r.decode() if r is not None else None
        self._result_error = e.decode(errors="replace") if e is not None else None
        self._ended = True

    def join(self, timeout=None):
        self._check_closed()
        assert self._proc is not None, "can only join a started process"
        if self._ended:
            return
        # mps_join retries EINTR inside the library, so a blocking call would
        # hold off Ctrl-C (KeyboardInterrupt) until the job ends. Wait on the
        # sentinel (a pidfd) in Python first, where signal handlers run, and
        # only then let the library read the exit the server sends.
        deadline = None if timeout is None else time.monotonic() + max(timeout, 0)
        sentinel = lib.mps_sentinel(self._proc)
        if sentinel >= 0:
            left = None if deadline is None else max(deadline - time.monotonic(), 0)
            if not select.select([sentinel], [], [], left)[0]:
                return
        left = None if deadline is None else max(deadline - time.monotonic(), 0)
        # Once the pidfd is readable the job is dead and its report is on
        # the way: give it a little grace past the caller's timeout, so that
        # join(timeout) does not return a dead job with exitcode None.
        ms = -1 if left is None else max(_timeout_ms(left), 100)
        r = lib.mps_join(self._proc, ms if sentinel >= 0 else _timeout_ms(left))
        if r < 0 and r != -110:
            raise OSError(-r, _lib.strerror(r))
        self._update()

    def is_alive(self):
        self._check_closed()
        if self._proc is None or self._ended:
            return False
        alive = lib.mps_is_alive(self._proc) == 1
        if not alive:
            self._update()
        return alive

    @property
    def exitcode(self):
        self._check_closed()
        self._update()
        return self._exitcode

    def terminate(self):
        self._check_closed()
        if self._proc is not None:
            _check(lib.mps_terminate(self._proc))

    def kill(self):
        self._check_closed()
        if self._proc is not None:
            _check(lib.mps_kill(self._proc))

    def close(self):
        if self._closed:
            return
        if self._proc is not None:
            self._update()
            if not self._ended:
                raise ValueError("Cannot close a process while it is still running. "
                                 "You should first call join() or terminate().")
            lib.mps_process_close(self._proc)
            self._proc = None
        self._close_memfd()
        self._closed = True

    @property
    def pid(self):
        self._check_closed()
        if self._proc is None:
            return None
        return lib.mps_pid(self._proc)

    ident = pid

    @property
    def sentinel(self):
        self._check_closed()
        if self._proc is None:
            raise ValueError("process not started")
        return lib.mps_sentinel(self._proc)

    @property
    def name(self):
        return self._name

    @name.setter
    def name(self, value):
        self._name = str(value)

    @property
    def daemon(self):
        return self._daemon

    @daemon.setter
    def daemon(self, value):
        assert self._proc is None, "process has already started"
        self._daemon = bool(value)

    @property
    def result(self):
        """The job's result once it ended: a call job's JSON, decoded, or a
        target's return value. A call job that failed raises TaskError with
        its message; a target that raised re-raises its exception here (the
        job's traceback as a note); a job killed by a signal raises
        TaskError naming it."""
        self._update()
        if not self._ended:
            raise ValueError("process has not ended")
        if self._target is not None:
            return self._target_result()
        if self._result_error is not None:
            raise TaskError(self._result_error, self._exitcode)
        return _decode_result(self._result)

    def _target_result(self):
        if self._value is None:
            try:
                self._value = (True, _target.decode_result(
                    self._result, self._result_memfd, self._exitcode, self._result_error))
            except BaseException as e:
                self._value = (False, e)
            self._close_memfd()
        ok, v = self._value
        if not ok:
            raise v
        return v

    def __repr__(self):
        if self._closed:
            status = "closed"
        elif self._proc is None:
            status = "initial"
        elif self._exitcode is not None:
            status = "stopped exitcode=%s" % self._exitcode
        else:
            status = "started"
        return "<%s name=%r %s%s>" % (type(self).__name__, self._name, status,
                                     " daemon" if self._daemon else "")

    def __del__(self):
        try:
            if self._proc is not None and self._ended:
                lib.mps_process_close(self._proc)
            self._close_memfd()
        except Exception:
            pass
