/* SPDX-License-Identifier: MIT */
/*
 * mpspawn_python.c: CPython embedded in mpforkserver, loaded by
 * `mpforkserver --python-preload MODULES` (python_preload =); the package's
 * side is python/mpspawn, and docs/python.md describes both.
 *
 * init (in the server, once): Py_InitializeEx(0) (no signal handlers: the
 * server owns its signals), import what $MPSPAWN_PYTHON_PRELOAD names
 * (comma list; an ImportError prints its traceback and stops the server),
 * compile the job helper below, and release the GIL. From then on the
 * server never runs Python: no Python object is touched between forks, so
 * no Python lock can be held by anyone at fork time.
 *
 * after_fork (in each call job, after credentials, cwd and fds are the
 * client's, before the seccomp filter): take the GIL back in the only
 * thread there is, PyOS_AfterFork_Child (recreates the GIL, the import
 * lock, the thread states; runs os.register_at_fork's after_in_child
 * hooks), and rebuild os.environ from the job's environ: the snapshot
 * Python took at init is the server's, not the client's.
 *
 * entry "python": args_json is {"pickle": base64 of pickle((fn, args,
 * kwargs)), "sys_path": [...], "cwd": "...", "main_path": "..." or null,
 * "main_name": "..." or null, "cache_tag": "...", "result_fd": n or
 * absent}. Unpickled here only, in the job, as the
 * client. The result is JSON {"ok": true|false, "pickle": base64} (the
 * return value, or (exception, formatted traceback)), or {"ok": ...,
 * "fd_len": n} when the pickle went to result_fd instead (big results:
 * MPS_RESULT_MAX is 32 KiB of JSON, about 24 KiB of pickle).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpspawn.h"

extern char **environ;

static PyThreadState *main_tstate;
static PyObject *helper; /* the _mpspawn_job module */
static PyObject *worker_mod; /* the _mpspawn_worker module */

/* The Pool worker's loop is python/preload/mpspawn_worker.py, embedded
 * here as a NUL-terminated string (the path is relative to the top of the
 * tree, where make runs the compiler). */
extern const char mps__worker_src[];
__asm__(".pushsection .rodata\n"
        ".hidden mps__worker_src\n"
        "mps__worker_src:\n"
        ".incbin \"python/preload/mpspawn_worker.py\"\n"
        ".byte 0\n"
        ".popsection\n");

