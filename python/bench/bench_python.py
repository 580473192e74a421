"""Python benchmarks of the mpspawn package against multiprocessing (make bench-python).

Rows, side by side in one run with the same interpreter:
  (a) Process(target=noop) start+join: mpspawn, multiprocessing forkserver, fork;
  (b) the same with a heavy module preloaded (its import time is printed): mpspawn's
      and multiprocessing's set_forkserver_preload, and for fork an import in the parent;
      the job uses the module;
  (c) Pool(8).map(tiny, range(10000)): mpspawn.Pool against multiprocessing.Pool (its
      default context); pool creation shown on its own row, a warm-up map first.

Each row lives in a worker process of its own, because a preload (and a fork parent's
imports) cannot be undone once its server started. The parent sends the workers their
share of each round in turn (A/B/C/A/B/C...), so drift in the machine's load hits every
row alike. Times are wall clock per start+join (or per map): p50 and mean.

Options: --json, --scale F (repetitions), --rounds N, --heavy MODULE.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import bench_targets

HERE = os.path.dirname(os.path.abspath(__file__))
POOL_SIZE = 8
MAP_ITEMS = 10000
WARMUP_JOBS = 3

# (key, label, kind, section, jobs per round at --scale 1)
ROWS = [
    ("mps", "mpspawn.Process", "mps", "a", 60),
    ("mpfs", "mp forkserver Process", "mpfs", "a", 15),
    ("fork", "mp fork Process", "fork", "a", 60),
    ("mps-heavy", "mpspawn.Process + preload", "mps", "b", 60),
    ("mpfs-heavy", "mp forkserver + preload", "mpfs", "b", 15),
    ("fork-heavy", "mp fork, parent imported", "fork", "b", 60),
    ("mps-pool", "mpspawn.Pool(8).map", "mps-pool", "c", 10),
    ("mp-pool", "multiprocessing.Pool(8).map", "mp-pool", "c", 10),
]
BASELINE = {"a": "mpfs", "b": "mpfs-heavy", "c": "mp-pool"}
SECTION_TITLE = {
    "a": "(a) start+join of Process(target=noop)",
    "b": "(b) start+join, heavy module {heavy} preloaded; the job uses it",
    "c": "(c) Pool(%d).map(tiny, range(%d)), warm pool" % (POOL_SIZE, MAP_ITEMS),
}


# ---- worker side -----------------------------------------------------------------

def _start_join_runner(kind, heavy):
    """A function (n) -> [ns per start+join] for this kind of Process."""
    import multiprocessing
    if kind == "mps":
        import mpspawn
        if heavy:
            mpspawn.set_forkserver_preload([heavy])
        make = mpspawn.Process
    elif kind == "mpfs":
        ctx = multiprocessing.get_context("forkserver")
        # Keep the default __main__ preload (it brings bench_targets), as mpspawn does.
        ctx.set_forkserver_preload(["__main__", heavy] if heavy else ["__main__"])
        make = ctx.Process
    else:
        if heavy:
            __import__(heavy)
        make = multiprocessing.get_context("fork").Process
    target, args = (bench_targets.touch_heavy, (heavy,)) if heavy else (bench_targets.noop, ())

    def run(n):
        samples = []
        for _ in range(n):
            t0 = time.perf_counter_ns()
            proc = make(target=target, args=args)
            proc.start()
            proc.join()
            t1 = time.perf_counter_ns()
            if proc.exitcode != 0:
                raise RuntimeError("%s job exited with %r" % (kind, proc.exitcode))
            proc.close()
            samples.append(t1 - t0)
        return samples
    return run, {}


def _pool_runner(kind):
    """A function (n) -> [ns per map] on one warm pool, and its creation time."""
    t0 = time.perf_counter_ns()
    if kind == "mps-pool":
        import mpspawn
        pool = mpspawn.Pool(POOL_SIZE)
    else:
        import multiprocessing
        pool = multiprocessing.Pool(POOL_SIZE)
    created = time.perf_counter_ns() - t0
    items = range(MAP_ITEMS)
    expected = [bench_targets.tiny(x) for x in items]
    t0 = time.perf_counter_ns()
    first = pool.map(bench_targets.tiny, items)
    first_map = time.perf_counter_ns() - t0
    if first != expected:
        raise RuntimeError("%s: wrong map result" % kind)

    def run(n):
        samples = []
        for _ in range(n):
            t0 = time.perf_counter_ns()
            pool.map(bench_targets.tiny, items)
            samples.append(time.perf_counter_ns() - t0)
        return samples
    return run, {"create_ns": created, "first_map_ns": first_map}


def worker_main(kind, heavy):
    """Answers "run N" lines on stdin with a JSON list of samples on the real stdout.
    fd 1 goes to stderr so that nothing a job or server prints mixes with replies."""
    reply = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    if kind in ("mps-pool", "mp-pool"):
        run, info = _pool_runner(kind)
    else:
        run, info = _start_join_runner(kind, heavy)
        run(WARMUP_JOBS)  # starts the servers; not counted
    reply.write(json.dumps({"ready": True, **info}) + "\n")
    for line in sys.stdin:
        words = line.split()
        if words[:1] != ["run"]:
            break
        reply.write(json.dumps(run(int(words[1]))) + "\n")


# ---- parent side -----------------------------------------------------------------

class Worker:
    """One row's worker process, driven line by line."""

    def __init__(self, key, kind, heavy):
        self.key = key
        argv = [sys.executable, os.path.abspath(__file__), "--worker", kind]
        if heavy:
            argv += ["--heavy", heavy]
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, bufsize=1)
        self.samples = []
        self.info = self._read()
        self.info.pop("ready", None)

    def _read(self):
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("worker %s died (exit %r)" % (self.key, self.proc.wait()))
        return json.loads(line)

    def run(self, n):
        self.proc.stdin.write("run %d\n" % n)
        self.samples += self._read()

    def stop(self):
        self.proc.stdin.close()
        self.proc.wait()


