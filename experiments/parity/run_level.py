"""Run-level parity (issue #13, item 2): the authors' DC/DSA/DM (VICO-UoE/DatasetCondensation) and
ours at the same reduced budget, several runs a side, alternating sides run by run on one thread each,
every synthetic set evaluated by the authors' own ``utils.evaluate_synset`` (so a difference is the
distillation's, not the evaluator's); our side's record also carries our evaluator's accuracy.

Not part of the package or the tests: it runs the authors' ``main.py`` / ``main_DM.py`` unmodified as
subprocesses from an export (``VICO_REPO``), and imports their ``utils``/``networks`` only to evaluate.
Every finished run is appended to ``<out>/<cell>.jsonl`` at once; a rerun skips what is there.

    VICO_REPO=../authors/DatasetCondensation BENCH_DATA_ROOT=../shared/data \\
        python experiments/parity/run_level.py dm --runs 5 --out experiments/parity/runs
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
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

# method -> (authors' script and flags, our flags, our bench method); dataset MNIST throughout
CELLS = {
    "dm": dict(script="main_DM.py", ipc=10, updates=51, batch_real=64, epochs=300,
               theirs=["--init", "real"], dsa=True, dc_aug=False),
    "dc": dict(script="main.py", ipc=1, updates=41, batch_real=64, epochs=300,
               theirs=["--method", "DC", "--init", "noise"], dsa=False, dc_aug=True),
    "dsa": dict(script="main.py", ipc=1, updates=41, batch_real=64, epochs=300,
                theirs=["--method", "DSA", "--init", "real"], dsa=True, dc_aug=False),
}
DSA_STRATEGY = "color_crop_cutout_scale_rotate"  # VICO README for MNIST; our catalog's mnist entry


def load_average() -> float:
    return float(open("/proc/loadavg").read().split()[0])


def authors_command(script: str, ipc: int, updates: int, batch_real: int, save: Path, extra: list[str]) -> list[str]:
    """The authors' main.py / main_DM.py on MNIST, ``updates`` image updates, no in-loop evaluation."""
    return [sys.executable, script, "--dataset", "MNIST", "--model", "ConvNet", "--ipc", str(ipc),
            "--Iteration", str(updates - 1), "--batch_real", str(batch_real), "--num_exp", "1",
            "--num_eval", "0", "--eval_mode", "S", "--dsa_strategy", DSA_STRATEGY,
            "--data_path", str(Path(os.environ["BENCH_DATA_ROOT"]).resolve() / "mnist"), "--save_path", str(save),
            *extra]


def authors_seconds_per_iteration(stdout: str) -> float:
    """Their log's "[YYYY-mm-dd HH:MM:SS] iter = 0010, loss" lines (every 10 iterations, each printed
    after its iteration's update): seconds between the first and the last, per iteration."""
    stamps = [(int(m.group(2)), time.mktime(time.strptime(m.group(1), "%Y-%m-%d %H:%M:%S")))
              for m in re.finditer(r"\[([\d-]+ [\d:]+)\] iter = (\d+)", stdout)]
    (i0, t0), (i1, t1) = stamps[0], stamps[-1]
    return (t1 - t0) / (i1 - i0)


def run_authors(cell: dict, name: str, k: int, work: Path) -> dict:
    repo = Path(os.environ["VICO_REPO"]).resolve()
    save = work / f"authors_{name}_{k}"
    save.mkdir(parents=True, exist_ok=True)
    cmd = authors_command(cell["script"], cell["ipc"], cell["updates"], cell["batch_real"], save, cell["theirs"])
    out = subprocess.run(cmd, cwd=repo, env={**os.environ, **ONE_THREAD}, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"authors' {cell['script']} failed:\n{out.stderr[-2000:]}")
    result = next(save.glob("res_*.pt"))
    import torch
    images, labels = torch.load(result, weights_only=False)["data"][-1]
    return {"images": images, "labels": labels, "s_per_it": authors_seconds_per_iteration(out.stdout),
            "cmd": " ".join(cmd[1:])}


