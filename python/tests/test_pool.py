import errno
import signal
import threading
import time

import pytest

import mpspawn
from mpspawn import Call


def test_apply_argv_result_is_exit_code(server):
    with mpspawn.Pool(2, socket=server) as pool:
        assert pool.apply(["sh", "-c", "exit 5"]) == 5
        assert pool.apply(["sh", "-c", 'exit "$1"', "sh"], ("7",)) == 7


def test_map_call_in_order_and_failure_message(server):
    with mpspawn.Pool(4, socket=server) as pool:
        assert pool.map(Call("square"), range(10)) == [{"square": n * n} for n in range(10)]
        with pytest.raises(mpspawn.TaskError, match="unlucky 13"):
            pool.map(Call("square"), [12, 13, 14])
        assert pool.map(Call("square"), []) == []
        with pytest.raises(mpspawn.TaskError, match="killed by signal 9"):
            pool.apply(Call("square"), (66,))
        with pytest.raises(mpspawn.TaskError, match="exited with status 3"):
            pool.apply(Call("square"), (99,))


def test_sigkilled_worker_fails_its_task_and_pool_goes_on(server):
    with mpspawn.Pool(2, socket=server) as pool:
        r = pool.apply_async(["sh", "-c", "kill -KILL $$"])
        with pytest.raises(mpspawn.TaskError, match="signal 9") as e:
            r.get(10)
        assert e.value.exitcode == -signal.SIGKILL
        assert pool.apply(["true"]) == 0


def test_async_result_callbacks_run_before_get_returns(server):
    seen = []
    with mpspawn.Pool(2, socket=server) as pool:
        r = pool.apply_async(Call("result_echo"), ("hi",), callback=seen.append)
        assert r.get(10) == "hi" and seen == ["hi"] and r.ready() and r.successful()
        errs = []
        r = pool.apply_async(["/nonexistent/x"], error_callback=errs.append)
        with pytest.raises(OSError) as e:
            r.get(10)
        assert e.value.errno == errno.ENOENT and errs == [e.value]
        assert not r.successful()


def test_get_timeout_and_successful_not_ready(server):
    with mpspawn.Pool(1, socket=server) as pool:
        r = pool.apply_async(["sleep", "30"])
        with pytest.raises(ValueError):
            r.successful()
        with pytest.raises(mpspawn.TimeoutError):
            r.get(0.05)
        t = time.monotonic()
    assert time.monotonic() - t < 5  # exit = terminate: the sleep was ended
    assert r.ready() and not r.successful()


def test_join_before_close_is_value_error(server):
    pool = mpspawn.Pool(2, socket=server)
    with pytest.raises(ValueError):
        pool.join()
    r = pool.apply_async(["true"])
    pool.close()
    with pytest.raises(ValueError):
        pool.apply_async(["true"])
    pool.join()
    assert r.get(0) == 0


def test_terminate_cancels_queued(server):
    pool = mpspawn.Pool(1, socket=server)
    running = pool.apply_async(["sleep", "30"])
    queued = pool.apply_async(["true"])
    pool.terminate()
    with pytest.raises(mpspawn.TaskError, match="signal 15"):
        running.get(5)
    with pytest.raises(OSError) as e:
        queued.get(5)
    assert e.value.errno == errno.ECANCELED


def test_map_async_many_from_threads(server):
    with mpspawn.Pool(8, socket=server) as pool:
        out = {}

        def run(k):
            out[k] = pool.map(Call("square"), range(100 + 20 * k, 120 + 20 * k))

        ts = [threading.Thread(target=run, args=(k,)) for k in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(30)
        assert all(out[k] == [{"square": n * n} for n in range(100 + 20 * k, 120 + 20 * k)] for k in range(4))


def test_embedded_default_server(monkeypatch):
    monkeypatch.delenv("MPSPAWN_SOCKET", raising=False)
    with mpspawn.Pool(2) as pool:
        assert pool.map(["sh", "-c", 'exit "$1"', "sh"], ["1", "2", "3"]) == [1, 2, 3]


def test_starmap_imap_imap_unordered(server):
    fed = []

    def items():
        for n in range(6):
            fed.append(n)
            yield n

    with mpspawn.Pool(3, socket=server) as pool:
        assert pool.starmap(["sh", "-c", 'exit $(($1 + $2))', "sh"],
                            [("1", "2"), ("3", "4")]) == [3, 7]
        it = pool.imap(Call("square"), items())
        assert [next(it) for _ in range(6)] == [{"square": n * n} for n in range(6)]
        with pytest.raises(StopIteration):
            next(it)
        out = sorted(v["square"] for v in pool.imap_unordered(Call("square"), range(8)))
        assert out == sorted(n * n for n in range(8))
        it = pool.imap(Call("square"), [12, 13])
        assert next(it) == {"square": 144}
        with pytest.raises(mpspawn.TaskError, match="unlucky"):
            next(it)
