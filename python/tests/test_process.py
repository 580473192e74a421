import errno
import multiprocessing.connection
import os
import select
import selectors
import signal
import time

import pytest

import mpspawn


def test_exitcode_and_pid(server):
    p = mpspawn.Process(["sh", "-c", "exit 42"], socket=server)
    assert p.exitcode is None and p.pid is None and not p.is_alive()
    p.start()
    assert p.pid > 0
    p.join()
    assert p.exitcode == 42 and not p.is_alive()
    p.close()
    with pytest.raises(ValueError):
        p.is_alive()


def test_start_twice_is_assertion_error(server):
    p = mpspawn.Process(["true"], socket=server)
    p.start()
    with pytest.raises(AssertionError):
        p.start()
    p.join()


def test_signal_exitcode_and_negative_join(server):
    p = mpspawn.Process(["sleep", "30"], socket=server)
    p.start()
    t = time.monotonic()
    p.join(-1)  # returns at once, as multiprocessing
    assert time.monotonic() - t < 1 and p.is_alive() and p.exitcode is None
    with pytest.raises(ValueError):
        p.close()  # still running
    p.kill()
    p.join()
    assert p.exitcode == -signal.SIGKILL


def test_exec_failure_is_oserror(server):
    p = mpspawn.Process(["/nonexistent/program"], socket=server)
    with pytest.raises(OSError) as e:
        p.start()
    assert e.value.errno == errno.ENOENT


def test_sentinel_works_with_wait_select_selectors(server):
    p = mpspawn.Process(["sh", "-c", "sleep 0.2"], socket=server)
    p.start()
    assert multiprocessing.connection.wait([p.sentinel], timeout=0) == []
    assert multiprocessing.connection.wait([p.sentinel], timeout=10) == [p.sentinel]
    assert select.select([p.sentinel], [], [], 0)[0] == [p.sentinel]
    with selectors.DefaultSelector() as sel:
        sel.register(p.sentinel, selectors.EVENT_READ)
        assert sel.select(0)
    p.join()
    assert p.exitcode == 0


def test_env_replaces_and_cwd(server, tmp_path):
    r, w = os.pipe()
    p = mpspawn.Process(["/bin/sh", "-c", 'echo "$FOO:${HOME-unset}:$(pwd)"'],
                        env={"FOO": "bar"}, cwd=str(tmp_path), stdout=w, socket=server)
    p.start()
    os.close(w)
    p.join()
    out = os.read(r, 4096).decode().strip()
    os.close(r)
    assert out == "bar:unset:%s" % tmp_path


def test_call_result_and_error(server):
    p = mpspawn.Process(call="result_echo", call_args={"a": [1, 2], "s": "x"}, socket=server)
    p.start()
    p.join()
    assert p.exitcode == 0 and p.result == {"a": [1, 2], "s": "x"}
    p = mpspawn.Process(call="error_set", call_args=3, socket=server)
    p.start()
    p.join()
    assert p.exitcode == 3
    with pytest.raises(mpspawn.TaskError, match="bad input"):
        p.result


def test_unknown_entry_is_oserror(server):
    with pytest.raises(OSError) as e:
        mpspawn.Process(call="no_such_entry", socket=server).start()
    assert e.value.errno == errno.ENOENT


def test_join_is_interruptible(server):
    p = mpspawn.Process(["sleep", "30"], socket=server)
    p.start()
    old = signal.signal(signal.SIGALRM, lambda *a: (_ for _ in ()).throw(KeyboardInterrupt))
    signal.setitimer(signal.ITIMER_REAL, 0.2)
    t = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            p.join()
    finally:
        signal.signal(signal.SIGALRM, old)
    assert time.monotonic() - t < 5
    p.kill()
    p.join()


def _gone(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(") ")[1][0] == "Z"
    except (FileNotFoundError, ProcessLookupError):  # ESRCH: reaped between open and read
        return True


def test_client_killed_ends_daemon_children(server):
    import subprocess, sys
    code = ("import mpspawn, sys, time\n"
            "p = mpspawn.Process(['sleep', '30'], daemon=True, socket=sys.argv[1])\n"
            "q = mpspawn.Process(['sleep', '30'], socket=sys.argv[1])\n"
            "p.start(); q.start(); print(p.pid, q.pid, flush=True); time.sleep(60)\n")
    env = dict(os.environ, PYTHONPATH=os.path.join(os.path.dirname(__file__), ".."))
    c = subprocess.Popen([sys.executable, "-c", code, server], stdout=subprocess.PIPE, env=env)
    daemon_pid, other_pid = map(int, c.stdout.readline().split())
    daemon_fd, other_fd = os.pidfd_open(daemon_pid), os.pidfd_open(other_pid)
    try:
        c.kill()
        c.wait()
        # A pidfd turns readable when its process ends: no polling.
        assert select.select([daemon_fd], [], [], 20)[0] == [daemon_fd]
        assert not _gone(other_pid)  # a non-daemon job runs on, as the C API says
    finally:
        signal.pidfd_send_signal(other_fd, signal.SIGKILL)
        select.select([other_fd], [], [], 20)
        os.close(daemon_fd)
        os.close(other_fd)


def test_get_context_and_pipe(server):
    ctx = mpspawn.get_context()
    assert ctx.cpu_count() >= 1
    a, b = ctx.Pipe()
    # stdout= rather than pass_fds: dash's >&N takes one digit only.
    p = ctx.Process(["printf", "hi"], stdout=b, socket=server)
    p.start()
    p.join()
    assert p.exitcode == 0
    assert select.select([a], [], [], 5)[0] == [a] and os.read(a.fileno(), 2) == b"hi"
    r, w = os.pipe()
    p = ctx.Process(["python3", "-c", "import os; os.write(%d, b'ok')" % w], pass_fds=[w],
                    socket=server)
    p.start()
    os.close(w)
    p.join()
    assert p.exitcode == 0 and os.read(r, 2) == b"ok"
    os.close(r)
