"""Run-level parity (issue #13, item 2): the authors' DC/DSA/DM (VICO-UoE/DatasetCondensation) and
ours at the same reduced budget, several runs a side, alternating sides run by run on one thread each,
every synthetic set evaluated by the authors' own ``utils.evaluate_synset`` (so a difference is the
distillation's, not the evaluator's); our side's record also carries our evaluator's accuracy.

Not part of the package or the tests: it runs the authors' ``main.py`` / ``main_DM.py`` unmodified as
subprocesses from an export (``VICO_REPO``), and imports their ``utils``/``networks`` only to evaluate.
Every finished run is appended to ``<out>/<cell>.jsonl`` at once; a rerun skips what is there.

    VICO_REPO=../authors/DatasetCondensation BENCH_DATA_ROOT=../shared/data \\
        python experiments/parity/run_level.py dm --runs 5 --out experiments/parity/runs
    # CIFAR10-JPEG: their torchvision CIFAR10 reads pickles written from our decode of the archive
    ... run_level.py dm --dataset cifar10-jpeg --runs 5 --shard 0/2 &   # and --shard 1/2: two processes
    python experiments/parity/run_level.py --summary experiments/parity/runs

The authors' loop runs iterations 0..Iteration, each one an image update, and saves the set after
the last: ``--Iteration N-1`` is N updates, our ``iterations=N``. ``--num_eval 0`` skips their
in-loop evaluation (of the iteration-0 set only, at these budgets); their final set is evaluated here.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from authors_data import accept_our_cifar_pickles, authors_site, write_cifar_pickles

ROOT = Path(__file__).resolve().parents[2]
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

# method -> (authors' script and flags, our flags, our bench method)
CELLS = {
    "dm": dict(script="main_DM.py", ipc=10, updates=51, batch_real=64, epochs=300,
               theirs=["--init", "real"], dsa=True, dc_aug=False),
    "dc": dict(script="main.py", ipc=1, updates=41, batch_real=64, epochs=300,
               theirs=["--method", "DC", "--init", "noise"], dsa=False, dc_aug=True),
    "dsa": dict(script="main.py", ipc=1, updates=41, batch_real=64, epochs=300,
                theirs=["--method", "DSA", "--init", "real"], dsa=True, dc_aug=False),
}
DSA_STRATEGY = "color_crop_cutout_scale_rotate"  # VICO README for MNIST; our catalog's mnist entry
# ours -> their get_dataset name, channels, side, DSA strategy (CIFAR: VICO's default, our catalog's)
DATASETS = {"mnist": ("MNIST", 1, 28, DSA_STRATEGY),
            "cifar10-jpeg": ("CIFAR10", 3, 32, "color_crop_cutout_flip_scale_rotate")}


def load_average() -> float:
    return float(open("/proc/loadavg").read().split()[0])


def authors_data_path(dataset: str) -> Path:
    """Where their get_dataset reads ``dataset``: our MNIST folder, or for CIFAR10-JPEG a folder of
    CIFAR-10 pickles written (once, atomically) from our decode of the archive."""
    data = Path(os.environ["BENCH_DATA_ROOT"]).resolve()
    if dataset == "mnist":
        return data / "mnist"
    root = work_root() / "data" / "cifar10"
    if not (root / "cifar-10-batches-py" / "test_batch").exists():
        tmp = root.parent / f"cifar10.tmp{os.getpid()}"
        write_cifar_pickles(data, tmp / "cifar-10-batches-py")
        try:
            tmp.rename(root)
        except OSError:  # another shard wrote it first: the same bytes
            shutil.rmtree(tmp)
    return root


def work_root() -> Path:
    return Path(os.environ.get("PARITY_WORK", "/tmp/parity_work"))


def authors_command(script: str, dataset: str, ipc: int, updates: int, batch_real: int, save: Path,
                    extra: list[str]) -> list[str]:
    """The authors' main.py / main_DM.py, ``updates`` image updates, no in-loop evaluation."""
    name, _, _, strategy = DATASETS[dataset]
    return [sys.executable, script, "--dataset", name, "--model", "ConvNet", "--ipc", str(ipc),
            "--Iteration", str(updates - 1), "--batch_real", str(batch_real), "--num_exp", "1",
            "--num_eval", "0", "--eval_mode", "S", "--dsa_strategy", strategy,
            "--data_path", str(authors_data_path(dataset)), "--save_path", str(save), *extra]


