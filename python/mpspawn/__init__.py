"""mpspawn: multiprocessing's Process and Pool over the mpspawn forkserver.

PROTOTYPE (issue 16, part 1 only). Stdlib only: ctypes over libmpspawn.so.0.

A job is an argv (a program and its arguments) or a call of a C entry point
a server preloaded (``call=`` with JSON-serialisable ``call_args``). Python
targets (``target=``) are part 2 and raise NotImplementedError here.

Where we differ from multiprocessing:

* ``Process.result`` is new: the call job's result, decoded from JSON; it
  raises TaskError with the entry point's message when the job failed.
* Pool tasks are not Python callables but an argv prefix (a list of str;
  the task's arguments are appended; its result is the exit code, and only a
  death by signal fails it) or a ``Call("entry")`` (its argument is the JSON
  value: ``args[0]`` alone, else the list of ``args``; ``kwds`` become an
  object).
* A task's failure raises TaskError (a multiprocessing.ProcessError) with the
  worker's message, or OSError with the exec's errno when it could not start.
* ``chunksize`` is accepted and ignored (one job per item); ``initializer``,
  ``maxtasksperchild`` and ``target=`` are not there yet.
* As in subprocess: ``env=`` replaces the job's environment, and an exec
  failure raises OSError from ``start()`` instead of exitcode 1.
"""
import json
import math
import multiprocessing
import os
import select
import signal
import sys
import threading
import time
import traceback
import ctypes

from . import _lib
from ._lib import lib

__all__ = ["Process", "Pool", "AsyncResult", "Call", "TaskError", "TimeoutError",
           "Pipe", "cpu_count", "get_context"]

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
               pass_fds=(), timeout=None):
    """A new mps_spec (caller frees it); raises before any job exists."""
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
        if name is not None:
            _check(lib.mps_spec_set_name(spec, name.encode()))
        if daemon:
            _check(lib.mps_spec_set_daemon(spec, True))
        if timeout is not None:
            _check(lib.mps_spec_set_timeout(spec, float(timeout), 0))
        return spec
    except BaseException:
        lib.mps_spec_free(spec)
        raise


def _decode_result(text):
    return None if text is None else json.loads(text)


def _timeout_ms(timeout):
    if timeout is None:
        return -1
    if timeout <= 0:
        return 0  # multiprocessing: a negative timeout returns at once
    return int(math.ceil(timeout * 1000))


_counter = 0
_counter_lock = threading.Lock()


def _next_id():
    global _counter
    with _counter_lock:
        _counter += 1
        return _counter


class Process:
    """One job: see the module docstring. Mirrors multiprocessing.Process."""

    def __init__(self, argv=None, *, target=None, args=(), kwargs=None,
                 call=None, call_args=None, name=None, daemon=None, env=None,
                 cwd=None, stdin=None, stdout=None, stderr=None, pass_fds=(),
                 timeout=None, socket=None):
        if target is not None:
            raise NotImplementedError("target= (Python functions) is part 2 of issue 16")
        if (argv is None) == (call is None):
            raise ValueError("give exactly one of argv, call or target")
        self._argv = list(argv) if argv is not None else None
        self._call, self._call_args = call, call_args
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
        client = _shared_client(self._socket)
        spec = _make_spec(self._argv, self._call, self._call_args, name=self._name,
                          daemon=self._daemon, **self._opts)
        try:
            proc = ctypes.c_void_p()
            _check(lib.mps_process_new(client, spec, ctypes.byref(proc)), client)
        finally:
            lib.mps_spec_free(spec)
        r = lib.mps_start(proc)
        if r < 0:
            msg = lib.mps_client_error(client).decode(errors="replace")
            lib.mps_process_close(proc)
            what = self._argv[0] if self._argv else self._call
            raise OSError(-r, msg or _lib.strerror(r), what)
        self._proc = proc.value

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
        """The call job's result (JSON decoded) once it ended; TaskError if it failed."""
        self._update()
        if not self._ended:
            raise ValueError("process has not ended")
        if self._result_error is not None:
            raise TaskError(self._result_error, self._exitcode)
        return _decode_result(self._result)

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
        except Exception:
            pass