def import_time_ms(module, tries=3):
    """The module's import in a fresh interpreter, median of a few tries."""
    code = "import time;t=time.perf_counter();import %s;print(time.perf_counter()-t)" % module
    times = [float(subprocess.run([sys.executable, "-c", code], check=True, text=True,
                                  capture_output=True).stdout) * 1e3 for _ in range(tries)]
    return statistics.median(times)


def stats_of(samples):
    ms = sorted(s / 1e6 for s in samples)
    n = len(ms)
    return {"n": n, "p50_ms": ms[max(0, (n + 1) // 2 - 1)], "mean_ms": statistics.fmean(ms),
            "min_ms": ms[0], "max_ms": ms[-1]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--scale", type=float, default=1.0, help="repetitions factor")
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds")
    parser.add_argument("--heavy", default=None, help="the heavy module of (b) (sympy)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.worker:
        return worker_main(opts.worker, opts.heavy)

    opts.heavy = opts.heavy or "sympy"
    heavy_ms = import_time_ms(opts.heavy)
    workers = []
    try:
        for key, _label, kind, section, _n in ROWS:
            workers.append(Worker(key, kind, opts.heavy if section == "b" else None))
        t0 = time.monotonic()
        for _ in range(opts.rounds):
            for worker, (_k, _l, _kind, _s, per_round) in zip(workers, ROWS):
                worker.run(max(1, round(per_round * opts.scale)))
        elapsed = time.monotonic() - t0
    finally:
        for worker in workers:
            worker.stop()

    rows = {}
    for worker, (key, label, _kind, section, _n) in zip(workers, ROWS):
        rows[key] = dict(label=label, section=section, **stats_of(worker.samples), **worker.info)
    for key, row in rows.items():
        base = rows[BASELINE[row["section"]]]
        row["speedup_p50"] = base["p50_ms"] / row["p50_ms"]
        row["speedup_mean"] = base["mean_ms"] / row["mean_ms"]
    targets = [
        ("start+join >= 10x faster than mp forkserver (p50)", rows["mps"]["speedup_p50"], ">=", 10),
        ("start+join with %s preloaded >= 10x faster (p50)" % opts.heavy,
         rows["mps-heavy"]["speedup_p50"], ">=", 10),
        ("Pool.map no slower than multiprocessing.Pool (p50)",
         rows["mps-pool"]["speedup_p50"], ">=", 1),
    ]
    result = {
        "python": sys.version.split()[0], "rounds": opts.rounds, "elapsed_s": elapsed,
        "heavy": {"module": opts.heavy, "import_ms": heavy_ms}, "rows": rows,
        "targets": [{"label": label, "value": value, "op": op, "limit": limit,
                     "result": "PASS" if value >= limit else "MISS"}
                    for label, value, op, limit in targets],
    }
    if opts.json:
        json.dump(result, sys.stdout, indent=2)
        print()
    else:
        print_table(result)


def print_table(result):
    rows = result["rows"]
    print("Python %s, %d interleaved rounds, %.1f s of measuring"
          % (result["python"], result["rounds"], result["elapsed_s"]))
    print("speedup = the section's baseline row / this row (mp forkserver for (a), (b);"
          " multiprocessing.Pool for (c))")
    for section in "abc":
        title = SECTION_TITLE[section].format(heavy=result["heavy"]["module"])
        if section == "b":
            title += "; import %s in a fresh python3: %.0f ms" % (
                result["heavy"]["module"], result["heavy"]["import_ms"])
        print()
        print(title)
        print("  %-30s %6s %10s %10s %9s %9s" % ("", "n", "p50 ms", "mean ms", "x p50", "x mean"))
        for row in rows.values():
            if row["section"] != section:
                continue
            print("  %-30s %6d %10.3f %10.3f %8.1fx %8.1fx" % (
                row["label"], row["n"], row["p50_ms"], row["mean_ms"],
                row["speedup_p50"], row["speedup_mean"]))
        if section == "c":
            for row in rows.values():
                if row["section"] == "c":
                    print("  %-30s create %.1f ms, first map %.1f ms" % (
                        row["label"], row["create_ns"] / 1e6, row["first_map_ns"] / 1e6))
    print()
    for t in result["targets"]:
        print("%s  %s: %.1fx (target %s %gx)" % (t["result"], t["label"], t["value"],
                                                t["op"], t["limit"]))


if __name__ == "__main__":
    main()
