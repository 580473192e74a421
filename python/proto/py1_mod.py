"""Functions for the prototype driver: importable by the server's job as
well as by the client (the client's sys.path is sent along)."""
import os


def add(a, b):
    return a + b


def whoami():
    return {"pid": os.getpid(), "uid": os.getuid(), "cwd": os.getcwd(),
            "MPS_PY1": os.environ.get("MPS_PY1")}


def fail(msg):
    raise ValueError(msg)


def big(n):
    return b"x" * n


def echo(x):
    return x


class UidAtUnpickle:
    """Unpickles as the uid of whoever unpickles it."""
    def __reduce__(self):
        return (os.getuid, ())


def wait_for_sigint():
    import signal
    try:
        signal.pause()
    except KeyboardInterrupt:
        return "KeyboardInterrupt raised"