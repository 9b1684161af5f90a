"""Seconds per distillation iteration, ours against the authors' code (issue #14), one side after the
other on one thread each, alternating run by run, the machine's load recorded before each run.

Sides: ``authors`` (VICO-UoE/DatasetCondensation ``main.py`` / ``main_DM.py`` from an export,
``VICO_REPO``, run unmodified), ``ours`` (``bench run``), and ``authors+malloc``: their code under the
glibc settings ours applies in-process (bench/core/allocator.py), given as ``MALLOC_*`` environment
variables, to show how much of a gap is the allocator and how much the code.

Their iterations are timed from their own log (a stamp every 10 iterations, 1 s resolution: the
seconds from the stamp after iteration 0 to the last, per iteration); ours from the record's phase
timers (matching + network updates over every iteration, the first included, which only counts
against us). Rows go to ``<out>/speed.jsonl`` at once; ``--summary`` prints the table.

    VICO_REPO=../authors/DatasetCondensation BENCH_DATA_ROOT=../shared/data \\
        python experiments/speed/side_by_side.py dm dc dsa --rounds 1
    python experiments/speed/side_by_side.py --summary
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "experiments" / "parity"))
from run_level import ONE_THREAD, authors_command, authors_seconds_per_iteration, load_average  # noqa: E402

# glibc's names for the settings bench.core.allocator makes with mallopt
AUTHORS_MALLOC = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(2**31 - 1), "MALLOC_TOP_PAD_": str(64 << 20)}

# method -> the authors' script and flags; MNIST, IPC 1, batch_real 256 (their default) throughout
CELLS = {
    "dc": dict(script="main.py", theirs=["--method", "DC", "--init", "real"], updates=11),
    "dsa": dict(script="main.py", theirs=["--method", "DSA", "--init", "real"], updates=11),
    "dm": dict(script="main_DM.py", theirs=["--init", "real"], updates=21),
}
IPC, BATCH_REAL = 1, 256


def time_authors(cell: dict, work: Path, malloc: bool) -> tuple[float, str]:
    cmd = authors_command(cell["script"], IPC, cell["updates"], BATCH_REAL, work, cell["theirs"])
    env = {**os.environ, **ONE_THREAD, **(AUTHORS_MALLOC if malloc else {})}
    out = subprocess.run(cmd, cwd=Path(os.environ["VICO_REPO"]).resolve(), env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"authors' {cell['script']} failed:\n{out.stderr[-2000:]}")
    return authors_seconds_per_iteration(out.stdout), " ".join(cmd[1:])


def time_ours(method: str, cell: dict, work: Path) -> tuple[float, str]:
    cmd = [sys.executable, "-m", "bench.cli", "run", "--method", method, "--dataset", "mnist", "--ipc", str(IPC),
           "--set", f"iterations={cell['updates']}", "--set", f"batch_real={BATCH_REAL}", "--eval-set", "epochs=1",
           "--eval-set", "num_models=1", "--out", str(work), "--force"]
    out = subprocess.run(cmd, cwd=ROOT, env={**os.environ, **ONE_THREAD}, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"bench run failed:\n{out.stderr[-2000:]}")
    record = json.loads(next(work.glob("runs/*/record.json")).read_text())
    phases = record["timings"]["phases"]
    seconds = phases.get("matching", 0.0) + phases.get("network_updates", 0.0)
    return seconds / cell["updates"], " ".join(cmd[3:])


def run(methods: list[str], rounds: int, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for k in range(rounds):
        for method in methods:
            cell = CELLS[method]
            for side in ("authors", "ours", "authors+malloc"):
                load = load_average()
                with tempfile.TemporaryDirectory() as work:
                    if side == "ours":
                        s_per_it, command = time_ours(method, cell, Path(work))
                    else:
                        s_per_it, command = time_authors(cell, Path(work), malloc=side == "authors+malloc")
                row = {"method": method, "dataset": "mnist", "ipc": IPC, "batch_real": BATCH_REAL, "side": side,
                       "round": k, "s_per_it": s_per_it, "load_before": load, "threads": 1,
                       "updates": cell["updates"], "command": command, "when": time.strftime("%Y-%m-%dT%H:%M:%S")}
                with (out / "speed.jsonl").open("a") as fh:
                    fh.write(json.dumps(row) + "\n")
                print(f"{method} {side} round {k}: {s_per_it:.2f} s/it (load before {load:.2f})", flush=True)


def summary(out: Path) -> None:
    rows = [json.loads(line) for line in (out / "speed.jsonl").read_text().splitlines()]
    print("| method | input | IPC | authors s/it | ours s/it | ours vs authors | authors + malloc s/it | ours vs that | load before |")
    print("|---|---|---|---|---|---|---|---|---|")
    for method in dict.fromkeys(r["method"] for r in rows):
        side = {s: np.median([r["s_per_it"] for r in rows if r["method"] == method and r["side"] == s])
                for s in ("authors", "ours", "authors+malloc")}
        loads = [r["load_before"] for r in rows if r["method"] == method]
        print(f"| {method} | 1x28x28 | {IPC} | {side['authors']:.2f} | {side['ours']:.2f} | "
              f"{side['authors'] / side['ours']:.2f}x | {side['authors+malloc']:.2f} | "
              f"{side['authors+malloc'] / side['ours']:.2f}x | {min(loads):.2f}-{max(loads):.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("methods", nargs="*", help=f"of {', '.join(CELLS)}")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "experiments" / "speed" / "results")
    parser.add_argument("--summary", action="store_true")
    args = parser.parse_args()
    if args.summary:
        summary(args.out)
    else:
        run(args.methods, args.rounds, args.out)


if __name__ == "__main__":
    main()
