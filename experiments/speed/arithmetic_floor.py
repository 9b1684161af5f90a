"""How fast a distillation iteration could possibly be on this CPU without changing its maths
(issue #14): the matrix arithmetic one iteration must do, divided by the best rate this CPU reaches
on that arithmetic, against the authors' measured seconds per iteration.

* FLOPs per iteration: ``torch.utils.flop_counter.FlopCounterMode`` (convolutions, their backward,
  matrix products) around ``bench.run.timing.time_method`` for one iteration on random tensors of
  the dataset's shape (the count depends on shapes only; the set-up before iteration 0, real or
  noise initialisation, does no matrix arithmetic). IDC: per inner step (``inner_loop=10``, the
  count / 10), as in ``all_methods.py``.
* The best rate: ConvNet-3's three convolutions, forward and backward (input and weight gradients),
  at the methods' shapes (batch 256), on this CPU with the same threads, best of ``--repeats``;
  and a large float32 matrix product as the machine's ceiling.
* floor = FLOPs / best convolution rate: the seconds the convolutions alone take even at their best
  rate, with GroupNorm, ReLU, pooling, augmentation and Python free. The largest speed-up any
  implementation of the same maths could reach over the authors' code is their seconds / floor.

Usage (alone on the machine; one thread, as the side-by-side table)::

    python experiments/speed/arithmetic_floor.py --threads 1 \
        --authors experiments/speed/results/{speed,all_methods}.jsonl --out experiments/speed/results/floor.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

CELLS = [("dc", "mnist", 1), ("dsa", "mnist", 1), ("dm", "mnist", 1), ("idc", "mnist", 1),
         ("dc", "cifar10", 1), ("dsa", "cifar10", 1), ("dm", "cifar10", 1), ("idc", "cifar10", 1),
         ("dc", "cifar10", 10), ("dsa", "cifar10", 10), ("dm", "cifar10", 10), ("idc", "cifar10", 10)]


def counted_flops(fn) -> int:
    """The matrix FLOPs (convolutions, their gradients, matrix products) ``fn()`` performs."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def iteration_flops(method: str, dataset: str, ipc: int) -> float:
    import torch

    from bench.run.timing import _random_dataset, time_method

    data = _random_dataset(dataset)
    extra = {"inner_loop": 10} if method == "idc" else {}
    batched = None if method == "idc" else False
    flops = counted_flops(lambda: time_method(method, data, ipc, 1, batched, torch.device("cpu"), extra))
    return flops / (10 if method == "idc" else 1)


def evaluation_flops_and_seconds(dataset: str, ipc: int, networks: int, epochs: int) -> tuple[float, float]:
    """(FLOPs, wall seconds) of one evaluation trained one network after another (the sequential
    path of ``bench speed --evaluation``), the seconds from a second, uncounted call."""
    import torch

    from bench.run.timing import _random_dataset, time_evaluation

    data = _random_dataset(dataset)
    run = lambda: time_evaluation(data, ipc, networks, epochs, False, torch.device("cpu"))  # noqa: E731
    return counted_flops(run), run()


