"""Seconds per distillation iteration, ours against the authors' code (issue #14), one side after the
other in one process tree on one device (a GPU, or a CPU with ``--profile cpu --threads 1``): DC, DSA, DM (VICO-UoE/DatasetCondensation
``main.py`` / ``main_DM.py``), IDC (snu-mllab/Efficient-Dataset-Condensation ``condense.py``) and
IDC + DREAM (lyq312318224/DREAM ``condense.py``), on genuine MNIST and CIFAR10-JPEG, IPC 1 and 10.

Made for one short call of the device tool (a lent H200): every row is appended to
``<out>/all_methods.jsonl`` the moment it is measured, a deadline skips what no longer fits, and the
table is printed last. It also runs on a CPU (``--device cpu``, small iteration counts) to check the
pipeline; the authors' IDC/DREAM code needs its ``.cuda()`` calls mapped to the CPU there.

How each side is timed, warm-up excluded on both:
* VICO: their loop prints a stamp every 10 iterations; a runner replaces ``utils.get_time`` with a
  microsecond clock (their stamp has 1 s resolution), so s/it = (stamp at the last - stamp at 0) /
  iterations. Their loop reads every loss with ``.item()``, so each iteration ends synchronised.
  The runner also materialises their ``dst_train`` once per dataset as tensors (same values), since
  their ``main()`` indexes all 60,000 images one by one at every start.
* IDC and DREAM: their own ``--time`` instrument (``misc.utils.TimeStamp``: seconds per stage,
  summed over every 10 inner steps); the process is stopped after the third summary and the first
  (warm-up, cuDNN autotuning) is dropped: s/inner step = sum of the later summaries / their steps.
* ours: ``bench.run.timing.time_method`` (synchronised at its end) for N+1 and for 1 iteration(s)
  of the same config on the full training set: s/it = (T(N+1) - T(1)) / N. IDC's "iteration" is an
  outer iteration, so it runs with ``inner_loop=10`` and the rate is per inner step, as theirs.

Patches to the authors' exports, maths unchanged (docs/parity.md): VICO ``.view(`` -> ``.reshape(``
in ``networks.py`` and the ``.clone()`` of DiffAugment's Siamese row copies in ``utils.py``; IDC and
DREAM ``np.int(`` -> ``int(`` in ``misc/utils.py``; an empty ``efficientnet_pytorch`` module; and
torchvision's ``CIFAR10._check_integrity`` answering True (the pickles here are written from the
JPEG re-encoding, so their md5 differs from the published ones).

    python experiments/speed/all_methods.py --assets .gpu --out results/gpu
    python experiments/speed/all_methods.py --summary experiments/speed/results/all_methods.jsonl
"""
from __future__ import annotations

import argparse
import contextlib
import gzip
import io
import json
import os
import re
import runpy
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "experiments" / "parity"))
from authors_data import accept_our_cifar_pickles, authors_site, write_cifar_pickles  # noqa: E402
from run_level import DSA_STRATEGY as MNIST_DSA, load_average  # noqa: E402  (one definition of each)
START = time.time()

# Iterations timed per (method, IPC): the authors' side ("theirs": a multiple of 10, their stamps
# being every 10; 0 = their iteration 0 alone, from their "training begins" stamp, warm-up included,
# which only counts against them) and ours (N in (T(N+1) - T(1)) / N; 0 = T(1) alone, set-up and
# warm-up included, which only counts against us; IDC: outer iterations of 10 inner steps). The cpu
# profile fits one thread of this 2-core machine.
PROFILES = {
    "gpu": {"theirs": {("dc", 1): 40, ("dsa", 1): 40, ("dm", 1): 40, ("dc", 10): 10, ("dsa", 10): 10, ("dm", 10): 40},
            "ours": {("dc", 1): 40, ("dsa", 1): 40, ("dm", 1): 40, ("dc", 10): 3, ("dsa", 10): 3, ("dm", 10): 40,
                     ("idc", 1): 3, ("idc", 10): 3},
            "flushes": 3},
    "cpu": {"theirs": {("dc", 1): 10, ("dsa", 1): 10, ("dm", 1): 10, ("dc", 10): 0, ("dsa", 10): 0, ("dm", 10): 10},
            "ours": {("dc", 1): 3, ("dsa", 1): 3, ("dm", 1): 5, ("dc", 10): 1, ("dsa", 10): 0, ("dm", 10): 3,
                     ("idc", 1): 1, ("idc", 10): 1},
            "flushes": 2},
    "quick": {"theirs": {("dc", 1): 10, ("dsa", 1): 10, ("dm", 1): 10},
              "ours": {("dc", 1): 1, ("dsa", 1): 1, ("dm", 1): 1, ("idc", 1): 1}, "flushes": 2},
}
PROFILE = dict(PROFILES["gpu"])  # the chosen profile, set by main()
VICO = {"dc": ("main.py", ["--method", "DC", "--init", "noise"]),
        "dsa": ("main.py", ["--method", "DSA", "--init", "real"]),
        "dm": ("main_DM.py", ["--init", "real"])}
