"""Run-level parity (issue #13, item 2): the authors' DC/DSA/DM (VICO-UoE/DatasetCondensation) and
IDC (snu-mllab/Efficient-Dataset-Condensation) beside ours at the same reduced budget, several runs
a side, alternating sides run by run on one thread each, every synthetic set evaluated by the
authors' own evaluation (VICO's ``utils.evaluate_synset``; IDC's ``train.train`` on their decode,
through ``idc_evaluate.py``), so a difference is the distillation's, not the evaluator's; our side's
record also carries our evaluator's accuracy.

Not part of the package or the tests: it runs the authors' ``main.py`` / ``main_DM.py`` unmodified as
subprocesses from an export (``VICO_REPO``), and imports their ``utils``/``networks`` only to evaluate.
Every finished run is appended to ``<out>/<cell>.jsonl`` at once; a rerun skips what is there.

    VICO_REPO=../authors/DatasetCondensation BENCH_DATA_ROOT=../shared/data \\
        python experiments/parity/run_level.py dm --runs 5 --out experiments/parity/runs
    # CIFAR10-JPEG: their torchvision CIFAR10 reads pickles written from our decode of the archive
    ... run_level.py dm --dataset cifar10-jpeg --runs 5 --shard 0/2 &   # and --shard 1/2: two processes
    # IDC: their condense.py from a CPU-patched export (docs/parity.md), IDC_REPO (and DREAM_REPO)
    IDC_REPO=<CPU-patched IDC export> BENCH_DATA_ROOT=../shared/data python experiments/parity/run_level.py idc --runs 5
    # IDC + DREAM (DREAM_REPO too) with 100 training images a class on both sides (MNIST, CIFAR10-JPEG)
    ... run_level.py idc+dream --pool 100 --runs 5 --shard 0/2 &   # and --shard 1/2
    ... run_level.py idc+dream --dataset cifar10-jpeg --pool 100 --runs 5 --shard 0/2 &   # and --shard 1/2
    python experiments/parity/run_level.py --summary experiments/parity/runs
    # a cell's saved sets compared pixel by pixel; IDC sets evaluated again paired by evaluation seed
    ... run_level.py idc --dataset cifar10-jpeg --distances
    ... run_level.py idc --dataset cifar10-jpeg --paired
    # VICO cells: each run's two saved sets through the same 3 seeded draws of their evaluator
    ... run_level.py dsa --paired --evals 3 --shard 0/2 &   # and --shard 1/2
    # DC/DSA at IPC 10 (40 image updates); DC from real images on both sides (its noise start stays noise)
    ... run_level.py dsa --ipc 10 --runs 10 --side authors &   # and --side ours: one process a side
    ... run_level.py dc --ipc 10 --init real --runs 10 --side authors &   # and --side ours
    # IDC + DREAM, their side on the fast-pytorch-kmeans DREAM was written against (0.1.9; 0.2.x draws
    # the initial centres with replacement, kmeans_versions.py); our side's runs are the cell's own
    pip install --no-deps --target ../authors/kmeans-0.1.9 fast-pytorch-kmeans==0.1.9
    ... run_level.py idc+dream --dataset cifar10-jpeg --pool 100 --authors-kmeans ../authors/kmeans-0.1.9 \
        --runs 10 --side authors --shard 0/2 &   # and --shard 1/2
    # IDC + DREAM at IPC 10 on the MNIST pool (at IPC 1 its runs differ by 2-4 points a side)
    ... run_level.py idc+dream --ipc 10 --pool 100 --authors-kmeans ../authors/kmeans-0.1.9 --runs 5 --side authors &
    ... run_level.py idc+dream --ipc 10 --pool 100 --runs 5 --side ours &

The authors' loop runs iterations 0..Iteration, each one an image update, and saves the set after
the last: ``--Iteration N-1`` is N updates, our ``iterations=N``. ``--num_eval 0`` skips their
in-loop evaluation (of the iteration-0 set only, at these budgets); their final set is evaluated here.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from bench.core.atomic import atomic_folder, is_complete

from authors_data import accept_our_cifar_pickles, authors_site, write_cifar_pickles, write_mnist_pool
from run_level_summary import print_summary, read_rows

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
# DC and DSA at IPC 10 (--ipc 10): VICO's get_loops gives each iteration ten image updates with
# a 50-step network phase between them (at IPC 1 one update and no network phase, so only these cells
# exercise the network updates); about 3.9 CPU minutes an iteration on MNIST, so 4 iterations: 40
# image updates and 36 network phases.
# IDC + DREAM at IPC 10: the same 200 networks of one step, 40 decoded images a class (below IDC's
# batch_syn_max of 128, so no subsampling on either side); on the MNIST pool the IPC 1 sets differ by
# 2-4 points run to run on either side, too wide for +-1 at a CPU's five runs a side.
IPC_BUDGETS = {("dc", 10): dict(ipc=10, updates=4), ("dsa", 10): dict(ipc=10, updates=4),
               ("idc+dream", 10): dict(ipc=10)}
# --init: a VICO cell from the other start, both sides (their --init, our --init). DC's own start is
# noise; at IPC 10 and 40 updates its sets are still mostly that noise (stop 36), so the seed spread is
# the start's, and from real images it is the updates'.
DEFAULT_INIT = {name: cell["theirs"][cell["theirs"].index("--init") + 1] for name, cell in CELLS.items()}
DSA_STRATEGY = "color_crop_cutout_scale_rotate"  # VICO README for MNIST; our catalog's mnist entry
# ours -> their get_dataset name, channels, side, DSA strategy (CIFAR: VICO's default, our catalog's)
DATASETS = {"mnist": ("MNIST", 1, 28, DSA_STRATEGY),
            "cifar10-jpeg": ("CIFAR10", 3, 32, "color_crop_cutout_flip_scale_rotate")}

# IDC and IDC + DREAM: the authors' condense.py, from CPU-patched exports (IDC_REPO, DREAM_REPO;
# docs/parity.md). Their loop runs niter * 100 inner steps as niter * 100 // inner_loop networks of
# inner_loop steps, and IDC's needs at least 50 networks (it logs every n_iter // 50: a modulo by zero
# below): niter 1, inner_loop 2 is the least, 100 inner steps; ours iterations=50, inner_loop=2.
# DREAM's logs every n_iter // 200, so its least is niter 2, inner_loop 1: 200 networks of one step,
# each re-clustering the whole class first (ot % interval == 0; about 5 CPU minutes a round on MNIST,
# docs/parity.md: a GPU cell). batch_real and n_data are cut (equal on both sides) so an IDC run fits
# about five CPU minutes; DREAM's N follows batch_real on both.
CONDENSE_CELLS = {
    "idc": dict(repo_env="IDC_REPO", ipc=1, factor=2, inner_steps=100, inner_loop=2, batch_real=32, n_data=64,
                theirs=[]),
    # DREAM's --match default (bi_match) does not run (docs/parity.md); grad is IDC's and the paper's.
    # --init mix (with its default --f2_init kmean): ipc * f^2 cluster picks tiled, our cluster
    # initialiser; their default --init kmean puts ipc whole images in, undecoded.
    "idc+dream": dict(repo_env="DREAM_REPO", ipc=1, factor=2, inner_steps=200, inner_loop=1, batch_real=32,
                      n_data=64, theirs=["--match", "grad", "--init", "mix"]),
}
DEFAULT_IPC = {name: cell["ipc"] for name, cell in [*CELLS.items(), *CONDENSE_CELLS.items()]}
# what their --reproduce sets per dataset (misc/reproduce.py; MNIST with factor > 1), as flags, because
# --reproduce also fixes niter = 2000
REPRODUCE = {"mnist": ["--depth", "3", "--metric", "l1", "--lr_img", "1e-4", "--aug_type", "color_crop",
                       "--mixup_net", "vanilla", "--mixup", "vanilla", "--dsa_strategy", "color_crop_scale_rotate"],
             "cifar10-jpeg": ["--depth", "3", "--metric", "mse", "--lr_img", "5e-3"]}


def load_average() -> float:
    return float(open("/proc/loadavg").read().split()[0])


def authors_data_path(dataset: str, pool: int | None = None) -> Path:
    """Where their get_dataset reads ``dataset``: our MNIST folder, or for CIFAR10-JPEG a folder of
    CIFAR-10 pickles written from our decode of the archive; with ``pool``, a copy holding only the
    first ``pool`` training images of each class (and the whole test set)."""
    data = Path(os.environ["BENCH_DATA_ROOT"]).resolve()
    if dataset == "mnist" and pool:
        return written_once(work_root() / "data" / f"mnist_pool{pool}", lambda tmp: write_mnist_pool(data, tmp, pool))
    if dataset == "mnist":
        return data / "mnist"
    folder = f"cifar10_pool{pool}" if pool else "cifar10"
    return written_once(work_root() / "data" / folder,
                        lambda tmp: write_cifar_pickles(data, tmp / "cifar-10-batches-py", pool))


def written_once(root: Path, write) -> Path:
    """``root``, filled once by ``write(folder)`` through the package's ``atomic_folder`` (temporary
    name, rename, another shard's whole copy kept)."""
    if not is_complete(root):
        with atomic_folder(root) as tmp:
            write(tmp)
    return root


