"""mpspawn: multiprocessing's Process and Pool over the mpspawn forkserver.

Stdlib only: ctypes over libmpspawn.so.0. A job is one of:

* ``target=`` a Python callable with ``args``/``kwargs``, run in a
  copy-on-write child of a warm interpreter: the package's private server
  (``mpforkserver --python-preload``, started on first use, importing what
  set_forkserver_preload() names and the caller's ``__main__`` once), or the
  shared server ``socket=`` names, configured with ``python_preload``;
* ``argv`` a program and its arguments;
* ``call=`` a C entry point a server preloaded, with JSON ``call_args``.

Names and semantics are multiprocessing's: Process (start, join, is_alive,
terminate, kill, close, exitcode, pid, sentinel, name, daemon), Pool (apply,
apply_async, map, map_async, imap, imap_unordered, starmap, starmap_async,
close, terminate, join, with = terminate), AsyncResult (get, wait, ready,
successful, callbacks run before get() returns), Pipe, cpu_count,
get_context(), set_forkserver_preload(), TimeoutError. ``start()`` twice is
an AssertionError, ``join()`` with a negative timeout returns at once, a
Pool's ``join()`` before ``close()`` is a ValueError, imap consumes its
iterable lazily, map cuts chunks as multiprocessing does, a target's exit
code is 0, 1 after an exception (its traceback on the job's stderr) or
sys.exit's, non-daemon processes are joined at exit, daemon ones end with
their caller, and a main module that starts jobs while it is imported to
find a target gets multiprocessing's "bootstrapping phase" RuntimeError.

Where we differ from multiprocessing:

* As in subprocess: ``env=`` replaces the job's environment, and an exec
  failure raises OSError with the exec's errno from ``start()``. Without
  ``env=`` a job has the caller's environment and cwd as they are at
  ``start()`` (not a server's stale copy).
* ``Process.result`` is new: a target's return value (its exception is
  raised again there, with the job's traceback as a note), or a call job's
  decoded JSON. A job killed by a signal raises TaskError naming it.
* A Pool task is a Python callable (on long-lived worker jobs), an argv
  list (the task's arguments are appended; its result is the exit code) or
  ``Call("entry")`` (its argument is the JSON value). argv and Call tasks
  are one job each and ignore ``chunksize``, ``initializer`` and
  ``maxtasksperchild``.
* A worker killed by a signal fails its task with TaskError naming the
  signal, and is replaced: the pool never hangs. An initializer that raises
  fails the pool's pending and later tasks with its exception, instead of
  workers being restarted forever.
* A Python target on the private server also ends when its caller dies
  without joining it (killed by SIGTERM or SIGKILL): it gets the server's
  death signal, and the server ends with its caller. A non-daemon job on a
  shared server (socket=) outlives a killed caller, as the C API says.
* Python tasks on a Pool cannot take Pipe() ends as arguments (a Process
  target can: they travel as fds). Arguments and results must pickle; the
  server embeds Debian's python3, so a caller of another minor version gets
  an ImportError naming both.
* TaskError (a multiprocessing.ProcessError) reports a job that ended
  badly without an exception of its own: a signal, a call job's error, a
  target's sys.exit() read through ``result``.
"""
from ._common import TaskError, Call, TimeoutError
from .process import Process
from .pool import Pool, AsyncResult, ApplyResult
from .context import Pipe, cpu_count, get_context
from ._target import set_forkserver_preload

__all__ = ["Process", "Pool", "AsyncResult", "Call", "TaskError", "TimeoutError",
           "ApplyResult", "Pipe", "cpu_count", "get_context", "set_forkserver_preload"]