DATASETS = {"mnist": ("MNIST", "mnist"), "cifar10-jpeg": ("CIFAR10", "cifar10")}  # ours -> (VICO, IDC) names
# DREAM's argument.py defaults to --match bi_match, which its matchloss does not handle (returns None:
# "'NoneType' object has no attribute 'item'" at the first step); grad is IDC's and the paper's
CONDENSE = (("idc", "idc", "snu-mllab/Efficient-Dataset-Condensation", ()),
            ("idc+dream", "dream", "lyq312318224/DREAM", ("--match", "grad")))  # summaries of 10 inner steps read before stopping; the first is warm-up


def emit(out: Path, row: dict) -> None:
    row = {**row, "when": time.strftime("%Y-%m-%dT%H:%M:%S"), "elapsed_s": round(time.time() - START, 1)}
    with (out / "all_methods.jsonl").open("a") as fh:
        fh.write(json.dumps(row) + "\n")
    print(json.dumps(row), flush=True)


def device_name(device: str) -> str:
    import torch

    return torch.cuda.get_device_name(0) if device.startswith("cuda") else "cpu"


# ---------------------------------------------------------------- data for both sides

def prepare_data(assets: Path, work: Path) -> Path:
    """``<work>/data``: mnist/MNIST/raw (from the carried .gz files), cifar10-jpeg/ (the archive),
    and cifar10/cifar-10-batches-py (pickles written from our decode of the archive, for the
    authors' torchvision ``CIFAR10``)."""
    data = work / "data"
    raw = data / "mnist" / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for gz in (assets / "mnist").glob("*.gz"):
        target = raw / gz.name[:-3]
        if not target.exists():
            target.write_bytes(gzip.decompress(gz.read_bytes()))
    jpeg = data / "cifar10-jpeg"
    jpeg.mkdir(parents=True, exist_ok=True)
    if not (jpeg / "cifar10-jpeg.tar.gz").exists():
        shutil.copy(assets / "cifar10-jpeg" / "cifar10-jpeg.tar.gz", jpeg)
    pickles = data / "cifar10" / "cifar-10-batches-py"
    if not (pickles / "test_batch").exists():
        write_cifar_pickles(data, pickles)
    return data


# ---------------------------------------------------------------- ours