def authors_env(cell: dict | None = None) -> dict:
    """One thread, and the authors' site first on PYTHONPATH: its sitecustomize lets their CIFAR10
    read our pickles, and it holds the empty efficientnet_pytorch IDC's train.py imports. A cell with
    ``authors_kmeans`` puts that folder (a fast-pytorch-kmeans release) before everything."""
    first = [(cell or {}).get("authors_kmeans"), str(authors_site(work_root()))]
    return {**os.environ, **ONE_THREAD, "PYTHONPATH": os.pathsep.join(filter(None, [*first, os.environ.get("PYTHONPATH")]))}


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
    after its iteration's update): seconds between the first and the last, per iteration. Under ten
    iterations only iteration 0 is logged: then from "training begins", one iteration before it."""
    def seconds(stamp: str) -> float:
        return time.mktime(time.strptime(stamp, "%Y-%m-%d %H:%M:%S"))
    stamps = [(int(m.group(2)), seconds(m.group(1))) for m in re.finditer(r"\[([\d-]+ [\d:]+)\] iter = (\d+)", stdout)]
    if len(stamps) == 1:
        stamps.insert(0, (-1, seconds(re.search(r"\[([\d-]+ [\d:]+)\] training begins", stdout).group(1))))
    (i0, t0), (i1, t1) = stamps[0], stamps[-1]
    return (t1 - t0) / (i1 - i0)


def load_authors_set(path: Path, condense: bool) -> tuple:
    """(images, labels) of a set the authors' script saved: IDC's/DREAM's condense.py saves the pair,
    VICO's main.py / main_DM.py a dict whose "data" lists one pair per experiment (the last is ours)."""
    import torch
    saved = torch.load(path, weights_only=False)
    return tuple(saved) if condense else tuple(saved["data"][-1])


