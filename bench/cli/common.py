"""What every command shares: the command registry, list parsing, the run-selection arguments and
their expansion into run configs, and the validation a command does before any work starts."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Callable

from tabulate import tabulate

from bench.cli.grid_args import configs_from_spec_args
from bench.cli.parsing import check_subset_options, int_list, split_list  # noqa: F401  (commands import them from here)
from bench.core.errors import BenchError
from bench.core.registry import Registry
from bench.data.datasets import DataOptions
from bench.dream.compose import method_and_dream
from bench.report.aggregate import mean_spread
from bench.run.config import AMP_MODES, SCALE_PRESETS, RunConfig, parse_overrides, parse_seeds, resolve
from bench.run.runner import validate
from bench.run.store import check_writable

COMMANDS: Registry[tuple[str, Callable, Callable]] = Registry("command")


def command(name: str, help: str, arguments: Callable[[argparse.ArgumentParser], None]):
    def decorator(main: Callable):
        COMMANDS.register(name)((help, arguments, main))
        return main

    return decorator


def add_run_selection(p: argparse.ArgumentParser) -> None:
    """Arguments that describe a set of runs (shared with status-like commands)."""
    p.add_argument("--method", help="method name(s), comma separated (see `bench list`); NAME+dream composes "
                                    "DREAM with it, so `--method dm,dm+dream` runs both")
    p.add_argument("--dataset", help="dataset name(s), comma separated")
    p.add_argument("--ipc", help="images per class, comma separated")
    p.add_argument("--seeds", help="seeds: 0-4, 0,2,5 or 3 (default 0; with --table/--fig: the spec's)")
    p.add_argument("--model", default="convnet3", help="network to distil/select with (default convnet3)")
    p.add_argument("--eval-models", help="networks to evaluate with, comma separated (default: --model)")
    p.add_argument("--scale", default="paper", choices=["smoke", "reduced", "paper"], help="compute preset")
    p.add_argument("--dream", action="store_true", help="DREAM: representative sampler + cluster initialiser")
    p.add_argument("--sampler", help="real-batch sampler (overrides --dream's)")
    p.add_argument("--init", dest="initialiser", help="initialiser (overrides --dream's)")
    p.add_argument("--set", dest="params", action="append", default=[], metavar="KEY=VALUE",
                   help="method hyperparameter override (repeatable)")
    p.add_argument("--eval-set", dest="eval", action="append", default=[], metavar="KEY=VALUE",
                   help="evaluation protocol override, e.g. epochs=300 num_models=5 (repeatable)")
    p.add_argument("--classes", type=int, help="use only the first N classes")
    p.add_argument("--max-train-per-class", type=int, help="use only the first N training images per class")
    p.add_argument("--max-test-per-class", type=int, help="use only the first N test images per class")
    p.add_argument("--amp", default="off", choices=AMP_MODES,
                   help="mixed precision for the distillation (bfloat16 autocast; evaluation stays float32); "
                        "part of the run id; default off")
    p.add_argument("--out", default="results", type=Path, help="results folder (default ./results)")
    p.add_argument("--data-root", type=Path, help="data root (default $BENCH_DATA_ROOT or ./data)")


def configs_from_args(args) -> list:
    configs = _configs(args)
    amp = getattr(args, "amp", "off")
    return configs if amp == "off" else [dataclasses.replace(c, amp=amp) for c in configs]


def _configs(args) -> list:
    check_subset_options(args)
    if getattr(args, "table", None) or getattr(args, "fig", None):  # a spec's grid (bench/grid/cells.py)
        return configs_from_spec_args(args)
    methods, datasets = split_list(args.method), split_list(args.dataset)
    if not methods or not datasets or not args.ipc:
        raise BenchError("bench run needs --method, --dataset and --ipc (or --table/--fig where available)")
    ipcs = int_list(args.ipc, "IPC list")
    seeds = parse_seeds(args.seeds or "0")
    data = None
    if args.classes or args.max_train_per_class or args.max_test_per_class:
        base = SCALE_PRESETS.get(args.scale).data
        data = DataOptions(
            classes=args.classes or base.classes,
            max_train_per_class=args.max_train_per_class or base.max_train_per_class,
            max_test_per_class=args.max_test_per_class or base.max_test_per_class,
        )
    configs = []
    for name in methods:
        method, dream = method_and_dream(name, args.dream)
        for dataset in datasets:
            for ipc in ipcs:
                for seed in seeds:
                    configs.append(RunConfig(
                        method=method, dataset=dataset, ipc=ipc, seed=seed, model=args.model,
                        eval_models=tuple(split_list(args.eval_models)), scale=args.scale, dream=dream,
                        sampler=args.sampler, initialiser=args.initialiser, params=parse_overrides(args.params, "--set"),
                        eval=parse_overrides(args.eval, "--eval-set"), data=data,
                    ))
    return configs


def prepare(configs: list, data_root: Path | None, out: Path) -> list:
    """Resolve and validate every config, and check the output folder, before anything runs."""
    resolved = [resolve(c) for c in configs]
    for r in resolved:
        validate(r, data_root)
    check_writable(out)
    return resolved


def print_summary(records: list[dict]) -> None:
    rows = []
    for r in records:
        acc = r["accuracy"]
        primary = acc["per_model"].get(acc["model"], {}) if "per_model" in acc else {}
        n = len(primary.get("last", [])) or 1
        flag = " ! at chance" if primary.get("at_chance") else ""
        rows.append([r["config"]["label"], r["config"]["dataset"], r["config"]["ipc"], r["seed"], r["config"]["scale"],
                     mean_spread(acc["mean"], acc["std"], n) + flag, n, f"{r['timings']['total_s']:.1f}", r["run_id"]])
    print(tabulate(rows, headers=["method", "dataset", "IPC", "seed", "scale", "acc % (models)", "n", "seconds", "run id"]))