static const char helper_src[] =
        "import base64, json, os, pickle, runpy, sys, traceback, types\n"
        "# Imported here, in the server, once: a job that imports them pays\n"
        "# milliseconds (multiprocessing.util alone pulls in the package).\n"
        "import signal, threading, multiprocessing.util, multiprocessing.connection\n"
        "\n"
        "def refresh_environ(items):\n"
        "    d = os.environ._data\n"
        "    d.clear()\n"
        "    for kv in items:\n"
        "        k, sep, v = kv.partition(b'=')\n"
        "        if sep and k:\n"
        "            d[k] = v\n"
        "\n"
        "def bootstrapping(run, *args, **kwargs):\n"
        "    # While the client's main module runs here, the package refuses to\n"
        "    # start jobs (multiprocessing's 'bootstrapping phase' error), so an\n"
        "    # unguarded script cannot recurse.\n"
        "    sys._mpspawn_bootstrapping = True\n"
        "    try:\n"
        "        return run(*args, **kwargs)\n"
        "    finally:\n"
        "        del sys._mpspawn_bootstrapping\n"
        "\n"
        "def fixup_main(path):\n"
        "    # As multiprocessing.spawn._fixup_main_from_path: the client's\n"
        "    # script runs as __mp_main__, so its 'if __name__ == \"__main__\"'\n"
        "    # block does not, and functions pickled as __main__.f resolve.\n"
        "    main = types.ModuleType('__mp_main__')\n"
        "    main.__dict__.update(bootstrapping(runpy.run_path, path, run_name='__mp_main__'))\n"
        "    main.__file__ = path\n"
        "    sys.modules['__main__'] = sys.modules['__mp_main__'] = main\n"
        "\n"
        "def prepare(a):\n"
        "    tag = a.get('cache_tag')\n"
        "    if tag is not None and tag != sys.implementation.cache_tag:\n"
        "        raise ImportError('client is %s, this server embeds %s: pickles and '\n"
        "                          'extension modules do not cross versions' %\n"
        "                          (tag, sys.implementation.cache_tag))\n"
        "    if a.get('cwd'):\n"
        "        os.chdir(a['cwd'])\n"
        "    if a.get('sys_path') is not None:\n"
        "        sys.path[:] = a['sys_path']\n"
        "    want = ('name:' + a['main_name']) if a.get('main_name') else \\\n"
        "           ('path:' + a['main_path']) if a.get('main_path') else None\n"
        "    main = sys.modules.get('__mp_main__')\n"
        "    if want is None:\n"
        "        return\n"
        "    if main is not None and getattr(main, '__mpspawn_main__', None) == want:\n"
        "        sys.modules['__main__'] = main  # preloaded by the server\n"
        "    elif a.get('main_name'):\n"
        "        fixup_main_from_name(a['main_name'])\n"
        "    else:\n"
        "        fixup_main(a['main_path'])\n"
        "\n"
        "def preload_main(spec):\n"
        "    kind, _, what = spec.partition(':')\n"
        "    if kind == 'name':\n"
        "        fixup_main_from_name(what)\n"
        "    else:\n"
        "        fixup_main(what)\n"
        "    sys.modules['__mp_main__'].__mpspawn_main__ = spec\n"
        "\n"
        "def fixup_main_from_name(name):\n"
        "    # As multiprocessing.spawn._fixup_main_from_name: `python -m pkg.mod`\n"
        "    # mains are found by module name (they may have no usable path).\n"
        "    main = types.ModuleType('__mp_main__')\n"
        "    main.__dict__.update(bootstrapping(runpy.run_module, name, run_name='__mp_main__',\n"
        "                                       alter_sys=True))\n"
        "    sys.modules['__main__'] = sys.modules['__mp_main__'] = main\n"
        "\n"
        "def set_signals(ignored):\n"
        "    # Python's table of handlers is the server's at init; the real\n"
        "    # dispositions are the client's (the server reproduces its ignored\n"
        "    # set). Make Python's view match: ignored stays ignored, SIGINT raises\n"
        "    # KeyboardInterrupt unless ignored, the rest is SIG_DFL.\n"
        "    import signal\n"
        "    for s in signal.valid_signals():\n"
        "        if s in (signal.SIGKILL, signal.SIGSTOP):\n"
        "            continue\n"
        "        if s in ignored:\n"
        "            want = signal.SIG_IGN\n"
        "        elif s == signal.SIGINT:\n"
        "            want = signal.default_int_handler\n"
        "        else:\n"
        "            want = signal.SIG_DFL\n"
        "        try:\n"
        "            if signal.getsignal(s) is not want:\n"
        "                signal.signal(s, want)\n"
        "        except (OSError, ValueError):\n"
        "            pass\n"
        "\n"
        "def exit_code_of(e):\n"
        "    # multiprocessing.process.BaseProcess._bootstrap's rules for SystemExit.\n"
        "    code = e.code\n"
        "    if code is None:\n"
        "        return 0\n"
        "    if isinstance(code, int):\n"
        "        return code\n"
        "    sys.stderr.write(str(code) + '\\n')\n"
        "    return 1\n"
        "\n"
        "def finish():\n"
        "    # As BaseProcess._bootstrap after the target: finalizers, then wait\n"
        "    # for non-daemon threads, then flush stdio (the job ends in _exit).\n"
        "    # Each step only when it has something to do: the first run of\n"
        "    # any code in a job costs its copy-on-write page faults.\n"
        "    util = sys.modules.get('multiprocessing.util')\n"
        "    mp_process = sys.modules.get('multiprocessing.process')\n"
        "    try:\n"
        "        if util and (util._finalizer_registry or\n"
        "                     (mp_process and mp_process._children)):\n"
        "            util._exit_function()\n"
        "    except BaseException:\n"
        "        traceback.print_exc()\n"
        "    threading = sys.modules.get('threading')\n"
        "    try:\n"
        "        if threading and (len(threading._active) + len(threading._limbo) > 1\n"
        "                          or threading._threading_atexits):\n"
        "            threading._shutdown()\n"
        "    except BaseException:\n"
        "        traceback.print_exc()\n"
        "    for f in (sys.stdout, sys.stderr):\n"
        "        try:\n"
        "            f.flush()\n"
        "        except BaseException:\n"
        "            pass\n"
        "\n"
        "INLINE_MAX = 32768 - 256\n"
        "\n"
        "def run(args_json):\n"
        "    summary = None\n"
        "    a = None\n"
        "    exitcode = 0\n"
        "    try:\n"
        "        a = json.loads(args_json)\n"
        "        prepare(a)\n"
        "        fn, args, kwargs = pickle.loads(base64.b64decode(a['pickle']))\n"
        "        value = fn(*args, **(kwargs or {}))\n"
        "        data = pickle.dumps(value, pickle.HIGHEST_PROTOCOL)\n"
        "        ok = True\n"
        "    except BaseException as e:\n"
        "        tb = traceback.format_exc()\n"
        "        if isinstance(e, SystemExit):\n"
        "            exitcode = exit_code_of(e)\n"
        "        else:\n"
        "            exitcode = 1\n"
        "            sys.stderr.write(tb)\n"
        "        ok = exitcode == 0\n"
        "        summary = traceback.format_exception_only(type(e), e)[-1].strip()\n"
        "        try:\n"
        "            data = pickle.dumps(None if ok else (e, tb), pickle.HIGHEST_PROTOCOL)\n"
        "        except BaseException:\n"
        "            data = pickle.dumps((RuntimeError(summary), tb))\n"
        "    finish()\n"
        "    fd = a.get('result_fd') if isinstance(a, dict) else None\n"
        "    text = base64.b64encode(data).decode()\n"
        "    if fd is not None and len(text) > INLINE_MAX:\n"
        "        view = memoryview(data)\n"
        "        while view:\n"
        "            view = view[os.write(fd, view):]\n"
        "        out = {'ok': ok, 'fd_len': len(data)}\n"
        "    else:\n"
        "        out = {'ok': ok, 'pickle': text}\n"
        "    return exitcode, json.dumps(out), (None if ok else summary)\n";

