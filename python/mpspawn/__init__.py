"""mpspawn: multiprocessing's Process and Pool over the mpspawn forkserver.

In progress (issue 16: argv and call jobs so far). Stdlib only: ctypes over libmpspawn.so.0.

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
from ._common import TaskError, Call, TimeoutError
from .process import Process
from .pool import Pool, AsyncResult, ApplyResult
from .context import Pipe, cpu_count, get_context
from ._target import set_forkserver_preload

__all__ = ["Process", "Pool", "AsyncResult", "Call", "TaskError", "TimeoutError",
           "ApplyResult", "Pipe", "cpu_count", "get_context", "set_forkserver_preload"]
