"""bench/grid/workers.py: results as they finish, a worker's error raised in the parent, and every
worker gone (killed, reaped) when the parent leaves on an error, as on Ctrl-C."""

import math
import operator
import os
import time
from pathlib import Path

import pytest

from bench.grid.workers import KillableWorkers, WorkerFailed


def test_results_come_back_keyed_and_workers_exit_cleanly():
    with KillableWorkers(2) as pool:
        got = dict(pool.map_unordered(math.factorial, ((n, (n,)) for n in range(8))))
        pids = pool.pids
    assert got == {n: math.factorial(n) for n in range(8)}
    assert not any(Path(f"/proc/{p}").exists() for p in pids)


def test_a_workers_error_is_raised_in_the_parent_and_the_other_worker_is_killed():
    started = time.time()
    with pytest.raises(ZeroDivisionError):
        with KillableWorkers(2) as pool:
            pids = pool.pids
            calls = [("slow", time.sleep, (60,)), ("bad", operator.truediv, (1, 0))]
            for _ in pool.map_unordered(_call, ((k, (f, a)) for k, f, a in calls)):
                pass
    assert time.time() - started < 30, "the parent waited for the sleeping worker"
    assert not any(Path(f"/proc/{p}").exists() for p in pids)


def test_a_worker_that_dies_is_reported_not_awaited():
    with pytest.raises(WorkerFailed, match="died (before|while) running .victim."):
        with KillableWorkers(1) as pool:
            os.kill(pool.pids[0], 9)
            list(pool.map_unordered(math.factorial, [("victim", (3,))]))


def _call(fn, args):
    return fn(*args)