def run_authors(cell: dict, name: str, dataset: str, k: int, work: Path) -> dict:
    repo = Path(os.environ["VICO_REPO"]).resolve()
    save = work / f"authors_{name}_{k}"
    save.mkdir(parents=True, exist_ok=True)
    cmd = authors_command(cell["script"], dataset, cell["ipc"], cell["updates"], cell["batch_real"], save, cell["theirs"])
    env = authors_env()
    out = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"authors' {cell['script']} failed:\n{out.stderr[-2000:]}")
    result = next(save.glob("res_*.pt"))
    images, labels = load_authors_set(result, condense=False)
    return {"images": images, "labels": labels, "s_per_it": authors_seconds_per_iteration(out.stdout),
            "cmd": " ".join(cmd[1:])}


def our_settings(name: str, cell: dict) -> list[str]:
    """``--set`` / ``--eval-set`` arguments giving our run the cell's budget."""
    if name in CONDENSE_CELLS:
        batch = "sampler.batch_real" if name.endswith("+dream") else "batch_real"
        sets = [f"iterations={cell['inner_steps'] // cell['inner_loop']}", f"inner_loop={cell['inner_loop']}", f"n_data={cell['n_data']}",
                f"{batch}={cell['batch_real']}", "curve_points=0", "checkpoint_every=0"]
        pool = ["--max-train-per-class", str(cell["pool"])] if cell.get("pool") else []
        return [a for v in sets for a in ("--set", v)] + ["--eval-set", "num_models=1", *pool]
    init = ["--init", cell["init"]] if "init" in cell else []  # only where --init chose another start
    return ["--set", f"iterations={cell['updates']}", "--set", f"batch_real={cell['batch_real']}",
            "--eval-set", f"epochs={cell['epochs']}", "--eval-set", "num_models=1", *init]


