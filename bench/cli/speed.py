"""``bench speed``: seconds per iteration and peak memory of every synthesis method at a fixed small
config (28x28x1 and 32x32x3 inputs, IPC 1 and 10), on the current device.

Without ``--data-root`` the images are random tensors of the right shape (timings do not depend on
pixel values); with it, MNIST (and CIFAR-10, when present) are loaded from there. ``--mode``
picks the matching loop: ``per-class`` (the authors' loop, the methods' default), ``batched`` (all
classes in one pass, same maths) or ``both``, which times each cell both ways and prints the ratio.
Peak memory: CUDA's max allocated, or on CPU the peak resident set size sampled every 5 ms during
the run, minus the resident size before it.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch
from tabulate import tabulate

from bench.cli.common import command, split_list
from bench.grid.throughput import grid_throughput, small_grid
from bench.run.config import parse_overrides
from bench.run.runner import configure_threads, pick_device
from bench.run.timing import meta_gradient_memory, time_evaluation, time_method, timing_dataset
from methods import METHODS


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--methods", help="methods to time (default dc,dsa,dm; --grid-throughput: dm)")
    p.add_argument("--datasets", help="input shapes: mnist (28x28x1), cifar10 (32x32x3) (default both; "
                                      "--grid-throughput: the dataset of the grid, default digits)")
    p.add_argument("--ipc", help="IPCs (default 1,10; --grid-throughput: 10)")
    p.add_argument("--iterations", type=int, default=1, help="iterations timed per cell (default 1)")
    p.add_argument("--mode", choices=("per-class", "batched", "both"), default="both",
                   help="matching loop to time: per-class (the default of the methods), batched, or both "
                        "with the per-class/batched ratio (default both)")
    p.add_argument("--set", dest="params", action="append", default=[], metavar="KEY=VALUE",
                   help="method parameter override for every cell, e.g. batch_real=128 (repeatable)")
    p.add_argument("--data-root", type=Path, help="load real MNIST/CIFAR-10 from here (default: random tensors)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:k]")
    p.add_argument("--evaluation", action="store_true",
                   help="time the evaluation instead: --networks fresh ConvNet-3s trained for --epochs epochs on "
                        "IPC real images per class, one after another and together (vmap), with the speed-up")
    p.add_argument("--networks", type=int, default=5, help="--evaluation: networks per evaluation (default 5)")
    p.add_argument("--epochs", type=int, default=50, help="--evaluation, --grid-throughput: training epochs (default 50)")
    p.add_argument("--grid-throughput", action="store_true",
                   help="cells per hour of a small grid through the local executor, one cell at a time on "
                        "all cores against one single-thread cell per core, alternating")
    p.add_argument("--cells", type=int, help="--grid-throughput: cells (seeds) in the grid (default 2 x cores)")
    p.add_argument("--rounds", type=int, default=1, help="--grid-throughput: runs of the grid each way (default 1)")
    p.add_argument("--out", type=Path, help="--grid-throughput: where the grids' stores go (default: a temporary folder)")
    p.add_argument("--trajectory-memory", action="store_true",
                   help="MTT against TESLA instead: peak memory and time of one meta-gradient for each "
                        "--syn-steps (each cell in a fresh process), random images, ConvNet-3")
    p.add_argument("--syn-steps", default="5,10,20,40", help="--trajectory-memory: student steps (default 5,10,20,40)")
    p.add_argument("--batch-syn", type=int, default=0, help="--trajectory-memory: images per student step (0: all)")
    p.add_argument("--dream", action="store_true",
                   help="also time each method with DREAM (representative sampler + cluster init) and "
                        "report the clustering share of an iteration at I_int = 10")


@command("speed", "seconds per iteration and peak memory of each synthesis method (small fixed config)", _args)
def cmd_speed(args) -> int:
    configure_threads()
    device = pick_device(args.device)
    if args.grid_throughput:
        return _grid_throughput(args, device)
    args.methods, args.datasets, args.ipc = args.methods or "dc,dsa,dm", args.datasets or "mnist,cifar10", args.ipc or "1,10"
    if args.evaluation:
        return _time_evaluations(args, device)
    if args.trajectory_memory:
        return _trajectory_memory(args, device)
    overrides = dict(parse_overrides(args.params, "--set"))
    methods = split_list(args.methods)
    for m in methods:
        METHODS.get(m)
    modes = ("per-class", "batched") if args.mode == "both" else (args.mode,)
    rows = []

    def add_row(label, dataset, ipc, mode, r, share=""):
        phases = ", ".join(f"{k} {v:.2f}" for k, v in sorted(r["phases"].items()))
        rows.append([label, f"{dataset.channels}x{dataset.size}x{dataset.size}", ipc, mode, f"{r['s_per_it']:.2f}",
                     f"{r['cpu_s_per_it']:.2f}", phases, f"{r['peak_mb']:.0f}", share, ""])
        print("  " + " | ".join(str(x) for x in rows[-1]), flush=True)

    for i, ds_name in enumerate(split_list(args.datasets)):
        dataset = timing_dataset(ds_name, args.data_root)
        if i == 0:  # untimed: the first run pays one-time costs (thread pools, oneDNN kernel set-up)
            fields = METHODS.get(methods[0]).Params.__dataclass_fields__
            tiny = {k: v for k, v in {"batch_real": 8, "inner_loop": 1}.items() if k in fields}
            time_method(methods[0], dataset, 1, 1, None, device, tiny)
        for ipc in [int(x) for x in split_list(args.ipc)]:
            for m in methods:
                known = {f for f in METHODS.get(m).Params.__dataclass_fields__}
                extra = {k: v for k, v in overrides.items() if k in known}
                has_loops = "batched" in known  # IDC has a single (per-class) loop
                walls = {}
                for mode in modes if has_loops else ("per-class",):
                    batched = (mode == "batched") if has_loops else None
                    r = time_method(m, dataset, ipc, args.iterations, batched, device, extra)
                    add_row(m, dataset, ipc, mode, r)
                    walls[mode] = r["s_per_it"]
                    batched_row = rows[-1]
                    if args.dream and METHODS.get(m).matches_real:
                        r = time_method(m, dataset, ipc, args.iterations, batched, device, extra, dream=True)
                        add_row(f"{m}+dream", dataset, ipc, mode, r, f"{100 * r['dream_share']:.1f}%")
                if len(walls) == 2:
                    # > 1: batching pays on this device; < 1: the per-class loop is faster
                    batched_row[-1] = f"{walls['per-class'] / walls['batched']:.2f}x"
    print()
    print(f"device: {device}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"iterations per cell {args.iterations}, overrides {overrides or 'none'}")
    print(tabulate(rows, headers=["method", "input", "IPC", "mode", "s/iter (wall)", "CPU s/iter",
                                  "phases s/iter", "peak MB", "clustering share @I_int=10",
                                  "batched speed-up (wall)"]))
    return 0


def _time_evaluations(args, device) -> int:
    """``bench speed --evaluation``: one-after-another against together, alternating per cell."""
    rows = []
    for i, ds_name in enumerate(split_list(args.datasets)):
        dataset = timing_dataset(ds_name, args.data_root)
        if i == 0:  # untimed warm-up: one-time set-up (thread pools, kernels) paid by neither side
            time_evaluation(dataset, 1, 2, 1, True, device)
            time_evaluation(dataset, 1, 2, 1, False, device)
        for ipc in [int(x) for x in split_list(args.ipc)]:
            alone = time_evaluation(dataset, ipc, args.networks, args.epochs, False, device)
            together = time_evaluation(dataset, ipc, args.networks, args.epochs, True, device)
            rows.append([f"{dataset.channels}x{dataset.size}x{dataset.size}", ipc, args.networks, args.epochs,
                         f"{alone:.2f}", f"{together:.2f}", f"{alone / together:.2f}x"])
            print("  " + " | ".join(str(x) for x in rows[-1]), flush=True)
    print()
    print(f"device: {device}, torch {torch.__version__}, threads {torch.get_num_threads()}, ConvNet-3, DSA protocol")
    print(tabulate(rows, headers=["input", "IPC", "networks", "epochs", "one after another s", "together s",
                                  "speed-up"]))
    return 0


def _grid_throughput(args, device) -> int:
    """``bench speed --grid-throughput``: bench/grid/throughput.py's two ways, in cells per hour."""
    method, dataset, ipc = args.methods or "dm", args.datasets or "digits", int(args.ipc or 10)
    cells = args.cells or 2 * (os.cpu_count() or 1)
    configs = small_grid(method, dataset, ipc, cells, args.epochs)
    print(f"grid: {method} on {dataset}, IPC {ipc}, scale smoke, seeds 0-{cells - 1}, evaluation {args.epochs} epochs "
          f"x 1 network; {args.rounds} round(s) each way, alternating; load average before: {os.getloadavg()[0]:.2f}",
          flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-throughput-") as tmp:
        rows = grid_throughput(configs, args.data_root, str(device), args.out or Path(tmp), args.rounds)
    base = rows[0]["cells_per_hour"]
    print()
    print(f"device: {device}, torch {torch.__version__}, {os.cpu_count()} cores")
    print(tabulate([[r["way"], r["cells"], f"{r['wall_s']:.1f}", f"{r['cells_per_hour']:.0f}",
                     f"{r['cells_per_hour'] / base:.2f}x", f"{r['mean_accuracy']:.2f}"] for r in rows],
                   headers=["processes x threads", "cells", "wall s (median)", "cells per hour", "vs first",
                            "mean acc %"]))
    return 0


def _trajectory_memory(args, device) -> int:
    """``bench speed --trajectory-memory``: each (method, syn_steps) cell in a fresh process, so
    the CPU's resident-set baseline is clean; MTT and TESLA alternate."""
    rows = []
    for ds_name in split_list(args.datasets):
        for ipc in [int(x) for x in split_list(args.ipc)]:
            for steps in [int(x) for x in split_list(args.syn_steps)]:
                for kind in ("mtt", "tesla"):
                    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
                        r = pool.submit(meta_gradient_memory, kind, ds_name, ipc, steps, args.batch_syn,
                                        device).result()
                    rows.append([kind, ds_name, ipc, steps, args.batch_syn or "all", f"{r['peak_mb']:.0f}",
                                 f"{r['seconds']:.2f}"])
                    print("  " + " | ".join(str(x) for x in rows[-1]), flush=True)
    print()
    print(f"device: {device}, torch {torch.__version__}, threads {torch.get_num_threads()}, ConvNet-3, "
          f"one meta-gradient (MTT: autograd through the unroll; TESLA: one step at a time, exact)")
    print(tabulate(rows, headers=["method", "input", "IPC", "syn_steps", "batch_syn", "peak MB", "seconds"]))
    return 0
