"""What the benchmark's jobs run: a module of its own so that every server
(mpspawn's private one, multiprocessing's forkserver) imports the same small
stdlib-only file, and the script's __main__ stays guarded."""
import sys


def noop():
    """The empty job: what start+join costs without any work."""
    return None


def touch_heavy(name):
    """Uses the preloaded heavy module, so a server that did not preload it
    pays its import here: a sympy Symbol (not arithmetic on it, whose first use
    imports more of sympy lazily in every job), else the module's name."""
    __import__(name)
    module = sys.modules[name]
    symbol = getattr(module, "Symbol", None)
    if symbol is not None:
        return symbol("x").name
    return module.__name__


def tiny(x):
    """A task whose run time is next to nothing: Pool.map's own cost."""
    return x * x