def time_ours(dataset: str, data: Path, device: str, out: Path, deadline: float, ipcs: list[int]) -> None:
    import torch

    from bench.core.allocator import keep_freed_memory
    from bench.data.datasets import load_dataset
    from bench.run.timing import time_method

    keep_freed_memory()  # as every bench command does
    dev = torch.device(device)
    ds = load_dataset(dataset, data)
    cells = [(m, ipc, n) for (m, ipc), n in PROFILE["ours"].items() if ipc in ipcs]
    if "idc+dream" in PROFILE["methods"]:
        cells += [("idc+dream", ipc, n) for (m, ipc), n in PROFILE["ours"].items() if m == "idc" and ipc in ipcs]
    time_method("dm", ds, 1, 2, False, dev)  # untimed: CUDA context, cuDNN handles
    for method, ipc, n in cells:
        if time.time() > deadline:
            emit(out, {"side": "ours", "method": method, "dataset": dataset, "ipc": ipc, "skipped": "deadline"})
            continue
        load = load_average()
        name, dream = method.split("+")[0], method.endswith("+dream")
        extra = {"inner_loop": 10} if name == "idc" else {}
        batched = None if name == "idc" else False  # per-class: the authors' loop
        one = time_method(name, ds, ipc, 1, batched, dev, extra, dream=dream)["s_per_it"]
        if n == 0:  # iteration 0 alone, set-up and warm-up included (as theirs with 0 above, and more)
            many, n = one, 1
        else:
            many = time_method(name, ds, ipc, n + 1, batched, dev, extra, dream=dream)["s_per_it"] * (n + 1) - one
        steps = n * (10 if name == "idc" else 1)
        emit(out, {"side": "ours", "method": method, "dataset": dataset, "ipc": ipc, "device": device_name(device),
                   "s_per_it": many / steps, "timed": steps,
                   "unit": "inner step" if name == "idc" else "iteration",
                   "torch": torch.__version__, "threads": torch.get_num_threads(), "load_before": load})


# ---------------------------------------------------------------- the authors' VICO code

def vico_runner(repo: Path, dataset: str, data: Path, device: str, out: Path, deadline: float, ipcs: list[int]) -> None:
    """In-process: their main.py / main_DM.py run by runpy with ``sys.argv`` set, stdout captured."""
    sys.path.insert(0, str(repo))
    os.chdir(repo)
    import torch
    import utils  # their utils.py

    utils.get_time = lambda: "[t=%.6f]" % time.perf_counter()
    original, cache = utils.get_dataset, {}

    class Materialised(torch.utils.data.Dataset):  # their dst_train's items, computed once
        def __init__(self, dst):
            items = [dst[i] for i in range(len(dst))]
            self.images = torch.stack([x for x, _ in items])
            self.labels = [int(y) for _, y in items]

        def __len__(self):
            return len(self.labels)

        def __getitem__(self, i):
            return self.images[i], self.labels[i]

    def get_dataset(name, path):
        if name not in cache:
            got = list(original(name, path))
            got[6] = Materialised(got[6])
            cache[name] = tuple(got)
        return cache[name]

    utils.get_dataset = get_dataset
    vico_name = DATASETS[dataset][0]
    root = data / ("mnist" if dataset == "mnist" else "cifar10")
    if vico_name == "CIFAR10":  # their get_dataset reads <path>/cifar-10-batches-py
        accept_our_cifar_pickles()
    for (method, ipc), n in PROFILE["theirs"].items():
        if ipc not in ipcs:
            continue
        if time.time() > deadline:
            emit(out, {"side": "authors", "method": method, "dataset": dataset, "ipc": ipc, "skipped": "deadline"})
            continue
        load = load_average()
        script, flags = VICO[method]
        strategy = ["--dsa_strategy", MNIST_DSA] if dataset == "mnist" else []
        sys.argv = [script, "--dataset", vico_name, "--model", "ConvNet", "--ipc", str(ipc), "--Iteration", str(n),
                    "--num_exp", "1", "--num_eval", "0", "--eval_mode", "S", "--data_path", str(root),
                    "--save_path", str(Path(os.environ.get("TMPDIR", "/tmp")) / "vico_save"), *strategy, *flags]
        os.makedirs(sys.argv[sys.argv.index("--save_path") + 1], exist_ok=True)
        captured = io.StringIO()
        with contextlib.redirect_stdout(captured):
            runpy.run_path(script, run_name="__main__")
        stamps = [(int(m.group(2)), float(m.group(1)))
                  for m in re.finditer(r"\[t=([\d.]+)\] iter = (\d+)", captured.getvalue())]
        if n == 0:  # iteration 0 alone: from the stamp printed just before their loop
            begins = float(re.search(r"\[t=([\d.]+)\] training begins", captured.getvalue()).group(1))
            stamps.insert(0, (-1, begins))
        (i0, t0), (i1, t1) = stamps[0], stamps[-1]
        emit(out, {"side": "authors", "method": method, "dataset": dataset, "ipc": ipc, "device": device_name(device),
                   "s_per_it": (t1 - t0) / (i1 - i0), "timed": i1 - i0, "unit": "iteration",
                   "repo": "VICO-UoE/DatasetCondensation", "script": script, "argv": sys.argv[1:],
                   "torch": torch.__version__, "threads": torch.get_num_threads(), "load_before": load})


