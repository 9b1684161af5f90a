"""``bench``: parse, resolve, print. No science here.

Subcommands register themselves in :data:`COMMANDS` (name -> (help, add_arguments, main)); every
user error is a :class:`~bench.errors.BenchError`, printed as one line with exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable

from bench.errors import BenchError
from bench.registry import Registry

COMMANDS: Registry[tuple[str, Callable, Callable]] = Registry("command")


def command(name: str, help: str, arguments: Callable[[argparse.ArgumentParser], None]):
    def decorator(main: Callable):
        COMMANDS.register(name)((help, arguments, main))
        return main

    return decorator


def _split(text: str | None) -> list[str]:
    return [t.strip() for t in (text or "").split(",") if t.strip()]


def _ints(text: str, what: str) -> list[int]:
    try:
        return [int(t) for t in _split(text)]
    except ValueError:
        raise BenchError(f"malformed {what} {text!r}: use integers separated by commas") from None


# ------------------------------------------------------------------------------------------ run
def add_run_selection(p: argparse.ArgumentParser) -> None:
    """Arguments that describe a set of runs (shared with status-like commands)."""
    p.add_argument("--method", help="method name(s), comma separated (see `bench list`)")
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
    p.add_argument("--out", default="results", type=Path, help="results folder (default ./results)")
    p.add_argument("--data-root", type=Path, help="data root (default $BENCH_DATA_ROOT or ./data)")


def configs_from_args(args) -> list:
    from bench.config import RunConfig, SCALE_PRESETS, parse_overrides, parse_seeds
    from bench.datasets import DataOptions

    if getattr(args, "table", None) or getattr(args, "fig", None):  # a spec's grid (bench/grid.py)
        from bench.grid import configs_from_spec_args

        return configs_from_spec_args(args)
    methods, datasets = _split(args.method), _split(args.dataset)
    if not methods or not datasets or not args.ipc:
        raise BenchError("bench run needs --method, --dataset and --ipc (or --table/--fig where available)")
    ipcs = _ints(args.ipc, "IPC list")
    seeds = parse_seeds(args.seeds or "0")
    data = None
    if args.classes or args.max_train_per_class or args.max_test_per_class:
        base = SCALE_PRESETS.get(args.scale).data
        data = DataOptions(
            classes=args.classes or base.classes,
            max_train_per_class=args.max_train_per_class or base.max_train_per_class,
            max_test_per_class=args.max_test_per_class or base.max_test_per_class,
        )
    from methods import METHODS
    from methods.base import DREAM_INITIALISER, DREAM_SAMPLER

    configs = []
    for method in methods:
        method_cls = METHODS.get(method)
        sampler, initialiser = args.sampler, args.initialiser
        if args.dream:
            if method_cls.default_sampler is not None:
                sampler = sampler or DREAM_SAMPLER
            initialiser = initialiser or DREAM_INITIALISER
        for dataset in datasets:
            for ipc in ipcs:
                for seed in seeds:
                    configs.append(RunConfig(
                        method=method, dataset=dataset, ipc=ipc, seed=seed, model=args.model,
                        eval_models=tuple(_split(args.eval_models)), scale=args.scale, sampler=sampler,
                        initialiser=initialiser, params=parse_overrides(args.params, "--set"),
                        eval=parse_overrides(args.eval, "--eval-set"), data=data,
                    ))
    return configs


def prepare(configs: list, data_root: Path | None, out: Path) -> list:
    """Resolve and validate every config, and check the output folder, before anything runs."""
    from bench.config import resolve
    from bench.runner import validate
    from bench.store import check_writable

    resolved = [resolve(c) for c in configs]
    for r in resolved:
        validate(r, data_root)
    check_writable(out)
    return resolved


def print_summary(records: list[dict]) -> None:
    from tabulate import tabulate

    rows = [[r["config"]["label"], r["config"]["dataset"], r["config"]["ipc"], r["seed"], r["config"]["scale"],
             f"{r['accuracy']['mean']:.2f} ± {r['accuracy']['std']:.2f}", len(r["accuracy"]["per_model"][r["accuracy"]["model"]]["last"]),
             f"{r['timings']['total_s']:.1f}", r["run_id"]] for r in records]
    print(tabulate(rows, headers=["method", "dataset", "IPC", "seed", "scale", "acc % (models)", "n", "seconds", "run id"]))


def print_planned(resolved: list, out: Path) -> None:
    """``bench run --dry-run`` for plain method grids: what would run, and what is done already."""
    from tabulate import tabulate

    from bench.store import RunStore

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


@command("run", "run methods on datasets (skips runs whose record exists)", _run_args)
def cmd_run(args) -> int:
    from bench.runner import execute

    if args.executor == "slurm":
        from bench.launch import require_slurm

        require_slurm()  # one line, before anything is resolved or written
    if getattr(args, "table", None) or getattr(args, "fig", None):
        from bench.grid import spec_run_hook

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
        from bench.launch import launch

        status, records = launch(resolved, args.out, args.data_root, args.device, args.force, args.executor,
                                 args.profile, args.max_parallel)
        if records:
            print()
            print_summary(records)
        return status
    records = []
    for i, r in enumerate(resolved, 1):
        print(f"[{i}/{len(resolved)}] {r.label} {r.config.dataset} ipc={r.config.ipc} seed={r.config.seed} "
              f"scale={r.config.scale} ({r.run_id})", flush=True)
        record, ran = execute(r, args.out, args.data_root, args.device, args.force)
        if not ran:
            print("  done already: record exists (use --force to rerun)", flush=True)
        records.append(record)
    print()
    print_summary(records)
    return 0




# ------------------------------------------------------------------------------------------ list
KINDS = ["methods", "datasets", "models", "samplers", "initialisers", "protocols", "scales"]


@command("list", "list methods, datasets, models, samplers, initialisers, protocols and scales",
         lambda p: p.add_argument("kind", nargs="?", choices=KINDS))
def cmd_list(args) -> int:
    from bench.config import SCALE_PRESETS
    from bench.datasets import DATASETS
    from bench.evaluate import PROTOCOLS
    from bench.initialisers import INITIALISERS
    from bench.models import MODELS
    from bench.samplers import SAMPLERS
    from methods import METHODS

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
    from tabulate import tabulate

    from bench.aggregate import summarise
    from bench.store import RunStore

    frame = RunStore(args.out).frame()
    if frame.empty:
        raise BenchError(f"no records under {args.out}/runs")
    summary = summarise(frame)
    if args.csv:
        summary.to_csv(args.csv, index=False)
        print(f"wrote {args.csv}")
    shown = summary.assign(accuracy=[f"{m:.2f} ± {s:.2f}" for m, s in zip(summary["mean"], summary["std"])])
    cols = ["label", "dataset", "data_variant", "ipc", "scale", "eval_model", "accuracy", "seeds"]
    print(tabulate(shown[cols].values.tolist(), headers=["method", "dataset", "variant", "IPC", "scale",
                                                          "eval model", "acc % (mean ± std over seeds)", "seeds"],
                   tablefmt=args.format))
    return 0




# ------------------------------------------------------------------------------------------ main
def _load_command_modules() -> None:
    """Subcommands that live in their own modules register on import."""
    import importlib

    for module in ("bench.cmd_speed", "bench.cmd_tables", "bench.cmd_status", "bench.cmd_verify"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise


def build_parser() -> argparse.ArgumentParser:
    _load_command_modules()
    parser = argparse.ArgumentParser(prog="bench", description="DREAM-bench: dataset distillation harness")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS.names():
        help_text, add_arguments, _ = COMMANDS.get(name)
        add_arguments(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def main(argv: list[str] | None = None) -> int:
    from bench.store import code_version

    code_version()  # pin the code version this process runs (see store.code_version)
    parser = build_parser()
    args = parser.parse_args(argv)
    _, _, run = COMMANDS.get(args.command)
    try:
        return run(args) or 0
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished runs are in the store; rerun to complete the rest", file=sys.stderr)
        return 130


if __name__ == "__main__":
    # `python -m bench.cli`: run the imported module's main, whose COMMANDS the subcommand modules
    # (bench.cmd_*, which import bench.cli) register into; __main__'s own registry would miss them
    from bench.cli import main as _main

    sys.exit(_main())
