"""ctypes bindings over libmpspawn.so.0 (prototype: only what the package uses).

The library is found in the build tree first (../../build relative to this
file, i.e. PYTHONPATH=python after make), then $MPSPAWN_LIBRARY, then by its
soname through the dynamic linker's usual search.
"""
import ctypes
import os

_here = os.path.dirname(os.path.abspath(__file__))
_candidates = [os.path.join(_here, "..", "..", "build", "libmpspawn.so.0")]
if os.environ.get("MPSPAWN_LIBRARY"):
    _candidates.insert(0, os.environ["MPSPAWN_LIBRARY"])


def _load():
    for path in _candidates:
        if os.path.exists(path):
            path = os.path.normpath(path)
            # The embedded server is looked for next to the running
            # executable (python3 here, so never found) and then installed;
            # from the build tree, point it at the build's mpforkserver. The
            # library has no call for this, so it is the environment
            # variable, which jobs then inherit (a wart: see the notes).
            server = os.path.join(os.path.dirname(path), "mpforkserver")
            if os.path.exists(server):
                os.environ.setdefault("MPSPAWN_FORKSERVER", server)
            return ctypes.CDLL(path, use_errno=True)
    return ctypes.CDLL("libmpspawn.so.0", use_errno=True)


lib = _load()

c_int, c_uint, c_char_p, c_void_p = ctypes.c_int, ctypes.c_uint, ctypes.c_char_p, ctypes.c_void_p
P = ctypes.POINTER

EXITCODE_NONE = -(2 ** 31)  # MPS_EXITCODE_NONE is INT_MIN


class ExitInfo(ctypes.Structure):
    _fields_ = [("exitcode", c_int), ("core_dumped", ctypes.c_bool),
                ("timed_out", ctypes.c_bool), ("user_seconds", ctypes.c_double),
                ("system_seconds", ctypes.c_double), ("max_rss_kib", ctypes.c_long),
                ("wall_seconds", ctypes.c_double)]


# Callbacks: ctypes acquires the GIL around them whichever thread the
# library runs them on (the thread that happens to read the connection).
POOL_CALLBACK = ctypes.CFUNCTYPE(None, c_void_p, c_int, c_void_p)
POOL_ERROR_CALLBACK = ctypes.CFUNCTYPE(None, c_int, c_char_p, c_void_p)


def _fn(name, restype, *argtypes):
    f = getattr(lib, name)
    f.restype = restype
    f.argtypes = list(argtypes)
    globals()[name] = f


_fn("mps_version", c_char_p)
_fn("mps_strerror", c_char_p, c_int)
_fn("mps_client_open", c_int, c_char_p, P(c_void_p), P(c_void_p))
_fn("mps_client_close", None, c_void_p)
_fn("mps_client_fd", c_int, c_void_p)
_fn("mps_client_dispatch", c_int, c_void_p)
_fn("mps_client_error", c_char_p, c_void_p)
_fn("mps_spec_new", c_int, P(c_void_p))
_fn("mps_spec_free", None, c_void_p)
_fn("mps_spec_set_exec", c_int, c_void_p, c_char_p, P(c_char_p))
_fn("mps_spec_set_call", c_int, c_void_p, c_char_p, c_char_p)
_fn("mps_spec_env_clear", c_int, c_void_p)
_fn("mps_spec_env_set", c_int, c_void_p, c_char_p, c_char_p)
_fn("mps_spec_set_cwd", c_int, c_void_p, c_char_p)
_fn("mps_spec_map_fd", c_int, c_void_p, c_int, c_int)
_fn("mps_spec_set_name", c_int, c_void_p, c_char_p)
_fn("mps_spec_set_daemon", c_int, c_void_p, ctypes.c_bool)
_fn("mps_spec_set_pdeathsig", c_int, c_void_p, c_int)
_fn("mps_spec_set_timeout", c_int, c_void_p, ctypes.c_double, c_int)
_fn("mps_process_new", c_int, c_void_p, c_void_p, P(c_void_p))
_fn("mps_start", c_int, c_void_p)
_fn("mps_join", c_int, c_void_p, c_int)
_fn("mps_is_alive", c_int, c_void_p)
_fn("mps_exitcode", c_int, c_void_p)
_fn("mps_terminate", c_int, c_void_p)
_fn("mps_kill", c_int, c_void_p)
_fn("mps_send_signal", c_int, c_void_p, c_int)
_fn("mps_pid", c_int, c_void_p)
_fn("mps_sentinel", c_int, c_void_p)
_fn("mps_exit_info_get", c_int, c_void_p, P(ExitInfo))
_fn("mps_start_failed_stage", c_char_p, c_void_p)
_fn("mps_process_close", c_int, c_void_p)
_fn("mps_result", c_char_p, c_void_p)
_fn("mps_result_error", c_char_p, c_void_p)
_fn("mps_pool_new", c_int, c_void_p, c_uint, P(c_void_p))
_fn("mps_pool_apply_async", c_int, c_void_p, c_void_p, POOL_CALLBACK,
    POOL_ERROR_CALLBACK, c_void_p)
_fn("mps_pool_close", c_int, c_void_p)
_fn("mps_pool_terminate", c_int, c_void_p)
_fn("mps_pool_join", c_int, c_void_p, c_int)
_fn("mps_pool_free", c_int, c_void_p)

libc = ctypes.CDLL(None, use_errno=True)
libc.free.argtypes = [c_void_p]
libc.free.restype = None


def strerror(err):
    return lib.mps_strerror(err).decode(errors="replace")