def best_conv_rate(dataset: str, repeats: int) -> float:
    """GFLOP/s of ConvNet-3's convolutions, forward + both gradients, batch 256, best of ``repeats``."""
    import torch
    import torch.nn.functional as F

    channels, size = (1, 28) if dataset == "mnist" else (3, 32)
    g = torch.Generator().manual_seed(0)
    shapes = [(channels, size), (128, size // 2), (128, size // 4)]
    xs = [torch.randn(256, c, s, s, generator=g, requires_grad=True) for c, s in shapes]
    ws = [torch.randn(128, c, 3, 3, generator=g, requires_grad=True) for c, _ in shapes]

    def once():
        for x, w in zip(xs, ws):
            out = F.conv2d(x, w, padding=1)
            torch.autograd.grad(out, (x, w), torch.ones_like(out))

    flops = counted_flops(once)
    return flops / min(timeit.repeat(once, number=1, repeat=repeats)) / 1e9


def matmul_rate(repeats: int) -> float:
    import torch
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    a @ b
    return 2 * 2048 ** 3 / min(timeit.repeat(lambda: a @ b, number=1, repeat=repeats)) / 1e9


def authors_seconds(paths: list[Path]) -> dict:
    """{(method, dataset, ipc): authors' one-thread s per iteration (IDC: per inner step)} from
    all_methods.py's and side_by_side.py's JSONL rows (the later row of a cell wins)."""
    out = {}
    for line in (line for path in paths for line in path.read_text().splitlines()):
        row = json.loads(line)
        if row.get("side") == "authors" and "s_per_it" in row and str(row.get("threads")) == "1":
            name = "cifar10" if row["dataset"] == "cifar10-jpeg" else row["dataset"]
            out[(row["method"], name, row["ipc"])] = row["s_per_it"]
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--authors", type=Path, nargs="*", default=[],
                   help="JSONL files with the authors' one-thread seconds (all_methods.jsonl, speed.jsonl)")
    p.add_argument("--methods", help="comma list (default all)")
    p.add_argument("--skip", default="", help="cells to leave out, e.g. dc:cifar10:10,dsa:cifar10:10 "
                                              "(one iteration of each costs 5 minutes on one thread)")
    p.add_argument("--out", type=Path)
    p.add_argument("--evaluation", action="store_true",
                   help="the evaluation instead: 5 networks one after another, IPC 1 and 10, the floor of "
                        "any way of training them (together or not) against the sequential path's seconds")
    p.add_argument("--epochs", type=int, default=10, help="--evaluation: epochs per network")
    args = p.parse_args()
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(args.threads)
    import torch
    torch.set_num_threads(args.threads)
    from bench.core.allocator import keep_freed_memory
    keep_freed_memory()

    theirs = authors_seconds(args.authors)
    ceiling = matmul_rate(args.repeats)
    rates = {d: best_conv_rate(d, args.repeats) for d in ("mnist", "cifar10")}
    print(f"float32 2048^3 matrix product: {ceiling:.1f} GFLOP/s; ConvNet-3 convolutions fwd+bwd: "
          + ", ".join(f"{d} {r:.1f} GFLOP/s" for d, r in rates.items()) + f" ({args.threads} thread(s))")
    if args.evaluation:
        return evaluation_floor(args, rates)
    wanted = set(args.methods.split(",")) if args.methods else None
    rows = []
    for method, dataset, ipc in CELLS:
        if (wanted and method not in wanted) or f"{method}:{dataset}:{ipc}" in args.skip.split(","):
            continue
        flops = iteration_flops(method, dataset, ipc)
        floor = flops / (rates[dataset] * 1e9)
        row = {"method": method, "dataset": dataset, "ipc": ipc, "gflop_per_it": flops / 1e9,
               "conv_gflops": rates[dataset], "matmul_gflops": ceiling, "floor_s": floor,
               "authors_s": theirs.get((method, dataset, ipc)), "threads": args.threads,
               "unit": "inner step" if method == "idc" else "iteration", "torch": torch.__version__}
        if row["authors_s"]:
            row["max_speedup"] = row["authors_s"] / floor
        rows.append(row)
        print(json.dumps(row), flush=True)
        if args.out:
            with args.out.open("a") as f:
                f.write(json.dumps(row) + "\n")
    print("\n| method | data | IPC | unit | GFLOP | floor s | authors s | largest possible speed-up |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        a = f"{r['authors_s']:.3f}" if r["authors_s"] else "-"
        s = f"{r['max_speedup']:.2f}x" if r.get("max_speedup") else "-"
        print(f"| {r['method']} | {r['dataset']} | {r['ipc']} | {r['unit']} | {r['gflop_per_it']:.1f} | "
              f"{r['floor_s']:.3f} | {a} | {s} |")
    return 0


def evaluation_floor(args, rates: dict) -> int:
    import torch
    print("\n| input | IPC | networks | epochs | GFLOP | floor s | one after another s | largest possible speed-up |")
    print("|---|---|---|---|---|---|---|---|")
    for dataset in ("mnist", "cifar10"):
        for ipc in (1, 10):
            flops, seconds = evaluation_flops_and_seconds(dataset, ipc, 5, args.epochs)
            floor = flops / (rates[dataset] * 1e9)
            row = {"evaluation": True, "dataset": dataset, "ipc": ipc, "networks": 5, "epochs": args.epochs,
                   "gflop": flops / 1e9, "conv_gflops": rates[dataset], "floor_s": floor, "sequential_s": seconds,
                   "max_speedup": seconds / floor, "threads": args.threads, "torch": torch.__version__}
            if args.out:
                with args.out.open("a") as f:
                    f.write(json.dumps(row) + "\n")
            print(f"| {dataset} | {ipc} | 5 | {args.epochs} | {flops / 1e9:.1f} | {floor:.2f} | {seconds:.2f} | "
                  f"{seconds / floor:.2f}x |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