def condense_flags(cell: dict, dataset: str) -> list[str]:
    """Their condense.py flags for the cell (training and evaluation settings alike)."""
    name = "mnist" if dataset == "mnist" else "cifar10"
    return ["-d", name, "-f", str(cell["factor"]), "--ipc", str(cell["ipc"]), "--niter", str(cell["inner_steps"] // 100),
            "--inner_loop", str(cell["inner_loop"]),
            "--n_data", str(cell["n_data"]), "--batch_real", str(cell["batch_real"]), *REPRODUCE[dataset],
            *cell["theirs"], "--data_dir", str(authors_data_path(dataset, cell.get("pool"))), "--workers", "0", "--test"]


def run_authors_condense(cell: dict, name: str, dataset: str, k: int, work: Path) -> dict:
    """Their condense.py, seeded with k + 1 (their seed 0 means unseeded), in a folder of its own
    (``--test`` saves to ./results/test); returns the compact set it saved after its last step."""
    repo = Path(os.environ[cell["repo_env"]]).resolve()
    run_dir = work / f"authors_{k}"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    cmd = [sys.executable, "-u", str(repo / "condense.py"), *condense_flags(cell, dataset), "--seed", str(k + 1)]
    env = authors_env(cell)
    started = time.time()
    out = subprocess.run(cmd, cwd=run_dir, env=env, capture_output=True, text=True)
    seconds = time.time() - started
    if out.returncode != 0:
        raise SystemExit(f"authors' condense.py failed:\n{out.stdout[-1500:]}\n{out.stderr[-1500:]}")
    images, labels = load_authors_set(last_condensed(run_dir), condense=True)
    # their whole process (data loading and initialisation included) per inner step
    return {"images": images, "labels": labels, "s_per_it": seconds / cell["inner_steps"],
            "cmd": " ".join(cmd[2:]), "authors_kmeans": authors_kmeans_version(env)}


def last_condensed(run_dir: Path) -> Path | None:
    """The set their condense.py saved last in a run's folder (``--test``: results/test; IDC's
    overwrites one data.pt, DREAM's writes data<iteration>.pt at each save); None before its first."""
    saved = sorted((run_dir / "results" / "test").glob("data*.pt"), key=lambda f: f.stat().st_mtime)
    return saved[-1] if saved else None


def evaluate_with_idc(cell: dict, name: str, dataset: str, images, labels, seed: int) -> float:
    """The IDC authors' evaluation (``idc_evaluate.py`` in a subprocess: their argument module parses
    sys.argv), with IDC's export for both cells, so IDC and IDC + DREAM sets meet one evaluator."""
    import torch
    repo = Path(os.environ["IDC_REPO"]).resolve()
    path = work_dir(name, dataset, cell.get("pool")) / f"eval_{os.getpid()}.pt"
    torch.save([images.detach().cpu(), labels.cpu()], path)
    env = authors_env()
    cmd = [sys.executable, str(Path(__file__).with_name("idc_evaluate.py")), "--repo", str(repo), "--synset", str(path),
           "--seed", str(seed), "--", *[f for f in condense_flags(cell, dataset) if f not in ("--match", "grad")]]
    out = subprocess.run(cmd, cwd=path.parent, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"their evaluation failed:\n{out.stderr[-2000:]}")
    return float(json.loads(out.stdout.strip().splitlines()[-1])["acc_last"])


def bench_run(cmd: list[str]) -> None:
    """Our ``bench run`` as a subprocess on one thread; its error tail if it fails."""
    out = subprocess.run(cmd, cwd=ROOT, env={**os.environ, **ONE_THREAD}, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"bench run failed:\n{out.stderr[-2000:]}")


def run_ours(cell: dict, name: str, dataset: str, k: int, work: Path) -> dict:
    store = work / "ours"
    cmd = [sys.executable, "-m", "bench.cli", "run", "--method", name, "--dataset", dataset,
           "--ipc", str(cell["ipc"]), "--seeds", str(k), *our_settings(name, cell), "--out", str(store)]
    bench_run(cmd)
    import torch
    run_dir, record = next((p.parent, r) for p in store.glob("runs/*/record.json")
                           for r in [json.loads(p.read_text())]
                           if (r["config"]["label"], r["config"]["seed"], r["config"]["ipc"], r["config"]["dataset"])
                           == (name, k, cell["ipc"], dataset))
    synset = torch.load(run_dir / "synset.pt", weights_only=False)
    seconds = record["timings"]["distill_s"]
    steps = cell.get("inner_steps") or cell["updates"]
    return {"images": synset["images"], "labels": synset["labels"], "s_per_it": seconds / steps,
            "our_eval": record["accuracy"]["mean"], "run_id": record["run_id"], "cmd": " ".join(cmd[3:])}


def evaluate_with_authors(cell: dict, dataset: str, images, labels, seed: int | None = None) -> float:
    """The authors' evaluate_synset: a fresh ConvNet (their wall-clock seed), their schedule and
    augmentation (DSA for DSA/DM; for DC their MNIST crop_scale_rotate), ``epochs`` epochs. With
    ``seed``, the evaluation is one fixed draw instead (``seed_evaluation``), for pairing two sets."""
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
    if seed is not None:
        seed_evaluation(net, seed)
    _, _, acc_test = vico.evaluate_synset(0, net, images.clone(), labels.clone(), loaders[dataset], args)
    return 100.0 * float(acc_test)


def seed_evaluation(net, seed: int) -> None:
    """Make the evaluation that follows one draw, fixed by ``seed``: their get_network seeded its
    weights from the wall clock, so they are drawn again (each layer's own ``reset_parameters``, the
    initialisation construction used) from ``seed``; then torch's and numpy's global generators, the
    only randomness evaluate_synset uses (the loader's shuffling, DSA's parameters, the DC
    augmentation's numpy draws), are seeded. Two sets of one shape evaluated with one seed then start
    from the same weights and see the same batches and augmentations: the evaluator's own spread
    cancels in their difference."""
    import torch
    layers = [m for m in net.modules() if any(True for _ in m.parameters(recurse=False))]
    if not all(hasattr(m, "reset_parameters") for m in layers):
        raise SystemExit(f"seed_evaluation: a layer of {type(net).__name__} cannot be re-drawn")
    torch.manual_seed(seed)
    for layer in layers:
        layer.reset_parameters()
    torch.manual_seed(seed)
    np.random.seed(seed)


def run_cell(name: str, dataset: str, runs: int, out: Path, shard: tuple[int, int] = (0, 1), evals: int = 1,
             pool: int | None = None, sides: tuple[str, ...] = ("authors", "ours")) -> None:
    """Runs ``k < runs`` with ``k % shard[1] == shard[0]``: shards in separate processes share a log
    (one line appended per run). With ``evals`` > 1 (VICO cells) every set, new or saved by an earlier
    run, is evaluated by that many of their networks in all (``top_up_evaluations``). ``pool``: both
    sides train from the first ``pool`` images of each class only (a cell of its own). ``sides``: one of
    them lets two processes run a run's two sides at once."""
    condense = name in CONDENSE_CELLS
    cell = dict(CONDENSE_CELLS[name], pool=pool) if condense else CELLS[name]
    out.mkdir(parents=True, exist_ok=True)
    log = cell_log(out, name, dataset, pool=pool)
    done = {(r["side"], r["run"]) for r in read_rows(log)}
    work = work_dir(name, dataset, pool)  # synthetic sets, stores: not kept
    for k in range(shard[0], runs, shard[1]):
        for side, runner in (("authors", run_authors_condense if condense else run_authors), ("ours", run_ours)):
            if (side, k) in done or side not in sides:
                continue
            load = load_average()
            started = time.time()
            got = runner(cell, name, dataset, k, work)
            if condense:  # unpaired draws: each evaluation its own seed
                acc = evaluate_with_idc(cell, name, dataset, got["images"], got["labels"], 1000 * (side == "ours") + k + 1)
            else:
                acc = evaluate_with_authors(cell, dataset, got["images"], got["labels"])
            budget = ({"inner_steps": cell["inner_steps"], "n_data": cell["n_data"], "factor": cell["factor"]} if condense
                      else {"updates": cell["updates"], "eval_epochs": cell["epochs"]})
            if pool:
                budget["train_per_class"] = pool
            if "authors_kmeans" in got:
                budget["authors_kmeans"] = got["authors_kmeans"]
            row = {"side": side, "run": k, "method": name, "dataset": dataset, "ipc": cell["ipc"],
                   **budget, "batch_real": cell["batch_real"],
                   "authors_eval_acc": acc, "our_eval_acc": got.get("our_eval"), "s_per_it": got["s_per_it"],
                   "run_id": got.get("run_id"), "load_before": load, "wall_s": round(time.time() - started, 1),
                   "command": got["cmd"], "when": time.strftime("%Y-%m-%dT%H:%M:%S")}
            with log.open("a") as fh:
                fh.write(json.dumps(row) + "\n")
            print(f"{name} {side} run {k}: {acc:.2f} % (authors' evaluator), {got['s_per_it'] or float('nan'):.2f} s/it, "
                  f"load {load:.2f}", flush=True)
            done.add((side, k))
        if evals > 1:
            top_up_evaluations(name, dataset, k, out, evals)


def cell_log(out: Path, name: str, dataset: str, kind: str = "", pool: int | None = None) -> Path:
    """A cell's JSONL log: its runs (``kind`` ""), or its ``evals``/``starts``/``paired`` rows."""
    cell = CONDENSE_CELLS.get(name) or CELLS[name]
    return out / kind / f"{name}_{dataset}_ipc{cell['ipc']}{f'_pool{pool}' if pool else ''}{other_init(name)}{other_kmeans(name)}.jsonl"


def work_dir(name: str, dataset: str, pool: int | None = None) -> Path:
    """Where a cell's runs leave their sets and our store (outside the project; not kept); a cell at
    another IPC than its first has a folder of its own (VICO's saved files name no seed)."""
    ipc = (CONDENSE_CELLS.get(name) or CELLS[name])["ipc"]
    other_ipc = f"_ipc{ipc}" if ipc != DEFAULT_IPC[name] else ""
    return work_root() / f"{name}_{dataset}{f'_pool{pool}' if pool else ''}{other_ipc}{other_init(name)}{other_kmeans(name)}"


def other_init(name: str) -> str:
    """A log's and a work folder's suffix for a VICO cell run from another start than its own."""
    return f"_init{CELLS[name]['init']}" if "init" in CELLS.get(name, {}) else ""


def other_kmeans(name: str) -> str:
    """A log's and a work folder's suffix for an IDC + DREAM cell whose authors' side ran on another
    fast-pytorch-kmeans (--authors-kmeans); its log holds their runs only (see run_level_summary)."""
    version = CONDENSE_CELLS.get(name, {}).get("kmeans_version")
    return f"_kmeans{version}" if version else ""


def authors_kmeans_version(env: dict) -> str:
    """The fast-pytorch-kmeans release the authors' process imports under ``env`` (what their
    new_strategy.py gets), read in a subprocess with the same PYTHONPATH."""
    code = "from kmeans_versions import kmeans_version; print(kmeans_version())"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=Path(__file__).parent)
    if out.returncode != 0:
        raise SystemExit(f"cannot read the authors' fast-pytorch-kmeans version:\n{out.stderr[-1000:]}")
    return out.stdout.strip()


