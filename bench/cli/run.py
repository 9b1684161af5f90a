"""``bench run``, ``bench list`` and ``bench results``."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from tabulate import tabulate

from bench.cli.common import add_run_selection, command, configs_from_args, prepare, print_summary
from bench.cli.grid_args import spec_run_hook
from bench.core.errors import BenchError
from bench.core.seeding import DETERMINISTIC_ENV
from bench.data.datasets import DATASETS
from bench.dream.compose import INITIALISERS, SAMPLERS
from bench.evaluation.evaluate import PROTOCOLS, TOGETHER_ENV
from bench.grid.launch import launch, require_slurm
from bench.nets.models import MODELS
from bench.report.aggregate import mean_spread, summarise
from bench.run.config import SCALE_PRESETS
from bench.run.distill import CHANCE_FACTOR
from bench.run.runner import execute
from bench.run.store import RunStore
from methods import METHODS


def print_planned(resolved: list, out: Path) -> None:
    """``bench run --dry-run`` for plain method grids: what would run, and what is done already."""
    store = RunStore(out)
    rows = [[i, r.label, r.config.dataset, r.config.ipc, r.config.seed, r.config.scale, r.run_id,
             "done" if store.has_record(r.run_id) else "to run"] for i, r in enumerate(resolved, 1)]
    print(tabulate(rows, headers=["#", "method", "dataset", "IPC", "seed", "scale", "run id", "status"]))
    done = sum(row[-1] == "done" for row in rows)
    print(f"\n{len(rows)} runs: {done} done, {len(rows) - done} to run")


def _run_args(p: argparse.ArgumentParser) -> None:
    add_run_selection(p)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:k]")
    p.add_argument("--force", action="store_true", help="rerun even when a record exists")
    p.add_argument("--eval-together", action="store_true",
                   help="train each run's evaluation networks together (torch.func.vmap) instead of one after "
                        "another: the same accuracies up to float rounding (bench speed --evaluation times both)")
    p.add_argument("--deterministic", action="store_true",
                   help="GPU: deterministic cuDNN algorithms, no autotuning (slower; grid_sample's backward stays "
                        "non-deterministic); recorded in each record's device field. CPU runs repeat either way")
    p.add_argument("--print-config", action="store_true", help="print the resolved configs and exit")
    p.add_argument("--executor", choices=["debug", "local", "slurm"],
                   help="run through submitit: debug (in-process), local (subprocesses), slurm (job arrays); "
                        "default: in this process, one after another")
    p.add_argument("--profile", help="cluster profile: a name in slurm/profiles (or $BENCH_PROFILES, "
                                     "~/.config/dream-bench/profiles) or a path to a .toml file")
    p.add_argument("--max-parallel", type=int, help="local: processes at once; slurm: array tasks at once "
                                                    "(overrides the profile's array_parallelism)")
    p.add_argument("--table", help="run the grid of tables/tableN.toml (e.g. 1); see `bench tables --list`")
    p.add_argument("--fig", help="run the grid of figures/figX.toml (e.g. 4b)")
    p.add_argument("--datasets", help="with --table/--fig: these datasets instead of the spec's (e.g. digits)")
    p.add_argument("--dry-run", action="store_true", help="list the runs (or a spec's cells), their ids and "
                                                          "status, and run nothing")


def _duration(seconds: float) -> str:
    if seconds >= 5400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def _kind(r) -> tuple:
    return r.label, r.config.dataset, r.config.ipc


def _remaining(spent: dict, left: list) -> float:
    """Seconds for the runs left: each at the mean of finished runs of its method, dataset and IPC,
    or of all finished runs when none of its kind has finished yet."""
    overall = statistics.fmean(t for times in spent.values() for t in times)
    return sum(statistics.fmean(spent[_kind(r)]) if _kind(r) in spent else overall for r in left)


def print_plan(resolved: list, out: Path) -> None:
    """Before a grid starts: its scale, what that means, and a cost estimate from the store's own
    earlier runs of the same method, dataset, IPC and scale (the only numbers measured here)."""
    store = RunStore(out)
    todo = [r for r in resolved if not store.has_record(r.run_id)]
    scales = sorted({r.config.scale for r in resolved})
    evals = sorted({(r.protocol.epochs, r.protocol.num_models) for r in todo})
    what = "; ".join(f"evaluation {e} epochs x {m} network(s)" for e, m in evals)
    print(f"{len(resolved)} run(s) at scale {', '.join(scales)}: {len(todo)} to run, {len(resolved) - len(todo)} done"
          + (f" ({what})" if what else ""), flush=True)
    seconds: dict[tuple, list[float]] = {}
    for rec in store.records():
        cfg = rec["config"]
        seconds.setdefault((cfg["label"], cfg["dataset"], cfg["ipc"], cfg["scale"]), []).append(rec["timings"]["total_s"])
    known = [statistics.fmean(seconds[k]) for k in ((r.label, r.config.dataset, r.config.ipc, r.config.scale)
                                                    for r in todo) if k in seconds]
    if todo and known:
        guess = statistics.fmean(known) * len(todo)
        print(f"estimated {_duration(guess)} from {len(known)} of them measured in {out} before"
              + ("" if len(known) == len(todo) else " (the rest assumed alike)"), flush=True)
    elif todo and "paper" in scales:
        print("scale paper is the authors' full budget: hours per synthesis run on a CPU (DC, MNIST, IPC 1: about "
              "4 h a seed on 2 cores); --scale smoke or reduced for a quick look", flush=True)


@command("run", "run methods on datasets (skips runs whose record exists)", _run_args)
def cmd_run(args) -> int:
    if args.deterministic:  # the runner reads it, here and in executors' subprocesses and jobs
        os.environ[DETERMINISTIC_ENV] = "1"
    if args.eval_together:
        os.environ[TOGETHER_ENV] = "1"
    if args.executor == "slurm":
        require_slurm()  # one line, before anything is resolved or written
    if getattr(args, "table", None) or getattr(args, "fig", None):
        if spec_run_hook(args):  # --dry-run, continual-learning grids
            return 0
    configs = configs_from_args(args)
    resolved = prepare(configs, args.data_root, args.out)
    if args.print_config:
        print(json.dumps([dict(r.as_dict(), run_id=r.run_id) for r in resolved], indent=1))
        return 0
    if args.dry_run:
        print_planned(resolved, args.out)
        return 0
    if args.executor:
        status, records = launch(resolved, args.out, args.data_root, args.device, args.force, args.executor,
                                 args.profile, args.max_parallel)
        if records:
            print()
            print_summary(records)
        return status
    print_plan(resolved, args.out)
    records, spent = [], {}
    for i, r in enumerate(resolved, 1):
        print(f"[{i}/{len(resolved)}] {r.label} {r.config.dataset} ipc={r.config.ipc} seed={r.config.seed} "
              f"scale={r.config.scale} ({r.run_id})", flush=True)
        started = time.perf_counter()
        record, ran = execute(r, args.out, args.data_root, args.device, args.force)
        if not ran:
            print("  done already: record exists (use --force to rerun)", flush=True)
        else:
            spent.setdefault(_kind(r), []).append(time.perf_counter() - started)
            left = resolved[i:]
            eta = f"; about {_duration(_remaining(spent, left))} for the {len(left)} left" if left else ""
            print(f"  {record['accuracy']['mean']:.2f} % in {_duration(spent[_kind(r)][-1])}{eta}", flush=True)
        records.append(record)
    print()
    print_summary(records)
    return 0


# ------------------------------------------------------------------------------------------ list
KINDS = ["methods", "datasets", "models", "samplers", "initialisers", "protocols", "scales"]


@command("list", "list methods, datasets, models, samplers, initialisers, protocols and scales",
         lambda p: p.add_argument("kind", nargs="?", choices=KINDS))
def cmd_list(args) -> int:
    kinds = {"methods": METHODS, "datasets": DATASETS, "models": MODELS, "samplers": SAMPLERS,
             "initialisers": INITIALISERS, "protocols": PROTOCOLS, "scales": SCALE_PRESETS}
    for kind in [args.kind] if args.kind else kinds:
        print(f"{kind}: {', '.join(kinds[kind].names())}")
    return 0


# ------------------------------------------------------------------------------------------ results
def _results_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="results", type=Path, help="results folder (default ./results)")
    p.add_argument("--csv", type=Path, help="also write the summary as CSV")
    p.add_argument("--format", default="github", help="tabulate format (github, latex_booktabs, plain...)")


@command("results", "mean ± std over seeds per (method, dataset, IPC) from the results folder", _results_args)
def cmd_results(args) -> int:
    frame = RunStore(args.out).frame()
    if frame.empty:
        raise BenchError(f"no records under {args.out}/runs")
    summary = summarise(frame)
    if args.csv:
        summary.to_csv(args.csv, index=False)
        print(f"wrote {args.csv}")
    flags = [f"  ! {k} run(s) at chance" if k else "" for k in summary["at_chance"]]
    shown = summary.assign(accuracy=[mean_spread(m, s, n) + flag for m, s, n, flag
                                     in zip(summary["mean"], summary["std"], summary["seeds"], flags)])
    cols = ["label", "dataset", "data_variant", "ipc", "scale", "eval_model", "accuracy", "seeds"]
    print(tabulate(shown[cols].values.tolist(), headers=["method", "dataset", "variant", "IPC", "scale",
                                                          "eval model", "acc % (mean ± std over seeds)", "seeds"],
                   tablefmt=args.format))
    if any(flags):
        print(f"! at chance: the run's accuracy is at most {CHANCE_FACTOR:g}x chance (100 / classes); its networks "
              "learnt nothing (check --eval-set lr and the synthetic set)")
    return 0
