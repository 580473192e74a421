#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""bench_mp.py: what Python's multiprocessing pays per Process, for `make bench`.

For each start method given (forkserver, fork, spawn), times
Process(target=noop).start() + join() REPS times after a few unmeasured
rounds (the first forkserver start launches the forkserver itself; the
warm-up keeps that out of the figures), with time.monotonic_ns()
(CLOCK_MONOTONIC, as the C harness). Prints one line per method:

    mp METHOD REPS P50_NS P99_NS JOBS_PER_S

and with --raw first one line per sample, "sample METHOD NS": tests/bench.c
runs it a block at a time that way and computes the figures itself. It is
usable alone too:

    python3 tests/bench_mp.py forkserver:300 fork:500 spawn:40
"""
import multiprocessing as mp
import sys
import time


def noop():
    pass


def percentile(sorted_ns, p):
    """The nearest-rank percentile of an already sorted list, as bench.c."""
    n = len(sorted_ns)
    k = max(0, min(n - 1, -(-p * n // 100) - 1))
    return sorted_ns[k]


def bench(method, reps, warmup, raw):
    ctx = mp.get_context(method)
    for _ in range(warmup):
        p = ctx.Process(target=noop)
        p.start()
        p.join()
    samples = []
    t_all = time.monotonic_ns()
    for _ in range(reps):
        t0 = time.monotonic_ns()
        p = ctx.Process(target=noop)
        p.start()
        p.join()
        samples.append(time.monotonic_ns() - t0)
        if p.exitcode != 0:
            raise SystemExit(f"bench_mp: {method}: exit code {p.exitcode}")
    elapsed = time.monotonic_ns() - t_all
    if raw:
        for ns in samples:
            print(f"sample {method} {ns}")
    samples.sort()
    print(f"mp {method} {reps} {percentile(samples, 50)} "
          f"{percentile(samples, 99)} {reps / (elapsed / 1e9):.1f}", flush=True)


def main(argv):
    raw = "--raw" in argv[1:]
    args = [a for a in argv[1:] if a != "--raw"]
    if not args:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    for arg in args:
        method, _, n = arg.partition(":")
        reps = int(n) if n else 200
        # A spawn start is a whole new interpreter: one warm-up is enough.
        warmup = 1 if method == "spawn" else max(3, reps // 20)
        bench(method, reps, warmup, raw)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