def select_authors_kmeans(name: str, folder: Path) -> None:
    """--authors-kmeans: the authors' side of the IDC + DREAM cell ``name`` imports fast-pytorch-kmeans
    from ``folder``; the cell gets a log and a work folder of its own, named by that release."""
    if name != "idc+dream":
        raise SystemExit("--authors-kmeans: only the idc+dream cell clusters")
    if not (folder / "fast_pytorch_kmeans").is_dir():
        raise SystemExit(f"--authors-kmeans {folder}: no fast_pytorch_kmeans package in it "
                         "(pip install --no-deps --target <folder> fast-pytorch-kmeans==0.1.9)")
    cell = dict(CONDENSE_CELLS[name], authors_kmeans=str(folder.resolve()))
    CONDENSE_CELLS[name] = dict(cell, kmeans_version=authors_kmeans_version(authors_env(cell)))


def select_init(name: str, init: str) -> None:
    """--init: both sides of the VICO cell ``name`` start from ``init`` (their --init, ours --init)."""
    if name not in CELLS:
        raise SystemExit(f"--init: only the VICO cells {', '.join(CELLS)}")
    if init == DEFAULT_INIT[name]:
        return
    theirs = list(CELLS[name]["theirs"])
    theirs[theirs.index("--init") + 1] = init
    CELLS[name] = dict(CELLS[name], theirs=theirs, init=init)


def select_ipc(name: str, ipc: int) -> None:
    """--ipc: make the cell ``name`` the one at ``ipc`` (IPC_BUDGETS) for this process; every
    function reads a cell's budget from CELLS / CONDENSE_CELLS, so the whole run, its log and its
    folder follow."""
    if ipc == DEFAULT_IPC.get(name):
        return
    if (name, ipc) not in IPC_BUDGETS:
        known = ", ".join(f"{n} at IPC {i}" for n, i in [*IPC_BUDGETS, *DEFAULT_IPC.items()])
        raise SystemExit(f"--ipc {ipc}: no budget for {name} at IPC {ipc} (known: {known})")
    cells = CONDENSE_CELLS if name in CONDENSE_CELLS else CELLS
    cells[name] = dict(cells[name], **IPC_BUDGETS[(name, ipc)])


def top_up_evaluations(name: str, dataset: str, k: int, out: Path, evals: int) -> None:
    """VICO cells: evaluate run k's two sets (as saved in the work folder) by more of the authors'
    networks until each set has ``evals`` in all, counting the one in the cell's log; one row per
    network to ``<out>/evals/<cell>.jsonl``. Their evaluator draws each network's weights from the
    wall clock, so the networks are independent draws, and a set's mean over several of them takes
    the evaluator's own spread out of the run-to-run spread (their main.py averages num_eval networks
    the same way). A set no longer in the work folder is skipped, with a line saying so."""
    if name in CONDENSE_CELLS:
        raise SystemExit("--evals: only the VICO cells (dc, dsa, dm); IDC cells are paired by seed (--paired)")
    cell = CELLS[name]
    log = cell_log(out, name, dataset)
    rows = {(r["side"], r["run"]): r for r in read_rows(log)}
    extra = cell_log(out, name, dataset, "evals")
    extra.parent.mkdir(parents=True, exist_ok=True)
    counted = [(r["side"], r["run"]) for r in read_rows(extra)]
    for side in ("authors", "ours"):
        if (side, k) not in rows:
            continue
        missing = evals - 1 - counted.count((side, k))
        if missing <= 0:
            continue
        found = saved_set(name, dataset, side, k, rows[(side, k)].get("run_id"))
        if found is None:
            print(f"{name} {side} run {k}: its set is no longer in {work_root()}; not re-evaluated", flush=True)
            continue
        for _ in range(missing):
            started = time.time()
            acc = evaluate_with_authors(cell, dataset, *found)
            with extra.open("a") as fh:
                fh.write(json.dumps({"side": side, "run": k, "authors_eval_acc": acc, "eval_s": round(time.time() - started, 1),
                                     "when": time.strftime("%Y-%m-%dT%H:%M:%S")}) + "\n")
            print(f"{name} {side} run {k}: another of their networks {acc:.2f} %", flush=True)