def authors_seconds_per_iteration(stdout: str) -> float:
    """Their log's "[YYYY-mm-dd HH:MM:SS] iter = 0010, loss" lines (every 10 iterations, each printed
    after its iteration's update): seconds between the first and the last, per iteration."""
    stamps = [(int(m.group(2)), time.mktime(time.strptime(m.group(1), "%Y-%m-%d %H:%M:%S")))
              for m in re.finditer(r"\[([\d-]+ [\d:]+)\] iter = (\d+)", stdout)]
    (i0, t0), (i1, t1) = stamps[0], stamps[-1]
    return (t1 - t0) / (i1 - i0)


def run_authors(cell: dict, name: str, dataset: str, k: int, work: Path) -> dict:
    repo = Path(os.environ["VICO_REPO"]).resolve()
    save = work / f"authors_{name}_{k}"
    save.mkdir(parents=True, exist_ok=True)
    cmd = authors_command(cell["script"], dataset, cell["ipc"], cell["updates"], cell["batch_real"], save, cell["theirs"])
    site = str(authors_site(work_root()))  # its sitecustomize lets their CIFAR10 read our pickles
    env = {**os.environ, **ONE_THREAD, "PYTHONPATH": os.pathsep.join(filter(None, [site, os.environ.get("PYTHONPATH")]))}
    out = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"authors' {cell['script']} failed:\n{out.stderr[-2000:]}")
    result = next(save.glob("res_*.pt"))
    import torch
    images, labels = torch.load(result, weights_only=False)["data"][-1]
    return {"images": images, "labels": labels, "s_per_it": authors_seconds_per_iteration(out.stdout),
            "cmd": " ".join(cmd[1:])}


def run_ours(cell: dict, name: str, dataset: str, k: int, work: Path) -> dict:
    store = work / "ours"
    cmd = [sys.executable, "-m", "bench.cli", "run", "--method", name, "--dataset", dataset,
           "--ipc", str(cell["ipc"]), "--seeds", str(k), "--set", f"iterations={cell['updates']}",
           "--set", f"batch_real={cell['batch_real']}", "--eval-set", f"epochs={cell['epochs']}",
           "--eval-set", "num_models=1", "--out", str(store)]
    out = subprocess.run(cmd, cwd=ROOT, env={**os.environ, **ONE_THREAD}, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"bench run failed:\n{out.stderr[-2000:]}")
    import torch
    run_dir, record = next((p.parent, r) for p in store.glob("runs/*/record.json")
                           for r in [json.loads(p.read_text())]
                           if (r["config"]["method"], r["config"]["seed"], r["config"]["ipc"], r["config"]["dataset"])
                           == (name, k, cell["ipc"], dataset))
    synset = torch.load(run_dir / "synset.pt", weights_only=False)
    seconds = record["timings"]["distill_s"]
    return {"images": synset["images"], "labels": synset["labels"], "s_per_it": seconds / cell["updates"],
            "our_eval": record["accuracy"]["mean"], "run_id": record["run_id"], "cmd": " ".join(cmd[3:])}


def evaluate_with_authors(cell: dict, dataset: str, images, labels) -> float:
    """The authors' evaluate_synset: a fresh ConvNet (their wall-clock seed), their schedule and
    augmentation (DSA for DSA/DM; for DC their MNIST crop_scale_rotate), ``epochs`` epochs."""
    repo = os.environ["VICO_REPO"]
    if repo not in sys.path:
        sys.path.insert(0, repo)
    import torch
    import utils as vico  # the authors' module, from the export
    torch.set_num_threads(1)
    accept_our_cifar_pickles()
    name, channels, side, strategy = DATASETS[dataset]
    loaders = evaluate_with_authors.__dict__.setdefault("testloaders", {})
    if dataset not in loaders:
        loaders[dataset] = vico.get_dataset(name, str(authors_data_path(dataset)))[-1]
    args = argparse.Namespace(device="cpu", lr_net=0.01, batch_train=256, epoch_eval_train=cell["epochs"],
                              dsa=cell["dsa"], dsa_strategy=strategy, dsa_param=vico.ParamDiffAug(),
                              dc_aug_param=vico.get_daparam(name, "ConvNet", "ConvNet", cell["ipc"]) if cell["dc_aug"] else None)
    net = vico.get_network("ConvNet", channels, 10, (side, side))
    _, _, acc_test = vico.evaluate_synset(0, net, images.clone(), labels.clone(), loaders[dataset], args)
    return 100.0 * float(acc_test)


