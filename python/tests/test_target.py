"""Process(target=): Python functions in the package's private Python server."""
import multiprocessing.connection
import os
import pickle
import select
import signal
import subprocess
import sys
import textwrap

import pytest

import mpspawn
import jobfuncs

from conftest import ROOT, needs_embedded_python

pytestmark = needs_embedded_python

PACKAGE_PATH = os.path.join(ROOT, "python")


def run(target, *args, **kwargs):
    p = mpspawn.Process(target=target, args=args, kwargs=kwargs)
    p.start()
    p.join(60)
    assert p.exitcode is not None, "the job did not end"
    return p


def test_result_args_kwargs_and_exitcode():
    p = run(jobfuncs.add, 2, y=40)
    assert p.exitcode == 0 and p.result == 42
    assert p.result == 42  # read twice


def test_exception_reraised_with_job_traceback(capfd):
    p = run(jobfuncs.raise_value_error, "no good")
    assert p.exitcode == 1  # as multiprocessing
    with pytest.raises(ValueError, match="no good") as e:
        p.result
    assert "raise_value_error" in "".join(getattr(e.value, "__notes__", []))
    assert "ValueError: no good" in capfd.readouterr().err  # printed by the job


def test_sys_exit_code():
    assert run(jobfuncs.exit_with, 7).exitcode == 7
    assert run(jobfuncs.exit_with, None).exitcode == 0


def test_callers_env_and_cwd_at_start(tmp_path, monkeypatch):
    monkeypatch.setenv("MPSPAWN_TEST_VAR", "from the caller")
    monkeypatch.chdir(tmp_path)
    st = run(jobfuncs.state).result
    assert st["env"] == "from the caller" and st["cwd"] == str(tmp_path)
    assert st["uid"] == os.getuid() and st["pid"] != os.getpid()


def test_env_argument_replaces_environment():
    p = mpspawn.Process(target=jobfuncs.state, env={"MPSPAWN_TEST_VAR": "given"})
    p.start()
    p.join(60)
    assert p.result["env"] == "given"


def test_killed_job_exitcode_and_result_names_signal():
    p = mpspawn.Process(target=jobfuncs.sleep, args=(60,))
    p.start()
    assert p.is_alive()
    p.kill()
    p.join(60)
    assert p.exitcode == -signal.SIGKILL
    with pytest.raises(mpspawn.TaskError, match="SIGKILL"):
        p.result


def test_start_twice_and_sentinel():
    p = mpspawn.Process(target=jobfuncs.sleep, args=(0.1,))
    p.start()
    with pytest.raises(AssertionError):
        p.start()
    assert multiprocessing.connection.wait([p.sentinel], timeout=30) == [p.sentinel]
    p.join()
    assert p.exitcode == 0


def test_one_mebibyte_result():
    assert run(jobfuncs.big, 1 << 20).result == b"x" * (1 << 20)


def test_pipe_end_as_argument():
    ours, theirs = mpspawn.Pipe()
    p = mpspawn.Process(target=jobfuncs.send_through, args=(theirs, {"k": [1, 2]}))
    p.start()
    theirs.close()
    assert ours.poll(30) and ours.recv() == {"k": [1, 2]}
    p.join(30)
    assert p.exitcode == 0


def test_unpicklable_target_fails_in_start():
    p = mpspawn.Process(target=lambda: 1)
    # What pickle raises for a local function (multiprocessing raises the same).
    with pytest.raises((pickle.PicklingError, AttributeError)):
        p.start()
    assert p.pid is None and p._result_memfd is None  # nothing started, nothing held


def test_ignored_sigint_stays_ignored():
    # Python's own handler is set explicitly for the second half: a pytest
    # started with SIGINT ignored (nohup, a background job of a
    # non-interactive shell) keeps it ignored, and so would its jobs.
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        assert run(jobfuncs.sigint_disposition).result == "ignored"
        signal.signal(signal.SIGINT, signal.default_int_handler)
        assert run(jobfuncs.sigint_disposition).result == "default_int"
    finally:
        signal.signal(signal.SIGINT, old)


def _python(code, *args, cwd=None, timeout=120):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [PACKAGE_PATH, os.path.dirname(__file__)]))
    return subprocess.run([sys.executable, *args] if code is None else
                          [sys.executable, "-c", code, *args],
                          capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)


MAIN_SCRIPT = textwrap.dedent("""\
    import os, sys
    import mpspawn
    print("imported as", __name__, file=sys.stderr)

    def f(x):
        return ("main function", x, __name__)

    if __name__ == "__main__":
        p = mpspawn.Process(target=f, args=(5,))
        p.start()
        p.join(60)
        print(p.exitcode, p.result)
    """)


def test_function_of_a_main_script(tmp_path):
    script = tmp_path / "main_script.py"
    script.write_text(MAIN_SCRIPT)
    r = _python(None, str(script))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "0 ('main function', 5, '__mp_main__')"
    # The script ran once here and once in the server (preloaded): its
    # __main__ block never ran again.
    assert r.stderr.count("imported as __main__") == 1


