"""_mpspawn_worker: the loop of a long-lived Pool worker (entry "python_worker").

Compiled into mpspawn_python.so (an .incbin of this file) and run in the
job, after it has the client's credentials, so every unpickling happens as
the client. Protocol on fd (a socketpair end, multiprocessing.connection
framing, each message one pickle):

  worker -> pool, once:  ("ready", pid)  or  ("init-error", exc, traceback)
  pool -> worker:        a chunk: (fn, [item, ...], star, [kwargs, ...] or
                         None): fn(*item, **kwargs) if star, else fn(item)
  worker -> pool:        ([value, ...], {index: (exc, traceback)}): the
                         values in order (None where the call raised),
                         or (None, (exc, traceback)) when the chunk did not
                         unpickle

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


def _dumps_each(values, errors):
    """One value does not pickle: send the others, and its error."""
    for i, v in enumerate(values):
        try:
            pickle.dumps(v, pickle.HIGHEST_PROTOCOL)
        except BaseException as e:
            values[i] = None
            errors[i] = pickle.loads(_dump_error(e, traceback.format_exc()))
    for i, err in list(errors.items()):
        try:
            pickle.dumps(err, pickle.HIGHEST_PROTOCOL)
        except BaseException:
            errors[i] = pickle.loads(_dump_error(*err))
    return pickle.dumps((values, errors), pickle.HIGHEST_PROTOCOL)


def worker(args_json, fd):
    from multiprocessing.connection import Connection
    a = json.loads(args_json)
    # The channel is the fd the pool names (stdio maps may come first).
    conn = Connection(a.get('channel_fd', fd))
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
            data = conn.recv_bytes()
        except EOFError:
            break
        n += 1
        try:
            fn, items, star, kwsets = pickle.loads(data)
        except BaseException as e:
            # A task that does not unpickle here (a function the job cannot
            # import): the whole chunk fails with that error.
            conn.send_bytes(pickle.dumps((None, pickle.loads(
                _dump_error(e, traceback.format_exc())))))
            continue
        values, errors = [], {}
        for i, item in enumerate(items):
            try:
                if not star:
                    values.append(fn(item))
                elif kwsets:
                    values.append(fn(*item, **kwsets[i]))
                else:
                    values.append(fn(*item))
            except BaseException as e:
                values.append(None)
                errors[i] = (e, traceback.format_exc())
        try:
            data = pickle.dumps((values, errors), pickle.HIGHEST_PROTOCOL)
        except BaseException:
            data = _dumps_each(values, errors)
        conn.send_bytes(data)
    _flush()
    return json.dumps({'messages': n})