def saved_set(name: str, dataset: str, side: str, k: int, run_id: str | None) -> tuple | None:
    """One VICO cell's run k's set from the work folder: theirs as main.py saved it, ours the synset.pt
    of the run whose id the cell's log names (None where it is gone)."""
    import torch
    work = work_dir(name, dataset)
    if side == "authors":
        found = list((work / f"authors_{name}_{k}").glob("res_*.pt"))
        return load_authors_set(found[0], condense=False) if found else None
    path = work / "ours" / "runs" / str(run_id) / "synset.pt"
    if not path.exists():
        return None
    synset = torch.load(path, weights_only=False)
    return synset["images"], synset["labels"]


def saved_sets(name: str, dataset: str, pool: int | None = None) -> dict[str, dict[int, tuple]]:
    """The synthetic sets (images, labels) a cell's runs left in the work folder, per side and run:
    theirs as their script saved them, ours from the run's synset.pt."""
    import torch
    work = work_dir(name, dataset, pool)
    sets: dict[str, dict[int, tuple]] = {"authors": {}, "ours": {}}
    if name in CONDENSE_CELLS:
        for run_dir in work.glob("authors_*"):  # a run still going has saved nothing yet (or not its last)
            if (saved := last_condensed(run_dir)) is not None:
                sets["authors"][int(run_dir.name.split("_")[-1])] = load_authors_set(saved, condense=True)
    else:
        for f in work.glob("authors_*/res_*.pt"):
            sets["authors"][int(f.parent.name.split("_")[-1])] = load_authors_set(f, condense=False)
    for record in work.glob("ours/runs/*/record.json"):
        config = json.loads(record.read_text())["config"]
        ipc = (CONDENSE_CELLS.get(name) or CELLS[name])["ipc"]
        if (config["label"], config["dataset"], config["ipc"]) == (name, dataset, ipc):
            synset = torch.load(record.with_name("synset.pt"), weights_only=False)
            sets["ours"][config["seed"]] = (synset["images"], synset["labels"])
    return sets


def set_distances(name: str, dataset: str, pool: int | None = None) -> None:
    """Mean absolute pixel difference between two runs' final sets, within each side and across
    the sides: if the cross-side distance is the within-side one, the two programs' sets are as alike
    as two runs of one program (a parity check that needs no evaluation, and a measure of how far a
    budget moves the images: sets that start from the same real images and barely move leave the
    evaluator's own spread as the only spread)."""
    import itertools
    sets = {side: [images for _, (images, _) in sorted(runs.items())] for side, runs in saved_sets(name, dataset, pool).items()}
    pairs = {"authors-authors": list(itertools.combinations(sets["authors"], 2)),
             "ours-ours": list(itertools.combinations(sets["ours"], 2)),
             "ours-authors": list(itertools.product(sets["ours"], sets["authors"]))}
    print(f"{name} {dataset}: {len(sets['authors'])} sets theirs, {len(sets['ours'])} ours "
          f"(pixel scale: {'unit' if name in CONDENSE_CELLS else 'normalised'})")
    for label, group in pairs.items():
        d = np.array([float((a.float() - b.float()).abs().mean()) for a, b in group])
        if len(d):
            print(f"  {label}: mean |a - b| {d.mean():.5f} (min {d.min():.5f}, max {d.max():.5f}, {len(d)} pairs)")
    if name == "idc":  # both sides start from the first ipc * f^2 images of each class, tiled
        start = idc_start(CONDENSE_CELLS[name], dataset)
        for side, group in sets.items():
            d = np.array([float((s.float() - start).abs().mean()) for s in group])
            if len(d):
                print(f"  {side} from the shared start: mean |final - start| {d.mean():.5f} (min {d.min():.5f}, max {d.max():.5f})")


def our_starts(name: str, dataset: str, seeds: list[int]) -> dict[int, tuple]:
    """Our runs' starting sets: ``bench run --method random --seeds k`` draws run k's (the same
    ``real`` initialiser at the same seed)."""
    import torch
    cell = CELLS[name]
    if not seeds:
        return {}
    store = work_root() / f"starts_{dataset}_ipc{cell['ipc']}"
    cmd = [sys.executable, "-m", "bench.cli", "run", "--method", "random", "--dataset", dataset, "--ipc", str(cell["ipc"]),
           "--seeds", ",".join(map(str, seeds)), "--eval-set", f"epochs={cell['epochs']}", "--eval-set", "num_models=1", "--out", str(store)]
    bench_run(cmd)
    starts = {}
    for record in store.glob("runs/*/record.json"):
        config = json.loads(record.read_text())["config"]
        if config["seed"] in seeds:  # the store keeps earlier draws too: load only the ones asked for
            synset = torch.load(record.with_name("synset.pt"), weights_only=False)
            starts[config["seed"]] = (synset["images"], synset["labels"])
    return starts


def authors_start(name: str, dataset: str, k: int) -> tuple | None:
    """Their run k's starting set, from the picture main.py / main_DM.py save before iteration 0's
    update (``vis_*_iter0.png``: torchvision's save_image grid, one row per class, 2-pixel padding, the
    set de-normalised and clipped to [0, 1]). Real 8-bit images survive that exactly, so normalising
    the grid's cells again gives their start."""
    import torch
    from torchvision.io import read_image
    found = list((work_dir(name, dataset) / f"authors_{name}_{k}").glob("vis_*_iter0.png"))
    if not found:
        return None
    _, channels, side, _ = DATASETS[dataset]
    ipc = CELLS[name]["ipc"]
    grid = read_image(str(found[0])).float() / 255
    cells = [grid[:channels, 2 + r * (side + 2):2 + r * (side + 2) + side, 2 + c * (side + 2):2 + c * (side + 2) + side]
             for r in range(10) for c in range(ipc)]
    return our_dataset(dataset).normalise(torch.stack(cells), "vico"), torch.arange(10).repeat_interleave(ipc)


