"""The long-lived Python workers of a Pool (entry "python_worker").

A worker is a daemon job of the Python server (the private one, or
socket=) that runs many tasks: it receives chunks of (fn, args, kwargs) on
a socketpair, one pickle per multiprocessing.connection message, and sends
back a list of (ok, value or (exception, traceback)) per chunk. The worker
side is python/preload/mpspawn_worker.py; its first message is ("ready",
pid) or ("init-error", exception, traceback).

Each worker has a thread here that takes chunks from the pool's queue,
sends one, waits for its reply and completes its tasks. When the reply does
not come because the worker died, the thread reads the worker's exit from
the server (the job's pidfd said it ended) and fails the chunk's tasks with
an error naming the signal: a dead worker never hangs the pool
(multiprocessing's gh-66587). A worker that has run maxtasksperchild chunks
ends by itself and its thread starts a replacement. An initializer that
raises breaks the pool: its exception fails every pending and later task,
instead of workers being restarted forever.
"""
import base64
import collections
import copyreg
import errno
import io
import pickle
import queue
import socket as _socket
import threading
import traceback
from multiprocessing.connection import Connection

from . import _target
from ._common import TaskError, _free_child_fd, _signame
from .process import Process


# Chunks sent to a worker ahead of its replies.
IN_FLIGHT = 2


class _WorkerJob(Process):
    """A Process running entry "python_worker", its channel at channel_fd."""

    def __init__(self, call_args, channel, channel_fd, socket, job_options):
        super().__init__(call="python_worker", call_args=call_args, daemon=True,
                         socket=socket, **job_options)
        self._opts["fd_maps"] = [(channel_fd, channel)]
        self.end_code = _RUNNING


_RUNNING = object()


class Chunk:
    """Calls of one function sent as one message: fn(item) for each item,
    or fn(*item, **kwsets[i]) when star. done(values, errors) gets the
    values in order and {index: exception to raise in the caller}."""

    __slots__ = ("fn", "items", "star", "kwsets", "done")

    def __init__(self, fn, items, star, kwsets, done):
        self.fn, self.items, self.star, self.kwsets, self.done = fn, items, star, kwsets, done

    def fail(self, exc):
        self.done([None] * len(self.items), dict.fromkeys(range(len(self.items)), exc))


