"""mpspawn.Pool and its AsyncResult, over the library's mps_pool."""
import os
import select
import threading
import traceback
import ctypes

from . import _lib, _workers
from .process import _check_not_bootstrapping
from ._lib import lib

from ._common import TaskError, Call, TimeoutError, _check, _signame, _make_spec, _decode_result, _next_id, _open_client


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
        _check_not_bootstrapping()
        if processes is None:
            processes = os.cpu_count() or 1
        if processes < 1:
            raise ValueError("Number of processes must be at least 1")
        if maxtasksperchild is not None and (
                not isinstance(maxtasksperchild, int) or maxtasksperchild <= 0):
            raise ValueError("maxtasksperchild must be a positive int or None")
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        self._processes = processes
        # Python workers start with the first Python task (an argv-only
        # pool never starts the Python server).
        self._worker_config = (initializer, tuple(initargs), maxtasksperchild, socket)
        self._workers = None
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

    def _python_workers(self):
        with self._lock:
            if self._workers is None:
                init, initargs, maxtasks, socket = self._worker_config
                self._workers = _workers.WorkerSet(self._processes, init, initargs, maxtasks,
                                                   socket, self._job_options)
            return self._workers

    @staticmethod
    def _is_python(func):
        return callable(func) and not isinstance(func, (Call, list, tuple))

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
        raise TypeError("a task is an argv list or a Call, not %r" % (func,))

    def apply_async(self, func, args=(), kwds=None, callback=None, error_callback=None):
        self._check_running()
        if self._is_python(func):
            res = AsyncResult(callback, error_callback)
            def done(values, errors):
                res._set(False, errors[0]) if errors else res._set(True, values[0])
            self._python_workers().submit(_workers.Chunk(
                func, [tuple(args)], True, [dict(kwds)] if kwds else None, done))
            return res
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

    def _map_python(self, func, items, star, chunksize, callback, error_callback):
        """map/starmap of a Python callable: chunks as multiprocessing cuts
        them (about four per worker unless chunksize is given)."""
        if chunksize is None:
            chunksize, extra = divmod(len(items), self._processes * 4)
            if extra:
                chunksize += 1
        if chunksize < 1:
            chunksize = 1
        mr = _MapResult(callback, error_callback)
        workers = self._python_workers()
        for i in range(0, len(items), chunksize):
            part = items[i:i + chunksize]
            base = mr.add(len(part))
            workers.submit(_workers.Chunk(func, part, star, None, mr.chunk_done(base)))
        mr.seal()
        return mr

    def map_async(self, func, iterable, chunksize=None, callback=None, error_callback=None):
        self._check_running()
        if self._is_python(func):
            return self._map_python(func, list(iterable), False, chunksize, callback,
                                    error_callback)
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
        if self._is_python(func):
            return self._map_python(func, [tuple(a) for a in iterable], True, chunksize,
                                    callback, error_callback)
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
            if self._workers is not None:
                self._workers.close()
            self._wake()

    def terminate(self):
        if self._state != _TERMINATE:
            self._state = _TERMINATE
            lib.mps_pool_terminate(self._pool)
            with self._lock:
                workers = self._workers
            if workers is not None:
                workers.terminate(_workers.cancelled())
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
            if self._workers is not None:
                self._workers.join()
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
        self._errors = {}
        self._remaining = 1  # held by seal()
        self._mlock = threading.Lock()

    def add(self, n=None):
        """n=None: one item, its (callback, error_callback). Else n items: the
        index of the first, for chunk_done."""
        with self._mlock:
            index = len(self._items)
            self._items.extend([None] * (n or 1))
            self._remaining += n or 1
        if n is not None:
            return index
        return (lambda v: self._one(index, True, v)), (lambda e: self._one(index, False, e))

    def chunk_done(self, base):
        def done(values, errors):
            self._store(base, values, errors)
        return done

    def seal(self):
        self._store(0, (), {})

    def _one(self, index, success, value):
        if success:
            self._store(index, (value,), {})
        else:
            self._store(index, (None,), {0: value})

    def _store(self, base, values, errors):
        """Values of items base, base+1, ...; errors: {offset: exception}."""
        with self._mlock:
            self._items[base:base + len(values)] = values
            for i, e in errors.items():
                self._errors[base + i] = e
            self._remaining -= len(values) or 1  # seal() holds one count
            if self._remaining:
                return
        if self._errors:
            self._set(False, self._errors[min(self._errors)])
        else:
            self._set(True, self._items)


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
