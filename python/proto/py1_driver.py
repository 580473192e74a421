#!/usr/bin/env python3
"""Prototype driver (issue 16): runs Python callables as call jobs of
entry "python" in an mpforkserver that preloaded build/mpspawn_python.so.

    python3 python/proto/py1_driver.py SOCKET
"""
import base64
import ctypes
import json
import os
import pickle
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import py1_mod  # noqa: E402

lib = ctypes.CDLL(os.path.join(HERE, "..", "..", "build", "libmpspawn.so.0"))
vp, cp = ctypes.c_void_p, ctypes.c_char_p
for name, res, args in [
    ("mps_client_open", ctypes.c_int, [cp, ctypes.POINTER(vp), ctypes.POINTER(cp)]),
    ("mps_spec_new", ctypes.c_int, [ctypes.POINTER(vp)]),
    ("mps_spec_free", None, [vp]),
    ("mps_spec_set_call", ctypes.c_int, [vp, cp, cp]),
    ("mps_spec_env_set", ctypes.c_int, [vp, cp, cp]),
    ("mps_spec_map_fd", ctypes.c_int, [vp, ctypes.c_int, ctypes.c_int]),
    ("mps_process_new", ctypes.c_int, [vp, vp, ctypes.POINTER(vp)]),
    ("mps_start", ctypes.c_int, [vp]),
    ("mps_join", ctypes.c_int, [vp, ctypes.c_int]),
    ("mps_exitcode", ctypes.c_int, [vp]),
    ("mps_pid", ctypes.c_int, [vp]),
    ("mps_result", cp, [vp]),
    ("mps_result_error", cp, [vp]),
    ("mps_process_close", ctypes.c_int, [vp]),
]:
    f = getattr(lib, name)
    f.restype, f.argtypes = res, args


class RemoteError(Exception):
    pass


def call(client, fn, *args, env=None, result_fd=False, **kwargs):
    """Runs fn(*args, **kwargs) in a job; returns its value or raises its
    exception (with the job's traceback attached as __cause__)."""
    main = sys.modules["__main__"]
    blob = pickle.dumps((fn, args, kwargs))
    msg = {
        "pickle": base64.b64encode(blob).decode(),
        "sys_path": sys.path,
        "cwd": os.getcwd(),
        "cache_tag": sys.implementation.cache_tag,
        # Only when the pickle refers to __main__: re-running the script
        # costs what its top level costs (here ctypes and the library).
        "main_path": getattr(main, "__file__", None) if b"__main__" in blob else None,
    }
    spec = vp()
    assert lib.mps_spec_new(ctypes.byref(spec)) == 0
    memfd = -1
    if result_fd:
        memfd = os.memfd_create("mps-result")
        assert lib.mps_spec_map_fd(spec, 3, memfd) == 0
        msg["result_fd"] = 3
    for k, v in (env or {}).items():
        lib.mps_spec_env_set(spec, k.encode(), v.encode())
    assert lib.mps_spec_set_call(spec, b"python", json.dumps(msg).encode()) == 0
    proc = vp()
    assert lib.mps_process_new(client, spec, ctypes.byref(proc)) == 0
    lib.mps_spec_free(spec)
    r = lib.mps_start(proc)
    if r < 0:
        raise OSError(-r, os.strerror(-r))
    lib.mps_join(proc, -1)
    code = lib.mps_exitcode(proc)
    res, err = lib.mps_result(proc), lib.mps_result_error(proc)
    lib.mps_process_close(proc)
    if res is None:
        raise RemoteError(f"exit {code}: {err and err.decode()}")
    out = json.loads(res)
    if "fd_len" in out:
        data = os.pread(memfd, out["fd_len"], 0)
        os.close(memfd)
    else:
        data = base64.b64decode(out["pickle"])
    value = pickle.loads(data)
    if out["ok"]:
        return value
    exc, tb = value
    raise exc from RemoteError("in the job:\n" + tb)


def square(x):
    """Defined in __main__: the job finds it by importing this script."""
    return x * x


if __name__ == "__main__":
    client, msgp = vp(), cp()
    r = lib.mps_client_open(sys.argv[1].encode(), ctypes.byref(client), ctypes.byref(msgp))
    assert r == 0, msgp.value
    print("module fn   add(2, 3) =", call(client, py1_mod.add, 2, 3))
    print("__main__ fn square(7) =", call(client, square, 7))
    print("whoami       =", call(client, py1_mod.whoami, env={"MPS_PY1": "from-client"}))
    print("client       = pid", os.getpid(), "uid", os.getuid())
    print("unpickled as = uid", call(client, py1_mod.echo, py1_mod.UidAtUnpickle()))
    try:
        call(client, py1_mod.fail, "boom")
    except ValueError as e:
        print("exception    =", repr(e), "| job traceback:", e.__cause__.args[0].splitlines()[-1])
    try:
        call(client, py1_mod.big, 40000)
    except RemoteError as e:
        print("big inline   =", e)
    print("big via fd   = len", len(call(client, py1_mod.big, 1 << 20, result_fd=True)))
    for what, fn in (("py1_mod.add", py1_mod.add), ("__main__.square", square)):
        t = time.perf_counter()
        for _ in range(50):
            call(client, fn, 1, 1) if fn is py1_mod.add else call(client, fn, 1)
        print(f"50 x {what:15} = {(time.perf_counter() - t) / 50 * 1e3:.2f} ms each (rough, not a benchmark)")