class WorkerSet:
    """processes worker threads over one queue of Chunks."""

    def __init__(self, processes, initializer, initargs, maxtasks, socket, job_options):
        self._queue = queue.SimpleQueue()
        self._socket = socket
        self._job_options = dict(job_options)
        pass_fds = set(self._job_options.get("pass_fds", ()))
        self._channel_fd = _free_child_fd(pass_fds)
        self._args = _target.prepare_args(_target.main_module())
        self._args["maxtasks"] = maxtasks
        self._args["channel_fd"] = self._channel_fd
        if initializer is not None:
            self._args["initializer"] = base64.b64encode(
                pickle.dumps((initializer, tuple(initargs)), pickle.HIGHEST_PROTOCOL)).decode()
        self._lock = threading.Lock()
        self._broken = None  # the exception every task gets once set
        self._stopping = False
        self._jobs = set()
        self._threads = [threading.Thread(target=self._run, daemon=True,
                                          name="mpspawn-pool-worker-%d" % i)
                         for i in range(processes)]
        for t in self._threads:
            t.start()

    def submit(self, chunk):
        with self._lock:
            broken = self._broken
        if broken is not None:
            chunk.fail(broken)
        else:
            self._queue.put(chunk)

    def close(self):
        """No more chunks: each thread ends its worker once the queue is empty."""
        for _ in self._threads:
            self._queue.put(None)

    def terminate(self, exc):
        """Kill the workers; queued and running chunks fail with exc."""
        with self._lock:
            self._stopping = True
            if self._broken is None:
                self._broken = exc
            jobs = list(self._jobs)
        for job in jobs:
            try:
                job.kill()
            except OSError:
                pass
        self.close()
        self._drain()

    def join(self):
        for t in self._threads:
            t.join()
        self._drain()

    def _drain(self):
        """Fails the queued chunks; the threads' stop marks stay queued."""
        marks = 0
        while True:
            try:
                chunk = self._queue.get_nowait()
            except queue.Empty:
                break
            if chunk is None:
                marks += 1
            else:
                chunk.fail(self._broken or TaskError("the pool was terminated"))
        for _ in range(marks):
            self._queue.put(None)

    def _break(self, exc):
        with self._lock:
            if self._broken is None:
                self._broken = exc
        self._drain()

    # -- one thread per worker ----------------------------------------------
    def _run(self):
        while True:
            with self._lock:
                if self._broken is not None or self._stopping:
                    break
            try:
                worker = self._start_worker()
            except BaseException as e:
                self._break(e)
                break
            if worker is None:
                break
            job, conn = worker
            try:
                if not self._serve(job, conn):
                    return  # it took its stop mark
            finally:
                conn.close()
                self._end_job(job)
        # Broken or terminated: what is queued fails, up to this thread's stop mark.
        self._drain_until_stop()

    def _drain_until_stop(self):
        while True:
            chunk = self._queue.get()
            if chunk is None:
                return
            chunk.fail(self._broken or TaskError("the pool was terminated"))

    def _start_worker(self):
        """(job, conn) of a worker that said ready, or None if the pool broke."""
        parent, child = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
        try:
            job = _WorkerJob(self._args, child.fileno(), self._channel_fd,
                             self._socket if self._socket is not None else _target.private_socket(),
                             self._job_options)
            job.start()
        except BaseException:
            parent.close()
            raise
        finally:
            child.close()
        with self._lock:
            self._jobs.add(job)
        conn = Connection(parent.detach())
        try:
            hello = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):
            hello = None
        if hello and hello[0] == "ready":
            return job, conn
        conn.close()
        code = self._end_job(job)
        if hello and hello[0] == "init-error":
            exc = _target.remote_exception(hello[1], hello[2])
        else:
            exc = TaskError("a pool worker died while starting (%s)" % _describe(code), code)
        self._break(exc)
        return None

    def _serve(self, job, conn):
        """Runs chunks on one worker, keeping up to IN_FLIGHT sent ahead so
        that it never waits for this thread between chunks. True: start a
        replacement (the worker ran its maxtasks, or died); False: the pool
        is closing (this thread took its stop mark)."""
        maxtasks, sent = self._args["maxtasks"], 0
        inflight = collections.deque()
        stopping = False
        while True:
            while (not stopping and len(inflight) < IN_FLIGHT and
                   (maxtasks is None or sent < maxtasks)):
                try:
                    chunk = self._queue.get(block=not inflight)
                except queue.Empty:
                    break
                if chunk is None:
                    stopping = True
                    break
                try:
                    data = _dumps_chunk(chunk)
                except BaseException as e:  # a task that does not pickle
                    chunk.fail(e)
                    continue
                try:
                    conn.send_bytes(data)
                except (OSError, EOFError):
                    inflight.append(chunk)
                    return self._worker_died(job, inflight, stopping)
                inflight.append(chunk)
                sent += 1
            if not inflight:
                return not stopping
            try:
                reply = pickle.loads(conn.recv_bytes())
            except (OSError, EOFError):
                return self._worker_died(job, inflight, stopping)
            except BaseException as e:  # a result that does not unpickle here
                reply = (None, (e, traceback.format_exc()))
            chunk = inflight.popleft()
            values, errors = reply
            if values is None:
                chunk.fail(_target.remote_exception(*errors))
            else:
                chunk.done(values, {i: _target.remote_exception(*e) for i, e in errors.items()})
            if stopping and not inflight:
                return False

    def _worker_died(self, job, inflight, stopping):
        """The worker's channel ended without a reply: its chunks fail with
        its exit, and a replacement starts (True) unless this thread has
        taken its stop mark."""
        pid = job.pid
        code = self._end_job(job)
        with self._lock:
            error = self._broken if self._stopping else None
        if error is None:  # not killed by terminate(): say how it ended
            error = TaskError("the pool worker (pid %s) running this task %s" %
                              (pid, _describe(code)), code)
        for chunk in inflight:
            chunk.fail(error)
        return not stopping

    def _end_job(self, job):
        """Waits for the job's end (it has ended or is ending), forgets it and
        returns its exit code; again after that, the same code."""
        if job.end_code is not _RUNNING:
            return job.end_code
        job.join(30)
        if job.exitcode is None:
            job.kill()
            job.join()
        with self._lock:
            self._jobs.discard(job)
        code = job.end_code = job.exitcode
        job.close()
        return code


def _refuse_connection(conn):
    raise TypeError("a Pipe() end cannot be an argument of a Pool task (a worker "
                    "cannot receive fds): pass it to a Process target instead")


_CHUNK_DISPATCH = copyreg.dispatch_table.copy()
_CHUNK_DISPATCH[Connection] = _refuse_connection


def _dumps_chunk(chunk):
    buf = io.BytesIO()
    pickler = pickle.Pickler(buf, pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = _CHUNK_DISPATCH
    pickler.dump((chunk.fn, chunk.items, chunk.star, chunk.kwsets))
    return buf.getvalue()


def _describe(code):
    if code is not None and code < 0:
        return "was killed by signal %s" % _signame(-code)
    return "exited with status %s" % code


def cancelled():
    return OSError(errno.ECANCELED, "the pool was terminated")