def test_function_of_a_dash_m_main(tmp_path):
    (tmp_path / "dash_m_main.py").write_text(MAIN_SCRIPT)
    r = _python(None, "-m", "dash_m_main", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "0 ('main function', 5, '__mp_main__')"


def test_failing_preload_stops_the_server_with_its_traceback(tmp_path):
    (tmp_path / "broken_preload.py").write_text("raise ImportError('broken on purpose')\n")
    code = textwrap.dedent("""\
        import sys, mpspawn, jobfuncs
        sys.path.insert(0, sys.argv[1])
        mpspawn.set_forkserver_preload(["json", "broken_preload"])
        try:
            mpspawn.Process(target=jobfuncs.add, args=(1,)).start()
        except RuntimeError as e:
            print("RuntimeError", e)
        """)
    r = _python(code, str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "RuntimeError" in r.stdout and "broken on purpose" in r.stdout
    assert "broken_preload" in r.stdout and "Traceback" in r.stdout


def _job_ends_with_its_killed_client(daemon, sig):
    """Starts a client that starts a sleeping target, kills the client with
    sig, and says whether the job ended within 30 s (waited on its pidfd)."""
    code = textwrap.dedent("""\
        import sys, time, mpspawn, jobfuncs
        p = mpspawn.Process(target=jobfuncs.sleep, args=(60,), daemon=sys.argv[1] == "1")
        p.start()
        print(p.pid, flush=True)
        time.sleep(60)
        """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([PACKAGE_PATH, os.path.dirname(__file__)]))
    c = subprocess.Popen([sys.executable, "-c", code, "1" if daemon else "0"],
                         stdout=subprocess.PIPE, env=env)
    try:
        pid = int(c.stdout.readline())
        fd = os.pidfd_open(pid)
    finally:
        c.send_signal(sig)
        c.wait()
        c.stdout.close()
    try:
        return select.select([fd], [], [], 30)[0] == [fd]
    finally:
        os.close(fd)


def test_client_killed_ends_daemon_target():
    assert _job_ends_with_its_killed_client(True, signal.SIGKILL), \
        "the daemon job outlived its client"


def test_client_killed_by_sigterm_ends_non_daemon_target():
    # multiprocessing's gh-80180: children outlive a parent killed with
    # SIGTERM. The private server ends with its client, and its jobs with it.
    assert _job_ends_with_its_killed_client(False, signal.SIGTERM), \
        "the job outlived its client"


def test_private_server_outlives_the_thread_that_started_it():
    # PR_SET_PDEATHSIG follows the thread that forked: a server started
    # from a short-lived thread must not end with it.
    code = textwrap.dedent("""\
        import threading, mpspawn, jobfuncs
        from mpspawn import _target
        def first():
            p = mpspawn.Process(target=jobfuncs.add, args=(1,))
            p.start(); p.join(60)
        t = threading.Thread(target=first); t.start(); t.join()
        pid = _target._server.proc.pid
        p = mpspawn.Process(target=jobfuncs.add, args=(2,))
        p.start(); p.join(60)
        print(p.result, _target._server.proc.pid == pid)
        """)
    r = _python(code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["2", "True"]


def test_unguarded_main_cannot_start_jobs_while_imported(tmp_path):
    # As multiprocessing: a script that starts jobs at import, without the
    # __main__ guard, gets a RuntimeError instead of recursing.
    script = tmp_path / "unguarded.py"
    script.write_text(textwrap.dedent("""\
        import mpspawn
        def f():
            return 1
        p = mpspawn.Process(target=f)
        p.start()
        p.join(60)
        print("result", p.result)
        """))
    r = _python(None, str(script))
    assert r.returncode != 0
    assert "bootstrapping phase" in r.stderr and "result" not in r.stdout


def test_job_waits_for_threads_and_runs_finalizers():
    ours, theirs = mpspawn.Pipe()
    p = mpspawn.Process(target=jobfuncs.leave_thread_and_finalizer, args=(theirs,))
    p.start()
    theirs.close()
    p.join(60)
    assert p.exitcode == 0 and p.result == "returned"
    got = []
    try:
        while ours.poll(0):  # all sent before the job ended, then EOF
            got.append(ours.recv())
    except EOFError:
        pass
    # multiprocessing's order: finalizers, then the wait for threads.
    assert got == ["finalized", "thread"]


def test_exit_joins_non_daemon_targets(tmp_path):
    # As multiprocessing: a non-daemon child is joined when the caller exits.
    marker = tmp_path / "marker"
    code = textwrap.dedent("""\
        import sys, mpspawn, jobfuncs
        mpspawn.Process(target=jobfuncs.write_later, args=(sys.argv[1], 0.3)).start()
        """)
    r = _python(code, str(marker))
    assert r.returncode == 0, r.stderr
    assert marker.read_text() == "done"