class AsyncResult:
    """multiprocessing.pool.AsyncResult: set by the pool's handler thread."""

    def __init__(self, callback=None, error_callback=None):
        self._event = threading.Event()
        self._callback, self._error_callback = callback, error_callback
        self._success = None
        self._value = None

    def ready(self):
        return self._event.is_set()

    def successful(self):
        if not self.ready():
            raise ValueError("{0!r} not ready".format(self))
        return self._success

    def wait(self, timeout=None):
        self._event.wait(timeout)

    def get(self, timeout=None):
        self.wait(timeout)
        if not self.ready():
            raise TimeoutError
        if self._success:
            return self._value
        raise self._value

    def _set(self, success, value):
        # As multiprocessing: the callback has run when get() returns.
        self._success, self._value = success, value
        cb = self._callback if success else self._error_callback
        if cb is not None:
            try:
                cb(value)
            except BaseException:
                traceback.print_exc()
        self._event.set()


ApplyResult = AsyncResult

_RUN, _CLOSE, _TERMINATE = 0, 1, 2


class Pool:
    """multiprocessing.Pool for argv and Call tasks over mps_pool.

    The pool has a connection of its own and one handler thread that polls
    the connection and calls mps_client_dispatch; the library runs the task
    callbacks on that thread (ctypes takes the GIL for them), which completes
    the AsyncResults and runs the user's callbacks there, as
    multiprocessing's result-handler thread does.
    """

    def __init__(self, processes=None, initializer=None, initargs=(),
                 maxtasksperchild=None, *, socket=None, **job_options):
        if initializer is not None:
            raise NotImplementedError("initializer is for Python workers (part 2)")
        if processes is None:
            processes = os.cpu_count() or 1
        if processes < 1:
            raise ValueError("Number of processes must be at least 1")
        self._processes = processes
        self._job_options = job_options
        self._client = _open_client(socket)
        pool = ctypes.c_void_p()
        try:
            _check(lib.mps_pool_new(self._client, processes, ctypes.byref(pool)))
        except BaseException:
            lib.mps_client_close(self._client)
            raise
        self._pool = pool.value
        self._state = _RUN
        self._lock = threading.Lock()
        self._tasks = {}  # id -> (AsyncResult, is_call)
        self._cb = _lib.POOL_CALLBACK(self._on_exit)
        self._ecb = _lib.POOL_ERROR_CALLBACK(self._on_error)
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._handler = threading.Thread(target=self._handle, daemon=True,
                                         name="mpspawn-pool-handler")
        self._handler.start()

    # -- callbacks, on whichever thread reads the connection ------------
    def _pop(self, userdata):
        with self._lock:
            return self._tasks.pop(userdata or 0, (None, False))

    def _on_exit(self, proc, exitcode, userdata):
        try:
            res, is_call = self._pop(userdata)
            if res is None:
                return
            if not is_call:
                if exitcode < 0:
                    res._set(False, TaskError("killed by signal %d %s" %
                                              (-exitcode, _signame(-exitcode)), exitcode))
                else:
                    res._set(True, exitcode)
                return
            err = lib.mps_result_error(proc)
            text = lib.mps_result(proc)
            if err is not None:
                res._set(False, TaskError(err.decode(errors="replace"), exitcode))
            elif exitcode < 0:
                res._set(False, TaskError("killed by signal %d %s" %
                                          (-exitcode, _signame(-exitcode)), exitcode))
            elif exitcode != 0:
                res._set(False, TaskError("exited with status %d" % exitcode, exitcode))
            else:
                res._set(True, _decode_result(text.decode() if text is not None else None))
        except BaseException:
            traceback.print_exc()
        finally:
            self._wake()

    def _on_error(self, err, message, userdata):
        try:
            res, _ = self._pop(userdata)
            if res is not None:
                text = message.decode(errors="replace") if message else _lib.strerror(err)
                res._set(False, OSError(-err, text))
        except BaseException:
            traceback.print_exc()
        finally:
            self._wake()

    def _wake(self):
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    def _handle(self):
        fd = lib.mps_client_fd(self._client)
        while True:
            with self._lock:
                if self._state != _RUN and not self._tasks:
                    return
            readable, _, _ = select.select([fd, self._wake_r], [], [], 0.5)
            if self._wake_r in readable:
                try:
                    os.read(self._wake_r, 4096)
                except BlockingIOError:
                    pass
            if fd in readable:
                r = lib.mps_client_dispatch(self._client)
                if r < 0:
                    self._fail_all(OSError(-r, "connection to the forkserver lost: "
                                           + _lib.strerror(r)))
                    return

    def _fail_all(self, exc):
        with self._lock:
            tasks, self._tasks = self._tasks, {}
        for res, _ in tasks.values():
            res._set(False, exc)

    # -- the multiprocessing API --------------------------------------------
    def _check_running(self):
        if self._state != _RUN:
            raise ValueError("Pool not running")

    def _spec_for(self, func, args, kwds):
        if isinstance(func, Call):
            if kwds:
                call_args = dict(kwds)
            elif len(args) == 1:
                call_args = args[0]
            else:
                call_args = list(args)
            return _make_spec(call=func.entry, call_args=call_args, **self._job_options), True
        if isinstance(func, (list, tuple)):
            if kwds:
                raise TypeError("argv tasks take no keyword arguments")
            argv = list(func) + [os.fspath(a) if not isinstance(a, (str, bytes)) else a
                                 for a in args]
            return _make_spec(argv=argv, **self._job_options), False
        if callable(func):
            raise NotImplementedError("Python callables are part 2 of issue 16")
        raise TypeError("a task is an argv list or a Call, not %r" % (func,))

    def apply_async(self, func, args=(), kwds=None, callback=None, error_callback=None):
        self._check_running()
        spec, is_call = self._spec_for(func, tuple(args), kwds)
        res = AsyncResult(callback, error_callback)
        tid = _next_id()
        with self._lock:
            self._tasks[tid] = (res, is_call)
        try:
            r = lib.mps_pool_apply_async(self._pool, spec, self._cb, self._ecb, tid)
        finally:
            lib.mps_spec_free(spec)
        if r < 0:
            self._pop(tid)
            _check(r, self._client)
        return res

    def apply(self, func, args=(), kwds=None):
        return self.apply_async(func, args, kwds).get()

    def map_async(self, func, iterable, chunksize=None, callback=None, error_callback=None):
        self._check_running()
        mr = _MapResult(callback, error_callback)
        for item in iterable:
            ok, err = mr.add()
            try:
                self.apply_async(func, (item,), callback=ok, error_callback=err)
            except BaseException:
                self.terminate()  # tasks already queued must not outlive the failure
                raise
        mr.seal()
        return mr

    def map(self, func, iterable, chunksize=None):
        return self.map_async(func, iterable).get()

    def starmap(self, func, iterable, chunksize=None):
        return self.starmap_async(func, iterable).get()

    def starmap_async(self, func, iterable, chunksize=None, callback=None,
                      error_callback=None):
        self._check_running()
        mr = _MapResult(callback, error_callback)
        for args in iterable:
            ok, err = mr.add()
            self.apply_async(func, tuple(args), callback=ok, error_callback=err)
        mr.seal()
        return mr

    def imap(self, func, iterable, chunksize=1):
        self._check_running()
        return _IMapIterator(self, func, iterable, ordered=True)

    def imap_unordered(self, func, iterable, chunksize=1):
        self._check_running()
        return _IMapIterator(self, func, iterable, ordered=False)

    def close(self):
        if self._state == _RUN:
            self._state = _CLOSE
            lib.mps_pool_close(self._pool)
            self._wake()

    def terminate(self):
        if self._state != _TERMINATE:
            self._state = _TERMINATE
            lib.mps_pool_terminate(self._pool)
            self._wake()
        self._finish()

    def join(self):
        if self._state == _RUN:
            raise ValueError("Pool is still running")
        self._finish()

    def _finish(self):
        if self._handler is not None and self._handler is not threading.current_thread():
            self._handler.join()
            self._handler = None
            # Every task has reported: free what we own.
            lib.mps_pool_free(self._pool)
            lib.mps_client_close(self._client)
            os.close(self._wake_r)
            os.close(self._wake_w)

    def __enter__(self):
        self._check_running()
        return self

    def __exit__(self, *exc):
        self.terminate()