def run_cell(name: str, dataset: str, runs: int, out: Path, shard: tuple[int, int] = (0, 1)) -> None:
    """Runs ``k < runs`` with ``k % shard[1] == shard[0]``: shards in separate processes share a log
    (one line appended per run)."""
    cell = CELLS[name]
    out.mkdir(parents=True, exist_ok=True)
    log = out / f"{name}_{dataset}_ipc{cell['ipc']}.jsonl"
    done = {(r["side"], r["run"]) for r in map(json.loads, log.read_text().splitlines())} if log.exists() else set()
    work = work_root() / f"{name}_{dataset}"  # synthetic sets, stores: not kept
    for k in range(shard[0], runs, shard[1]):
        for side, runner in (("authors", run_authors), ("ours", run_ours)):
            if (side, k) in done:
                continue
            load = load_average()
            started = time.time()
            got = runner(cell, name, dataset, k, work)
            acc = evaluate_with_authors(cell, dataset, got["images"], got["labels"])
            row = {"side": side, "run": k, "method": name, "dataset": dataset, "ipc": cell["ipc"],
                   "updates": cell["updates"], "batch_real": cell["batch_real"], "eval_epochs": cell["epochs"],
                   "authors_eval_acc": acc, "our_eval_acc": got.get("our_eval"), "s_per_it": got["s_per_it"],
                   "run_id": got.get("run_id"), "load_before": load, "wall_s": round(time.time() - started, 1),
                   "command": got["cmd"], "when": time.strftime("%Y-%m-%dT%H:%M:%S")}
            with log.open("a") as fh:
                fh.write(json.dumps(row) + "\n")
            print(f"{name} {side} run {k}: {acc:.2f} % (authors' evaluator), {got['s_per_it'] or float('nan'):.2f} s/it, "
                  f"load {load:.2f}", flush=True)


def summary(out: Path) -> None:
    from scipy import stats
    for log in sorted(out.glob("*.jsonl")):
        rows = [json.loads(line) for line in log.read_text().splitlines()]
        acc = {s: np.array([r["authors_eval_acc"] for r in rows if r["side"] == s]) for s in ("ours", "authors")}
        spi = {s: np.array([r["s_per_it"] for r in rows if r["side"] == s and r["s_per_it"]]) for s in acc}
        if min(len(a) for a in acc.values()) < 2:
            print(f"{log.stem}: too few runs ({ {s: len(a) for s, a in acc.items()} })")
            continue
        a, b = acc["ours"], acc["authors"]
        diff = a.mean() - b.mean()
        va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
        se = np.sqrt(va + vb)
        dof = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))  # Welch
        half = stats.t.ppf(0.975, dof) * se
        ours_own = [r["our_eval_acc"] for r in rows if r["side"] == "ours"]
        print(f"| {log.stem} | {a.mean():.2f} ± {a.std(ddof=1):.2f} (n={len(a)}) | {b.mean():.2f} ± {b.std(ddof=1):.2f} (n={len(b)}) "
              f"| {diff:+.2f} [{diff - half:+.2f}, {diff + half:+.2f}] | {spi['ours'].mean():.2f} | {spi['authors'].mean():.2f} "
              f"| {np.mean(ours_own):.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("methods", nargs="*", help=f"cells to run, of {', '.join(CELLS)}")
    parser.add_argument("--dataset", choices=list(DATASETS), default="mnist")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--shard", default="0/1", help="i/n: this process does runs k with k %% n == i")
    parser.add_argument("--out", type=Path, default=ROOT / "experiments" / "parity" / "runs")
    parser.add_argument("--summary", type=Path)
    args = parser.parse_args()
    if args.summary:
        summary(args.summary)
        return
    shard = tuple(int(v) for v in args.shard.split("/"))
    for name in args.methods:
        run_cell(name, args.dataset, args.runs, args.out, shard)


if __name__ == "__main__":
    main()
