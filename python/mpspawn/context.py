"""get_context(), Pipe and cpu_count, so multiprocessing code switches in one line."""
import multiprocessing
import os


from .process import Process
from .pool import Pool


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