@functools.lru_cache
def our_dataset(dataset: str):
    """Our catalog's dataset (its normalisation is the one the authors' code uses), loaded once."""
    from bench.data.datasets import load_dataset
    return load_dataset(dataset, os.environ["BENCH_DATA_ROOT"])


def start_evaluations(name: str, dataset: str, runs: int, out: Path, evals: int = 2,
                      shard: tuple[int, int] = (0, 1)) -> None:
    """Cells that start from real images (dsa, dm): how good each run's start already is, both sides,
    by ``evals`` of the authors' networks; one row per set to ``<out>/starts/<cell>.jsonl``. Printed
    beside each: the start's distance to its own run's final set and to the other runs' (its own must
    be far the nearest, or the start is not that run's). ``--summary`` then compares the sides with the
    start's score as a covariate: a run's start is its seed's draw of real images, not the method.
    ``shard`` as for runs: shards in separate processes share the log; only runs whose final set is
    still in the work folder and whose start is not yet logged are drawn and evaluated."""
    cell = CELLS[name]
    log = cell_log(out, name, dataset, "starts")
    log.parent.mkdir(parents=True, exist_ok=True)
    done = {(r["side"], r["run"]) for r in read_rows(log)}
    finals = saved_sets(name, dataset)
    wanted = {side: [k for k in range(shard[0], runs, shard[1]) if k in finals[side] and (side, k) not in done]
              for side in finals}
    starts = {"ours": our_starts(name, dataset, wanted["ours"]),
              "authors": {k: got for k in wanted["authors"] if (got := authors_start(name, dataset, k)) is not None}}
    for side, sets in starts.items():
        for k in sorted(set(sets) & set(finals[side])):
            if (side, k) in done:
                continue
            own = float((sets[k][0] - finals[side][k][0]).abs().mean())
            others = [float((sets[k][0] - f[0]).abs().mean()) for j, f in finals[side].items() if j != k]
            accs = [evaluate_with_authors(cell, dataset, *sets[k]) for _ in range(evals)]
            with log.open("a") as fh:
                fh.write(json.dumps({"side": side, "run": k, "start_accs": accs, "to_own_final": round(own, 4),
                                     "to_other_finals": [round(min(others), 4), round(max(others), 4)],
                                     "when": time.strftime("%Y-%m-%dT%H:%M:%S")}) + "\n")
            print(f"{side} run {k}: start {np.mean(accs):.2f} % ({', '.join(f'{a:.2f}' for a in accs)}; their evaluator); "
                  f"|start - own final| {own:.3f}, to the other finals {min(others):.3f}-{max(others):.3f}", flush=True)


def idc_start(cell: dict, dataset: str):
    """The compact set both IDC sides start from (their ``mix`` init, our ``first`` initialiser)."""
    import torch
    from bench.data.datasets import load_dataset
    from bench.dream.initialisers import tile_multi_formation
    data = load_dataset(dataset, os.environ["BENCH_DATA_ROOT"])
    per = cell["ipc"] * cell["factor"] ** 2
    return torch.cat([tile_multi_formation(data.train_images[data.train_labels == c][:per].float(), cell["ipc"], cell["factor"])
                      for c in range(data.num_classes)])


def paired_evaluations(name: str, dataset: str, out: Path, pool: int | None = None, evals: int = 1,
                       shard: tuple[int, int] = (0, 1)) -> None:
    """IDC cells: evaluate our run k's set again with the evaluation seed their run k's set had
    (k + 1), so each run's two sets meet the same evaluation draw. Appends one row per run to
    ``<out>/paired/<cell>.jsonl``; their side's accuracy is the one already logged with that seed, or
    None where this log has no run k of theirs (a cell whose authors' side ran on another k-means
    release keeps theirs in its own log: ``run_level_summary.paired_summary`` pairs those).
    VICO cells: ``paired_vico_evaluations``."""
    if name not in CONDENSE_CELLS:
        paired_vico_evaluations(name, dataset, out, evals, shard)
        return
    cell = dict(CONDENSE_CELLS[name], pool=pool)
    log = cell_log(out, name, dataset, pool=pool)
    theirs = {r["run"]: r["authors_eval_acc"] for r in read_rows(log) if r["side"] == "authors"}
    paired = cell_log(out, name, dataset, "paired", pool)
    paired.parent.mkdir(parents=True, exist_ok=True)
    done = {r["run"] for r in read_rows(paired)}
    ours = saved_sets(name, dataset, pool)["ours"]
    for k in sorted(set(ours) - done):
        started = time.time()
        acc = evaluate_with_idc(cell, name, dataset, *ours[k], k + 1)
        row = {"run": k, "eval_seed": k + 1, "ours_acc": acc, "authors_acc": theirs.get(k), "eval_s": round(time.time() - started, 1),
               "when": time.strftime("%Y-%m-%dT%H:%M:%S")}
        with paired.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
        print(f"{name} run {k}, evaluation seed {k + 1}: ours {acc:.2f}, authors {theirs.get(k)}", flush=True)