def run_ours(cell: dict, name: str, k: int, work: Path) -> dict:
    store = work / "ours"
    cmd = [sys.executable, "-m", "bench.cli", "run", "--method", name, "--dataset", "mnist",
           "--ipc", str(cell["ipc"]), "--seeds", str(k), "--set", f"iterations={cell['updates']}",
           "--set", f"batch_real={cell['batch_real']}", "--eval-set", f"epochs={cell['epochs']}",
           "--eval-set", "num_models=1", "--out", str(store)]
    out = subprocess.run(cmd, cwd=ROOT, env={**os.environ, **ONE_THREAD}, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"bench run failed:\n{out.stderr[-2000:]}")
    import torch
    run_dir, record = next((p.parent, r) for p in store.glob("runs/*/record.json")
                           for r in [json.loads(p.read_text())]
                           if (r["config"]["method"], r["config"]["seed"], r["config"]["ipc"]) == (name, k, cell["ipc"]))
    synset = torch.load(run_dir / "synset.pt", weights_only=False)
    seconds = record["timings"]["distill_s"]
    return {"images": synset["images"], "labels": synset["labels"], "s_per_it": seconds / cell["updates"],
            "our_eval": record["accuracy"]["mean"], "run_id": record["run_id"], "cmd": " ".join(cmd[3:])}


def evaluate_with_authors(cell: dict, images, labels) -> float:
    """The authors' evaluate_synset: a fresh ConvNet (their wall-clock seed), their schedule and
    augmentation (DSA for DSA/DM; for DC their MNIST crop_scale_rotate), ``epochs`` epochs."""
    repo = os.environ["VICO_REPO"]
    if repo not in sys.path:
        sys.path.insert(0, repo)
    import torch
    import utils as vico  # the authors' module, from the export
    torch.set_num_threads(1)
    if not hasattr(evaluate_with_authors, "testloader"):
        data = vico.get_dataset("MNIST", str(Path(os.environ["BENCH_DATA_ROOT"]).resolve() / "mnist"))
        evaluate_with_authors.testloader = data[-1]
    args = argparse.Namespace(device="cpu", lr_net=0.01, batch_train=256, epoch_eval_train=cell["epochs"],
                              dsa=cell["dsa"], dsa_strategy=DSA_STRATEGY, dsa_param=vico.ParamDiffAug(),
                              dc_aug_param=vico.get_daparam("MNIST", "ConvNet", "ConvNet", cell["ipc"]) if cell["dc_aug"] else None)
    net = vico.get_network("ConvNet", 1, 10, (28, 28))
    _, _, acc_test = vico.evaluate_synset(0, net, images.clone(), labels.clone(), evaluate_with_authors.testloader, args)
    return 100.0 * float(acc_test)


def run_cell(name: str, runs: int, out: Path) -> None:
    cell = CELLS[name]
    out.mkdir(parents=True, exist_ok=True)
    log = out / f"{name}_mnist_ipc{cell['ipc']}.jsonl"
    done = {(r["side"], r["run"]) for r in map(json.loads, log.read_text().splitlines())} if log.exists() else set()
    work = Path(os.environ.get("PARITY_WORK", "/tmp/parity_work")) / name  # synthetic sets, stores: not kept
    for k in range(runs):
        for side, runner in (("authors", run_authors), ("ours", run_ours)):
            if (side, k) in done:
                continue
            load = load_average()
            started = time.time()
            got = runner(cell, name, k, work)
            acc = evaluate_with_authors(cell, got["images"], got["labels"])
            row = {"side": side, "run": k, "method": name, "dataset": "mnist", "ipc": cell["ipc"],
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
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "experiments" / "parity" / "runs")
    parser.add_argument("--summary", type=Path)
    args = parser.parse_args()
    if args.summary:
        summary(args.summary)
        return
    for name in args.methods:
        run_cell(name, args.runs, args.out)


if __name__ == "__main__":
    main()