/* Extension modules (_decimal, _json, numpy's) are not linked against
 * libpython: they expect its symbols in the global scope. The server
 * dlopens us RTLD_LOCAL, which puts our dependency libpython there too, so
 * promote it to RTLD_GLOBAL before the first import. */
static int promote_libpython(void) {
        Dl_info info;
        if (!dladdr((void *)Py_InitializeEx, &info) || !info.dli_fname)
                return -ENOENT;
        if (!dlopen(info.dli_fname, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD)) {
                fprintf(stderr, "mpspawn_python: %s\n", dlerror());
                return -ENOENT;
        }
        return 0;
}

static int import_preloads(void) {
        const char *list = getenv("MPSPAWN_PYTHON_PRELOAD");
        if (!list || !*list)
                return 0;
        char *copy = strdup(list), *save = NULL;
        if (!copy)
                return -ENOMEM;
        int r = 0;
        for (char *name = strtok_r(copy, ", ", &save); name; name = strtok_r(NULL, ", ", &save)) {
                PyObject *m = PyImport_ImportModule(name);
                if (!m) {
                        fprintf(stderr, "mpspawn_python: cannot import '%s':\n", name);
                        PyErr_Print();
                        r = -ENOENT;
                        break;
                }
                Py_DECREF(m);
        }
        free(copy);
        return r;
}

/* Threads in the server after the imports: a preloaded module that started
 * one (a pool, a watchdog) would run Python beside the event loop and could
 * hold the GIL or a module lock at a fork; the job's after_fork would then
 * wait for it for good. The server is single-threaded until then. */
static int count_threads(void) {
        DIR *d = opendir("/proc/self/task");
        int n = 0;
        if (!d)
                return -errno;
        for (struct dirent *e; (e = readdir(d));)
                if (e->d_name[0] != '.')
                        n++;
        closedir(d);
        return n;
}

/* A private server (the package's own, started by and as its client) is
 * given the client's main module in $MPSPAWN_PYTHON_MAIN ("path:FILE" or
 * "name:MODULE") and imports it once, as multiprocessing's forkserver
 * preloads __main__: jobs whose target lives in __main__ then do not run
 * the client's script again. A shared server is never given one. */
static int preload_main(void) {
        const char *spec = getenv("MPSPAWN_PYTHON_MAIN");
        if (!spec || !*spec)
                return 0;
        PyObject *res = PyObject_CallMethod(helper, "preload_main", "s", spec);
        if (!res) {
                fprintf(stderr, "mpspawn_python: cannot import the client's main module (%s):\n",
                        spec);
                PyErr_Print();
                return -EINVAL;
        }
        Py_DECREF(res);
        return 0;
}

static int init(void) {
        int r = promote_libpython();
        if (r < 0)
                return r;
        Py_InitializeEx(0);
        if ((r = import_preloads()) < 0)
                goto out;
        PyObject *code = Py_CompileString(helper_src, "<mpspawn_job>", Py_file_input);
        if (!code || !(helper = PyImport_ExecCodeModule("_mpspawn_job", code))) {
                PyErr_Print();
                r = -EINVAL;
        }
        Py_XDECREF(code);
        if (r == 0) {
                code = Py_CompileString(mps__worker_src, "mpspawn_worker.py", Py_file_input);
                if (!code || !(worker_mod = PyImport_ExecCodeModule("_mpspawn_worker", code))) {
                        PyErr_Print();
                        r = -EINVAL;
                }
                Py_XDECREF(code);
        }
        if (r == 0)
                r = preload_main();
        if (r == 0 && count_threads() > 1) {
                fprintf(stderr, "mpspawn_python: a preloaded module started a thread; "
                                "jobs forked from this server could deadlock\n");
                r = -EDEADLK;
        }
        /* Everything imported so far moves to the permanent generation:
         * a job's collections then never walk (and so never write to, and
         * copy) the pages of the warm objects. Refcount writes still copy
         * the pages of the objects a job touches. */
        if (r == 0) {
                PyObject *gc = PyImport_ImportModule("gc");
                PyObject *x = gc ? PyObject_CallMethod(gc, "freeze", NULL) : NULL;
                if (!x)
                        PyErr_Print();
                Py_XDECREF(x);
                Py_XDECREF(gc);
        }
out:
        /* The GIL is released whatever happened, as the server may go on
         * to exit: a GIL held for good would only matter to a fork. */
        main_tstate = PyEval_SaveThread();
        return r;
}

