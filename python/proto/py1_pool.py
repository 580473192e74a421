#!/usr/bin/env python3
"""Prototype (issue 16): long-lived Python workers, entry "python_worker".
Each worker is one call job that runs many chunks of tasks over a
socketpair, so a map of many tiny tasks is not one fork per task.

    python3 python/proto/py1_pool.py SOCKET
"""
import ctypes
import json
import os
import pickle
import signal
import socket
import sys
import threading
import time
from multiprocessing.connection import Connection

import py1_driver as d


def start_worker(client, maxtasks=None):
    mine, theirs = socket.socketpair()
    spec = d.vp()
    assert d.lib.mps_spec_new(ctypes.byref(spec)) == 0
    assert d.lib.mps_spec_map_fd(spec, 3, theirs.fileno()) == 0
    msg = {"sys_path": sys.path, "cwd": os.getcwd(), "cache_tag": sys.implementation.cache_tag,
           "main_path": getattr(sys.modules["__main__"], "__file__", None),
           "maxtasks": maxtasks}
    assert d.lib.mps_spec_set_call(spec, b"python_worker", json.dumps(msg).encode()) == 0
    proc = d.vp()
    assert d.lib.mps_process_new(client, spec, ctypes.byref(proc)) == 0
    d.lib.mps_spec_free(spec)
    r = d.lib.mps_start(proc)
    theirs.close()
    if r < 0:
        raise OSError(-r, os.strerror(-r))
    return proc, Connection(os.dup(mine.fileno())), mine


def pmap(workers, fn, items, chunksize):
    chunks = [items[i:i + chunksize] for i in range(0, len(items), chunksize)]
    out = [None] * len(chunks)
    # One chunk in flight per worker; a worker that dies gives EOF, which
    # fails its chunk instead of hanging.
    pending = {}
    it = iter(enumerate(chunks))
    for w in workers:
        nxt = next(it, None)
        if nxt:
            w[1].send_bytes(pickle.dumps([(fn, (x,), None) for x in nxt[1]]))
            pending[w[1]] = (w, nxt[0])
    from multiprocessing.connection import wait
    while pending:
        for conn in wait(list(pending)):
            w, idx = pending.pop(conn)
            try:
                out[idx] = pickle.loads(conn.recv_bytes())
            except EOFError:
                d.lib.mps_join(w[0], -1)
                raise RuntimeError(f"worker exited ({d.lib.mps_exitcode(w[0])}) with chunk {idx}")
            nxt = next(it, None)
            if nxt:
                conn.send_bytes(pickle.dumps([(fn, (x,), None) for x in nxt[1]]))
                pending[conn] = (w, nxt[0])
    results = []
    for chunk in out:
        for ok, v in chunk:
            if not ok:
                raise v[0]
            results.append(v)
    return results


def stop(workers):
    for proc, conn, sock in workers:
        conn.close()
        sock.close()
        d.lib.mps_join(proc, -1)
        res = d.lib.mps_result(proc)
        code = d.lib.mps_exitcode(proc)
        d.lib.mps_process_close(proc)
        yield code, res and json.loads(res)


def cube(x):
    return x * x * x


if __name__ == "__main__":
    client, m = d.vp(), d.cp()
    assert d.lib.mps_client_open(sys.argv[1].encode(), ctypes.byref(client), ctypes.byref(m)) == 0
    t = time.perf_counter()
    workers = [start_worker(client) for _ in range(8)]
    t1 = time.perf_counter()
    items = list(range(10000))
    r = pmap(workers, abs, items, 313)  # chunksize as multiprocessing.Pool(8) picks
    t2 = time.perf_counter()
    assert r == items
    r = pmap(workers, cube, items[:100], 10)  # a __main__ function
    assert r == [x ** 3 for x in items[:100]]
    print(f"8 workers started in {(t1 - t) * 1e3:.1f} ms; map of 10000 tiny tasks "
          f"in {(t2 - t1) * 1e3:.1f} ms (rough, not a benchmark)")
    print("worker exits:", list(stop(workers)))
    # maxtasks: a worker ends by itself after that many messages.
    w = start_worker(client, maxtasks=2)
    pmap([w], abs, [-1, -2, -3, -4], 2)
    print("maxtasks=2 worker:", list(stop([w])))
    # A SIGKILLed worker fails its chunk, never hangs.
    w = start_worker(client)
    threading.Timer(0.3, os.kill, (d.lib.mps_pid(w[0]), signal.SIGKILL)).start()
    try:
        pmap([w], time.sleep, [5], 1)
    except RuntimeError as e:
        print("SIGKILLed worker ->", e)
    list(stop([w]))
