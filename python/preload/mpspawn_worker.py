"""_mpspawn_worker: the loop of a long-lived Pool worker (entry "python_worker").

Compiled into mpspawn_python.so (an .incbin of this file) and run in the
job, after it has the client's credentials, so every unpickling happens as
the client. Protocol on fd (a socketpair end, multiprocessing.connection
framing, each message one pickle):

  worker -> pool, once:  ("ready", pid)  or  ("init-error", exc, traceback)
  pool -> worker:        a chunk: a list of (fn, args, kwargs)
  worker -> pool:        a list of (True, value) or (False, (exc, traceback))

The worker ends on EOF or after maxtasks chunks (multiprocessing's
maxtasksperchild also counts chunks). An initializer that raises ends the
worker after its "init-error" message, so the pool can fail its tasks
instead of starting replacements that would fail the same way.
"""
import base64
import json
import os
import pickle
import sys
import traceback

from _mpspawn_job import prepare


def _flush():
    for f in (sys.stdout, sys.stderr):
        try:
            f.flush()
        except BaseException:
            pass


def _dump_error(e, tb):
    try:
        return pickle.dumps((e, tb), pickle.HIGHEST_PROTOCOL)
    except BaseException:
        summary = traceback.format_exception_only(type(e), e)[-1].strip()
        return pickle.dumps((RuntimeError(summary), tb))


def worker(args_json, fd):
    from multiprocessing.connection import Connection
    a = json.loads(args_json)
    conn = Connection(fd)
    try:
        prepare(a)
        if a.get('initializer'):
            init, initargs = pickle.loads(base64.b64decode(a['initializer']))
            init(*initargs)
    except BaseException as e:
        conn.send_bytes(pickle.dumps(('init-error',) + pickle.loads(
            _dump_error(e, traceback.format_exc()))))
        _flush()
        return json.dumps({'messages': 0, 'init_error': True})
    conn.send_bytes(pickle.dumps(('ready', os.getpid())))
    n, maxtasks = 0, a.get('maxtasks')
    while maxtasks is None or n < maxtasks:
        try:
            chunk = pickle.loads(conn.recv_bytes())
        except EOFError:
            break
        out = []
        for fn, args, kwargs in chunk:
            try:
                out.append((True, fn(*args, **(kwargs or {}))))
            except BaseException as e:
                out.append((False, (e, traceback.format_exc())))
        try:
            data = pickle.dumps(out, pickle.HIGHEST_PROTOCOL)
        except BaseException:
            # One result does not pickle: send the others, and that one's error.
            fixed = []
            for ok, v in out:
                try:
                    pickle.dumps(v, pickle.HIGHEST_PROTOCOL)
                    fixed.append((ok, v))
                except BaseException as e:
                    fixed.append((False, pickle.loads(_dump_error(
                        e, traceback.format_exc()))))
            data = pickle.dumps(fixed, pickle.HIGHEST_PROTOCOL)
        conn.send_bytes(data)
        n += 1
    _flush()
    return json.dumps({'messages': n})