# ---------------------------------------------------------------- the authors' IDC and DREAM code

def time_condense(repo: Path, label: str, repo_name: str, dataset: str, ipc: int, data: Path, site: Path,
                  device: str, out: Path, deadline: float, flags: tuple = ()) -> None:
    """Their condense.py --reproduce with --time, stopped after IDC_FLUSHES summaries."""
    if time.time() > deadline:
        emit(out, {"side": "authors", "method": label, "dataset": dataset, "ipc": ipc, "skipped": "deadline"})
        return
    load = load_average()
    idc_name = DATASETS[dataset][1]
    root = data / ("mnist" if dataset == "mnist" else "cifar10")
    cmd = [sys.executable, "-u", "condense.py", "--reproduce", "-d", idc_name, "-f", "2", "--ipc", str(ipc),
           "--data_dir", str(root), "--time", "--test", "--workers", "0", *flags]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(cmd, cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    # a process that hangs without printing must not hold the lease: killed a minute past the deadline
    watchdog = threading.Timer(max(1.0, deadline + 60 - time.time()), lambda: os.killpg(proc.pid, signal.SIGKILL))
    watchdog.start()
    summaries, current, lines = [], None, []
    for line in proc.stdout:
        lines.append(line)
        if "=========Summary=========" in line:
            current = {}
            summaries.append(current)
        elif current is not None and (m := re.match(r"(.+?): ([\d.]+)s \(avg .* count (\d+)\)", line.strip())):
            current[m.group(1)] = (float(m.group(2)), int(m.group(3)))
        if len(summaries) > PROFILE["flushes"] or time.time() > deadline + 60:
            break
    watchdog.cancel()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    timed = [s for s in summaries[1:PROFILE["flushes"]] if s]
    if not timed:
        emit(out, {"side": "authors", "method": label, "dataset": dataset, "ipc": ipc, "failed": "".join(lines[-30:])})
        return
    seconds = sum(v[0] for s in timed for v in s.values())
    steps = 10 * len(timed)
    stages = {k: sum(s[k][0] for s in timed) / steps for k in timed[0]}
    emit(out, {"side": "authors", "method": label, "dataset": dataset, "ipc": ipc, "device": device_name(device),
               "s_per_it": seconds / steps, "timed": steps, "unit": "inner step", "stages": stages,
               "repo": repo_name, "argv": cmd[2:], "threads": os.environ.get("OMP_NUM_THREADS", "all"),
               "load_before": load})


# ---------------------------------------------------------------- summary

def summary(path: Path) -> None:
    """The table: the last measured row of each side per cell."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    got = {(r["side"], r["method"], r["dataset"], r["ipc"]): r for r in rows if "s_per_it" in r}
    print("| method | dataset | IPC | unit | authors s | ours s | ours vs authors | threads | load before (authors, ours) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for method, dataset, ipc in dict.fromkeys(k[1:] for k in got):
        a, o = got.get(("authors", method, dataset, ipc)), got.get(("ours", method, dataset, ipc))
        cell = lambda r, key, fmt: format(r[key], fmt) if r and key in r else "-"  # noqa: E731
        ratio = f"{a['s_per_it'] / o['s_per_it']:.2f}x" if a and o else "-"
        print(f"| {method} | {dataset} | {ipc} | {(a or o)['unit']} | {cell(a, 's_per_it', '.3f')} | "
              f"{cell(o, 's_per_it', '.3f')} | {ratio} | {cell(o or a, 'threads', '')} | "
              f"{cell(a, 'load_before', '.2f')}, {cell(o, 'load_before', '.2f')} |")
    devices = {r.get("device") for r in rows if r.get("device")}
    print(f"\ndevices: {', '.join(sorted(devices))}; skipped: {sum('skipped' in r for r in rows)}; "
          f"failed: {sum('failed' in r for r in rows)}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--assets", type=Path, help="folder with vico/, idc/, dream/ exports, mnist/*.gz, cifar10-jpeg/")
    p.add_argument("--work", type=Path, default=Path("/tmp/gpu_side_by_side"))
    p.add_argument("--out", type=Path, default=ROOT / "experiments" / "speed" / "results")
    p.add_argument("--device", default="cuda")
    p.add_argument("--budget", type=float, default=420.0, help="seconds after which cells are skipped")
    p.add_argument("--datasets", default="mnist,cifar10-jpeg")
    p.add_argument("--ipcs", default="1,10")
    p.add_argument("--methods", default="dc,dsa,dm,idc,idc+dream")
    p.add_argument("--sides", default="ours,authors")
    p.add_argument("--ours-iterations", type=int, help="N for every cell of ours (0: iteration 0 alone)")
    p.add_argument("--profile", choices=sorted(PROFILES), default="gpu",
                   help="iteration counts: gpu, cpu (one thread of a small CPU), quick (a pipeline check)")
    p.add_argument("--threads", type=int, help="threads per process on a CPU (OMP/MKL_NUM_THREADS; default all)")
    p.add_argument("--summary", type=Path)
    p.add_argument("--_side", help=argparse.SUPPRESS)
    p.add_argument("--_dataset", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.summary:
        return summary(args.summary)
    deadline = START + args.budget
    args.out, args.work = args.out.resolve(), args.work.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    ipcs = [int(x) for x in args.ipcs.split(",")]
    PROFILE.update(PROFILES[args.profile])
    methods = PROFILE["methods"] = args.methods.split(",")
    PROFILE["theirs"] = {k: v for k, v in PROFILE["theirs"].items() if k[0] in methods}
    PROFILE["ours"] = {k: v if args.ours_iterations is None else args.ours_iterations
                       for k, v in PROFILE["ours"].items() if k[0] in methods}
    if args.threads:
        os.environ.update(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    data = args.work / "data"
    if args._side == "ours":
        return time_ours(args._dataset, data, args.device, args.out, deadline, ipcs)
    if args._side == "vico":
        return vico_runner((args.assets / "vico").resolve(), args._dataset, data, args.device, args.out, deadline,
                           ipcs)
    args.work.mkdir(parents=True, exist_ok=True)
    prepare_data(args.assets, args.work)
    site = authors_site(args.work)
    print(f"data ready after {time.time() - START:.0f} s", flush=True)
    remaining = lambda: max(1.0, deadline - time.time())  # noqa: E731
    for ipc in ipcs:  # IPC 1 everywhere first: what a short lease must not miss
        for dataset in args.datasets.split(","):
            sides = [s for s, name in (("ours", "ours"), ("vico", "authors")) if name in args.sides.split(",")]
            for side in sides:  # each in a fresh process: one CUDA context at a time
                cmd = [sys.executable, str(Path(__file__).resolve()), "--_side", side, "--_dataset", dataset,
                       "--work", str(args.work), "--out", str(args.out), "--device", args.device,
                       "--budget", str(remaining()), "--ipcs", str(ipc)]
                if args.assets:
                    cmd += ["--assets", str(args.assets)]
                cmd += ["--profile", args.profile, "--methods", args.methods]
                cmd += ["--threads", str(args.threads)] if args.threads else []
                if args.ours_iterations is not None:
                    cmd += ["--ours-iterations", str(args.ours_iterations)]
                env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
                if side == "vico":
                    env["PYTHONPATH"] = os.pathsep.join([str(site), env["PYTHONPATH"]])
                subprocess.run(cmd, env=env, cwd=ROOT, check=False)
            for label, sub, repo_name, flags in CONDENSE:
                if label not in methods or "authors" not in args.sides:
                    continue
                time_condense((args.assets / sub).resolve(), label, repo_name, dataset, ipc, args.work / "data",
                              site, args.device, args.out, deadline, flags)
    summary(args.out / "all_methods.jsonl")


if __name__ == "__main__":
    main()