def paired_vico_evaluations(name: str, dataset: str, out: Path, evals: int, shard: tuple[int, int]) -> None:
    """VICO cells: evaluate run k's two sets (as saved in the work folder) by their evaluate_synset
    with the same ``evals`` fixed draws, seeds 1000 k + j (``seed_evaluation``), and append one row per
    run to ``<out>/paired/<cell>.jsonl``: both sides' accuracies per seed and their means. A run's
    difference then carries the two programs' distillation only, not the evaluator's spread. Runs
    whose sets are gone are skipped with a line saying so."""
    cell = CELLS[name]
    rows = {(r["side"], r["run"]): r for r in read_rows(cell_log(out, name, dataset))}
    paired = cell_log(out, name, dataset, "paired")
    paired.parent.mkdir(parents=True, exist_ok=True)
    done = {r["run"] for r in read_rows(paired)}
    for k in sorted({run for _, run in rows} - done):
        if k % shard[1] != shard[0] or ("authors", k) not in rows or ("ours", k) not in rows:
            continue
        sets = {side: saved_set(name, dataset, side, k, rows[(side, k)].get("run_id")) for side in ("ours", "authors")}
        if any(found is None for found in sets.values()):
            print(f"{name} run {k}: a set is no longer in {work_root()}; not paired", flush=True)
            continue
        started = time.time()
        seeds = [1000 * k + j for j in range(evals)]
        accs = {side: [evaluate_with_authors(cell, dataset, *sets[side], seed=s) for s in seeds] for side in sets}
        row = {"run": k, "eval_seeds": seeds, "ours_accs": accs["ours"], "authors_accs": accs["authors"],
               "ours_acc": float(np.mean(accs["ours"])), "authors_acc": float(np.mean(accs["authors"])),
               "eval_s": round(time.time() - started, 1), "when": time.strftime("%Y-%m-%dT%H:%M:%S")}
        with paired.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
        print(f"{name} run {k}, evaluation seeds {seeds[0]}-{seeds[-1]}: ours {row['ours_acc']:.2f}, "
              f"authors {row['authors_acc']:.2f}", flush=True)


def parse_shard(text: str) -> tuple[int, int]:
    """``i/n`` with 0 <= i < n; anything else is one clear error."""
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise SystemExit(f"--shard {text!r}: use i/n, e.g. 0/2") from None
    if not 0 <= i < n:
        raise SystemExit(f"--shard {text!r}: needs 0 <= i < n")
    return i, n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("methods", nargs="*", help=f"cells to run, of {', '.join([*CELLS, *CONDENSE_CELLS])}")
    parser.add_argument("--dataset", choices=list(DATASETS), default="mnist")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--shard", default="0/1", help="i/n: this process does runs k with k %% n == i")
    parser.add_argument("--out", type=Path, default=ROOT / "experiments" / "parity" / "runs")
    parser.add_argument("--summary", type=Path)
    parser.add_argument("--distances", action="store_true",
                        help="compare the cells' saved sets (pixel distances within and across sides) instead of running")
    parser.add_argument("--evals", type=int, default=1,
                        help="VICO cells: evaluate every set (new, or saved by an earlier run) by this many of "
                             "their networks in all; the extra ones go to <out>/evals/")
    parser.add_argument("--starts", action="store_true",
                        help="dsa, dm: evaluate each run's starting set (both sides) by --evals (at least 2) of their "
                             "networks; --shard splits the runs between processes")
    parser.add_argument("--paired", action="store_true",
                        help="IDC cells: evaluate our sets again with the evaluation seeds of the authors' runs; "
                             "VICO cells: evaluate each run's two sets with the same --evals fixed draws of their "
                             "evaluator (--shard splits the runs)")
    parser.add_argument("--side", choices=["authors", "ours"], help="run only this side's runs (default: both, "
                        "authors first): two processes, one a side, finish a run's pair at once")
    parser.add_argument("--ipc", type=int, help="the cell at this IPC (default: the cell's first, dm 10, the "
                        "others 1; dc, dsa and idc+dream also 10)")
    parser.add_argument("--init", choices=["real", "noise"], help="VICO cells: both sides start from this "
                        "(default: the cell's own, dc noise, dsa and dm real); its own log and work folder")
    parser.add_argument("--pool", type=int,
                        help="IDC cells: both sides train from the first N images of each class only (their "
                             "data folder a copy holding those, ours --max-train-per-class N): DREAM re-clusters "
                             "the whole class for every network, which this makes affordable on a CPU")
    parser.add_argument("--authors-kmeans", type=Path,
                        help="idc+dream: a folder holding a fast-pytorch-kmeans release, first on the authors' "
                             "PYTHONPATH (their side only; ours pins its own); a log of its own")
    args = parser.parse_args()
    if args.authors_kmeans is not None:
        if args.side != "authors" and not (args.summary or args.distances):
            parser.error("--authors-kmeans changes only the authors' side: run it with --side authors "
                         "(ours are the cell's own runs)")
        for name in args.methods:
            select_authors_kmeans(name, args.authors_kmeans)
    if args.ipc is not None:
        for name in args.methods:
            select_ipc(name, args.ipc)
    if args.init is not None:
        for name in args.methods:
            select_init(name, args.init)
    if args.pool is not None and (args.pool < 1 or not set(args.methods) <= set(CONDENSE_CELLS)):
        parser.error(f"--pool N: N >= 1, and only the cells {', '.join(CONDENSE_CELLS)}")
    if args.summary:
        print_summary(args.summary)
        return
    if args.paired:
        for name in args.methods:
            paired_evaluations(name, args.dataset, args.out, args.pool, args.evals, parse_shard(args.shard))
        return
    if args.starts:
        for name in args.methods:
            start_evaluations(name, args.dataset, args.runs, args.out, max(args.evals, 2), parse_shard(args.shard))
        return
    if args.distances:
        for name in args.methods:
            set_distances(name, args.dataset, args.pool)
        return
    for name in args.methods:
        run_cell(name, args.dataset, args.runs, args.out, parse_shard(args.shard), args.evals, args.pool,
                 (args.side,) if args.side else ("authors", "ours"))


if __name__ == "__main__":
    main()
