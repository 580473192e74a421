"""Pool with Python callables: long-lived python_worker jobs."""
import os
import signal
import threading

import pytest

import mpspawn
import jobfuncs

from conftest import needs_embedded_python

pytestmark = needs_embedded_python


def test_map_apply_starmap_in_order():
    with mpspawn.Pool(3) as pool:
        assert pool.map(jobfuncs.square, range(100)) == [x * x for x in range(100)]
        assert pool.map(jobfuncs.square, range(10), chunksize=1) == [x * x for x in range(10)]
        assert pool.apply(jobfuncs.add, (1,), {"y": 2}) == 3
        assert pool.starmap(jobfuncs.add, [(1, 2), (3, 4)]) == [3, 7]
        assert pool.map(jobfuncs.square, []) == []


def test_workers_are_long_lived():
    with mpspawn.Pool(2) as pool:
        pids = pool.map(jobfuncs.getpid, range(40), chunksize=1)
    assert 1 <= len(set(pids)) <= 2  # not one job per task


def test_task_exception_raised_with_worker_traceback():
    with mpspawn.Pool(2) as pool:
        with pytest.raises(ValueError, match="bad item") as e:
            pool.apply(jobfuncs.raise_value_error, ("bad item",))
        assert "raise_value_error" in "".join(getattr(e.value, "__notes__", []))


def test_first_failure_in_input_order():
    with mpspawn.Pool(2) as pool:
        with pytest.raises(TypeError, match="str"):  # "a" * "a" before None * None
            pool.map(jobfuncs.square, [1, "a", None, 4], chunksize=1)


def test_sigkilled_worker_fails_its_task_and_pool_goes_on():
    with mpspawn.Pool(2) as pool:
        with pytest.raises(mpspawn.TaskError, match="SIGKILL") as e:
            pool.starmap(jobfuncs.kill_self_on, [(x, 3) for x in range(6)], chunksize=1)
        assert e.value.exitcode == -signal.SIGKILL
        assert pool.map(jobfuncs.square, range(4)) == [0, 1, 4, 9]  # replaced


def test_maxtasksperchild_replaces_workers():
    with mpspawn.Pool(1, maxtasksperchild=1) as pool:
        pids = pool.map(jobfuncs.getpid, range(4), chunksize=1)
    assert len(set(pids)) == 4


def test_initializer_and_initargs():
    with mpspawn.Pool(2, initializer=jobfuncs.initialize, initargs=("set",)) as pool:
        assert pool.map(jobfuncs.initialized, range(4)) == ["set"] * 4


def test_failing_initializer_fails_tasks_instead_of_hanging():
    with mpspawn.Pool(2, initializer=jobfuncs.failing_initializer) as pool:
        with pytest.raises(RuntimeError, match="initializer failed on purpose"):
            pool.map(jobfuncs.square, range(4))
        r = pool.apply_async(jobfuncs.square, (2,))
        with pytest.raises(RuntimeError):
            r.get(60)


def test_callbacks_have_run_when_get_returns():
    seen = []
    with mpspawn.Pool(2) as pool:
        r = pool.apply_async(jobfuncs.square, (5,), callback=seen.append)
        assert r.get(60) == 25 and seen == [25] and r.successful()
        errors = []
        r = pool.apply_async(jobfuncs.raise_value_error, ("x",), error_callback=errors.append)
        with pytest.raises(ValueError):
            r.get(60)
        assert len(errors) == 1 and isinstance(errors[0], ValueError)
        m = pool.map_async(jobfuncs.square, range(5), callback=seen.append)
        assert m.get(60) == [0, 1, 4, 9, 16] and seen[-1] == [0, 1, 4, 9, 16]


def test_imap_consumes_lazily_and_unordered_complete():
    consumed = []
    first_seen = threading.Event()

    def items():
        for i in range(10):
            consumed.append(i)
            if i == 2:
                # Wait until the first result is out: a greedy consumer
                # would have taken everything before any result came back.
                first_seen.wait(60)
            yield i

    with mpspawn.Pool(2) as pool:
        it = pool.imap(jobfuncs.square, items())
        assert next(it) == 0
        assert len(consumed) < 10
        first_seen.set()
        assert list(it) == [x * x for x in range(1, 10)]
        assert sorted(pool.imap_unordered(jobfuncs.square, range(10))) == \
            sorted(x * x for x in range(10))


def test_join_before_close_and_terminate_kills():
    pool = mpspawn.Pool(1)
    r = pool.apply_async(jobfuncs.sleep, (60,))
    with pytest.raises(ValueError):
        pool.join()
    pid = pool.apply_async(jobfuncs.getpid)  # queued behind the sleep
    pool.terminate()
    pool.join()
    with pytest.raises(OSError):
        r.get(30)
    with pytest.raises(OSError):
        pid.get(30)


def test_close_join_runs_queued_tasks():
    pool = mpspawn.Pool(2)
    results = [pool.apply_async(jobfuncs.square, (i,)) for i in range(20)]
    pool.close()
    pool.join()
    assert [r.get(0) for r in results] == [i * i for i in range(20)]


def _open_fds():
    return set(os.listdir("/proc/self/fd"))


def test_two_hundred_workers_no_leaks(tmp_path):
    # The private server and the connection to it live on: start them first.
    with mpspawn.Pool(1) as pool:
        pool.apply(jobfuncs.square, (1,))
    before = _open_fds()
    pool = mpspawn.Pool(200)
    # (On a loaded machine the first worker up could run all 400 tasks
    # before another is ready: each task waits until a second worker runs.)
    pids = pool.map(jobfuncs.getpid_with_a_peer, [str(tmp_path)] * 400, chunksize=1)
    pool.close()
    pool.join()
    assert len(pids) == 400 and len(set(pids)) > 1
    for pid in set(pids):
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # ended and reaped: no zombie left
    leaked = {fd: os.readlink("/proc/self/fd/" + fd) for fd in _open_fds() - before
              if os.path.exists("/proc/self/fd/" + fd)}
    assert not leaked


def test_pipe_end_as_pool_task_argument_is_a_clear_error():
    ours, theirs = mpspawn.Pipe()
    with mpspawn.Pool(1) as pool:
        with pytest.raises(TypeError, match="Process target"):
            pool.apply(jobfuncs.send_through, (theirs, 1))
        assert pool.apply(jobfuncs.square, (3,)) == 9
    ours.close()
    theirs.close()