static void after_fork(void) {
        PyEval_RestoreThread(main_tstate);
        PyOS_AfterFork_Child();
        /* Python's table of handlers is the server's, from init; the
         * real dispositions are the client's (the server reproduces its
         * ignored set and resets the rest). Hand the ignored set to the
         * helper, which makes Python's view match (SIGINT raises
         * KeyboardInterrupt unless ignored). */
        PyObject *ignored = PySet_New(NULL);
        for (int n = 1; ignored && n < NSIG; n++) {
                struct sigaction sa;
                if (sigaction(n, NULL, &sa) == 0 && sa.sa_handler == SIG_IGN) {
                        PyObject *v = PyLong_FromLong(n);
                        if (!v || PySet_Add(ignored, v) < 0)
                                Py_CLEAR(ignored);
                        Py_XDECREF(v);
                }
        }
        PyObject *sr = ignored ? PyObject_CallMethod(helper, "set_signals", "O", ignored) : NULL;
        if (!sr)
                PyErr_Print();
        Py_XDECREF(sr);
        Py_XDECREF(ignored);
        PyObject *items = PyList_New(0);
        for (char **e = environ; items && e && *e; e++) {
                PyObject *b = PyBytes_FromString(*e);
                if (!b || PyList_Append(items, b) < 0)
                        Py_CLEAR(items);
                Py_XDECREF(b);
        }
        PyObject *res = items ? PyObject_CallMethod(helper, "refresh_environ", "O", items) : NULL;
        if (!res)
                PyErr_Print();
        Py_XDECREF(res);
        Py_XDECREF(items);
}

static int run_python(const mps_call_context *ctx) {
        PyObject *res = PyObject_CallMethod(helper, "run", "s", ctx->args_json);
        int code = 0, r;
        const char *json = NULL, *summary = NULL;
        if (!res || !PyArg_ParseTuple(res, "isz", &code, &json, &summary)) {
                PyErr_Print();
                ctx->set_error(ctx, "mpspawn_python: the job helper failed (see stderr)");
                Py_XDECREF(res);
                return 2;
        }
        if ((r = ctx->set_result(ctx, json)) < 0) {
                char msg[256];
                snprintf(msg, sizeof(msg),
                         "mpspawn_python: result not stored (%s, %zu bytes of JSON; limit %d): "
                         "pass a result_fd",
                         strerror(-r), strlen(json), MPS_RESULT_MAX);
                ctx->set_error(ctx, msg);
                Py_DECREF(res);
                return 3;
        }
        if (summary)
                ctx->set_error(ctx, summary);
        Py_DECREF(res);
        /* multiprocessing's exit codes: 0 on return, 1 on an exception,
         * n for sys.exit(n) (the job's status keeps its low 8 bits). */
        return code;
}

/* "python_worker": the task channel is the fd its args name (channel_fd),
 * else the job's first mapped fd. */
static int run_worker(const mps_call_context *ctx) {
        if (ctx->nfds < 1) {
                ctx->set_error(ctx, "python_worker: map the task channel as the job's first fd");
                return 2;
        }
        PyObject *res = PyObject_CallMethod(worker_mod, "worker", "si", ctx->args_json, ctx->fds[0]);
        const char *json = res ? PyUnicode_AsUTF8(res) : NULL;
        if (!json) {
                /* The traceback goes to the job's stderr; its last line
                 * to the caller. */
                PyObject *type, *value, *tb;
                PyErr_Fetch(&type, &value, &tb);
                PyObject *s = value ? PyObject_Str(value) : NULL;
                const char *m = s ? PyUnicode_AsUTF8(s) : NULL;
                ctx->set_error(ctx, m ? m : "python_worker failed");
                PyErr_Restore(type, value, tb);
                PyErr_Print();
                Py_XDECREF(s);
                Py_XDECREF(res);
                return 1;
        }
        ctx->set_result(ctx, json);
        Py_DECREF(res);
        return 0;
}

MPS_MODULE(init, after_fork);
MPS_ENTRY("python", run_python);
MPS_ENTRY("python_worker", run_worker);