class _MapResult(AsyncResult):
    """map_async: ready once every item is; the first failure in input order wins.

    Items may finish before map_async has queued them all, so the count is
    only final once seal() has run."""

    def __init__(self, callback, error_callback):
        super().__init__(callback, error_callback)
        self._items = []
        self._remaining = 1  # held by seal()
        self._mlock = threading.Lock()

    def add(self):
        with self._mlock:
            self._items.append(None)
            self._remaining += 1
            index = len(self._items) - 1
        return (lambda v: self._one(index, True, v)), (lambda e: self._one(index, False, e))

    def seal(self):
        self._one(None, True, None)

    def _one(self, index, success, value):
        with self._mlock:
            if index is not None:
                self._items[index] = (success, value)
            self._remaining -= 1
            if self._remaining:
                return
        for ok, v in self._items:
            if not ok:
                self._set(False, v)
                return
        self._set(True, [v for _, v in self._items])


class _IMapIterator:
    """imap / imap_unordered: a feeder thread consumes the iterable lazily
    (as multiprocessing's task-handler thread does) and queues each item;
    next() yields results in input order, or in completion order."""

    def __init__(self, pool, func, iterable, ordered):
        self._cond = threading.Condition()
        self._results = []   # ordered: AsyncResults by index
        self._done = []      # unordered: (success, value) as they complete
        self._fed = None     # item count once the feeder has finished
        self._feed_error = None
        self._next = 0
        self._ordered = ordered
        self._pool, self._func = pool, func
        threading.Thread(target=self._feed, args=(iter(iterable),), daemon=True,
                         name="mpspawn-imap-feeder").start()

    def _feed(self, it):
        n = 0
        try:
            for item in it:
                res = self._pool.apply_async(self._func, (item,),
                                             callback=lambda v: self._complete(True, v),
                                             error_callback=lambda e: self._complete(False, e))
                with self._cond:
                    self._results.append(res)
                    self._cond.notify_all()
                n += 1
        except BaseException as e:
            self._feed_error = e
        with self._cond:
            self._fed = n
            self._cond.notify_all()

    def _complete(self, success, value):
        with self._cond:
            self._done.append((success, value))
            self._cond.notify_all()

    def __iter__(self):
        return self

    def next(self, timeout=None):
        with self._cond:
            while True:
                if self._fed is not None and self._next >= self._fed:
                    if self._feed_error is not None:
                        raise self._feed_error
                    raise StopIteration
                if self._ordered and self._next < len(self._results):
                    res = self._results[self._next]
                    break
                if not self._ordered and self._next < len(self._done):
                    success, value = self._done[self._next]
                    self._next += 1
                    if success:
                        return value
                    raise value
                if not self._cond.wait(timeout):
                    raise TimeoutError
        self._next += 1
        return res.get(timeout)

    __next__ = next


def Pipe(duplex=True):
    """multiprocessing's Pipe (its ends are fds: pass them with pass_fds=
    or stdin=/stdout=; part 2 will accept them as target arguments)."""
    return multiprocessing.Pipe(duplex)


def cpu_count():
    return os.cpu_count() or 1


class _Context:
    """What get_context() returns: the names of a multiprocessing context."""

    Process = Process
    Pool = Pool
    Pipe = staticmethod(Pipe)
    cpu_count = staticmethod(cpu_count)
    TimeoutError = TimeoutError
    ProcessError = multiprocessing.ProcessError

    def get_start_method(self, allow_none=False):
        return "mpspawn"


_context = _Context()


def get_context(method=None):
    """An object with Process, Pool, Pipe and cpu_count, for code written
    against a multiprocessing context. method must be None or "mpspawn"."""
    if method not in (None, "mpspawn"):
        raise ValueError("cannot find context for %r" % (method,))
    return _context
