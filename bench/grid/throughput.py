"""Grid throughput on this machine (``bench speed --grid-throughput``): one small grid run through the
local executor both ways the cores can be shared, alternating, in cells per hour.

* ``1 x N threads``: one cell at a time, each using all N cores (``--max-parallel 1``);
* ``N x 1 thread``: N cells at once, one torch thread each (the local executor's default).

Small convolutions do not keep two threads busy on a CPU, so the second way finishes more cells per
hour there (issue #14 measured 1.35x on 2 cores); on a GPU the first way is the one that applies.
Every round runs the whole grid afresh, into its own store under ``out_root``.
"""

from __future__ import annotations

import contextlib
import io
import os
import statistics
import time
from pathlib import Path

from bench.core.errors import BenchError
from bench.grid.launch import launch
from bench.run.config import RunConfig, resolve


def small_grid(method: str, dataset: str, ipc: int, cells: int, epochs: int) -> list[RunConfig]:
    """``cells`` seeds of one smoke-scale cell, each evaluated by one network for ``epochs`` epochs."""
    return [RunConfig(method=method, dataset=dataset, ipc=ipc, seed=seed, scale="smoke",
                      eval=(("epochs", epochs), ("num_models", 1))) for seed in range(cells)]


def grid_throughput(configs: list[RunConfig], data_root: Path | None, device: str, out_root: Path,
                    rounds: int = 1) -> list[dict]:
    """Run ``configs`` ``rounds`` times each way (alternating A B A B); per way the median wall time,
    cells per hour from it, and the mean accuracy (the same cells: the two ways must agree closely)."""
    cores = os.cpu_count() or 1
    ways = {f"1 x {cores} threads": 1, f"{cores} x 1 thread": cores}
    walls: dict[str, list[float]] = {way: [] for way in ways}
    accuracy: dict[str, list[float]] = {way: [] for way in ways}
    for k in range(rounds):
        for way, parallel in ways.items():
            resolved = [resolve(c) for c in configs]
            started = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):  # the launcher's per-cell lines: not this table's
                status, records = launch(resolved, out_root / f"round{k}-parallel{parallel}", data_root, device,
                                         force=False, executor="local", max_parallel=parallel)
            walls[way].append(time.perf_counter() - started)
            if status != 0 or len(records) != len(configs):
                raise BenchError(f"grid throughput: {way} finished {len(records)} of {len(configs)} cells "
                                 f"(logs under {out_root})")
            accuracy[way] += [r["accuracy"]["mean"] for r in records]
            print(f"  round {k + 1}/{rounds}, {way}: {len(records)} cells in {walls[way][-1]:.1f} s", flush=True)
    rows = []
    for way, parallel in ways.items():
        wall = statistics.median(walls[way])
        rows.append({"way": way, "parallel": parallel, "threads": max(1, cores // parallel), "cells": len(configs),
                     "wall_s": wall, "cells_per_hour": 3600 * len(configs) / wall,
                     "mean_accuracy": statistics.fmean(accuracy[way])})
    return rows
