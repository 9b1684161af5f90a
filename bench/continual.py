"""Class-incremental continual learning (Fig 4d): a grid of its own, with its own runner.

Protocol (algorithms.md appendix 4: the DM paper's set-up as IDC's ``continual-learning`` code runs
it): the classes are split into ``steps`` groups (CIFAR100: 5 steps of 20 classes); the order is a
permutation drawn with the run's seed (``numpy.random.RandomState(seed).permutation``, as VICO's
``seed_cl``), sorted inside each group as IDC's ``cifar100_order.pkl``. At step t:

1. the step's memory (IPC images per class) is distilled (or selected) by the method from **that
   step's classes only**, with the distillation model (ConvNet-3), exactly as an ordinary run of the
   method on a dataset restricted to those classes (the run's sampler and initialiser included);
2. the evaluation network (ResNet-10, batch norm) is trained on the memories of steps 0..t and
   tested on the test images of every class seen so far.

``protocol = "idc"`` (default): the network is fine-tuned from step to step; its classifier covers
the classes seen so far (the logits of unseen classes are excluded, the equivalent of IDC's growing
FC layer, except that new rows are initialised at the start rather than when the classes arrive),
and from step 1 on a frozen copy of the previous step's network adds a distillation loss
KL(old || new) on the old classes at temperature T (default 2), x T^2 x beta (beta 1), batch-mean
(IDC's KLDivLoss x number of old classes). Each step trains ``epochs`` epochs, SGD lr 0.01
momentum 0.9 weight decay 5e-4, lr x0.2 at 60% and 80% of the epochs, batch 64, IDC's DiffAug
(flip/colour, then one of crop/scale/rotate) and CutMix p = 0.5. ``protocol = "dm"``: a fresh
network per step, no distillation loss (VICO ``CL_DM.py``).

Epochs: the spec's ``[continual] epochs`` at paper scale (1000), else an ``epochs`` evaluation
override of the scale, else the scale preset's evaluation epochs. Networks per run: the preset's
number of evaluation models; the step accuracy is their mean.

Any dataset with at least ``steps`` classes works (CIFAR100 is not available offline here):
``--datasets digits`` runs 5 steps of 2 classes; records and captions name the dataset used.
Records live in ``<out>/continual/<run_id>/record.json`` (written last, atomically), beside each
step's memory ``step<t>.pt``; an existing record means the run is done and it is never rerun.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from bench.config import SCALE_PRESETS, RunConfig, parse_seeds, resolve, stable_hash
from bench.datasets import DATASETS, DataOptions
from bench.errors import BenchError
from bench.grid import DEFAULT_SEEDS, _merge, data_options, dream_switches, scale_override
from bench.specs import ContinualOptions, MethodSpec, Spec


@dataclass(frozen=True)
class ContinualCell:
    spec_id: str
    method: MethodSpec
    dataset: str
    ipc: int
    model: str
    seed: int
    scale: str
    config: RunConfig | None  # the distillation of one step (dataset = the full dataset's name)
    settings: tuple = ()  # (steps, protocol, eval_model, epochs, num_models, kd_temperature, kd_beta)
    note: str = ""
    run_id: str = ""
    cell_id: str = ""
    label: str = ""

    @property
    def runnable(self) -> bool:
        return self.config is not None and not self.note

    def describe(self) -> str:
        return f"{self.method.key} {self.dataset} ipc={self.ipc} seed={self.seed}"

    @property
    def options(self) -> dict:
        keys = ("steps", "protocol", "eval_model", "epochs", "num_models", "kd_temperature", "kd_beta")
        return dict(zip(keys, self.settings))


def _ids(resolved, settings: dict) -> tuple[str, str]:
    d = {"kind": "continual", "distill": resolved.as_dict(), **settings}
    run_id = stable_hash(d)
    d["distill"] = dict(d["distill"])
    d["distill"].pop("seed")
    return run_id, stable_hash(d)


def expand_continual(spec: Spec, scale: str = "paper", *, datasets=None, ipcs=None, seeds: str | None = None,
                     methods=None, params=(), eval=(), classes=None, max_train=None, max_test=None,
                     steps: int | None = None) -> list[ContinualCell]:
    so = scale_override(spec, scale)
    opts = spec.continual or ContinualOptions()
    g = spec.grid
    preset = SCALE_PRESETS.get(scale)
    dataset_list = list(datasets) if datasets else list(so.datasets or g.datasets)
    ipc_list = list(so.ipcs or g.ipcs)
    if ipcs:
        ipc_list = list(ipcs)
    seed_list = parse_seeds(seeds or so.seeds or DEFAULT_SEEDS.get(scale, g.seeds))
    eval_overrides = dict(_merge(g.eval, so.eval, eval))
    epochs = opts.epochs if scale == "paper" and "epochs" not in eval_overrides else int(
        eval_overrides.get("epochs") or preset.eval_epochs or opts.epochs)
    settings = {"steps": steps or so.steps or opts.steps, "protocol": opts.protocol, "eval_model": opts.eval_model,
                "epochs": epochs, "num_models": int(eval_overrides.get("num_models", preset.eval_models)),
                "kd_temperature": opts.kd_temperature, "kd_beta": opts.kd_beta}
    data = data_options(spec, scale, classes, max_train, max_test)
    method_list = [m for m in g.methods if not m.reported]
    if methods:
        method_list = [m for m in method_list if m.key in set(methods) or m.method in set(methods)]
    cells = []
    for m in method_list:
        sampler, initialiser, method_note = dream_switches(m)
        for dataset in dataset_list:
            note = method_note or ("" if dataset in DATASETS else f"dataset {dataset!r} is not registered yet")
            if not note and DATASETS.get(dataset).num_classes < settings["steps"]:
                note = f"dataset {dataset!r} has fewer classes than {settings['steps']} steps"
            for ipc in ipc_list:
                for model in g.models:
                    for seed in seed_list:
                        config, run_id, cell_id, label, cell_note = None, "", "", "", note
                        if not cell_note:
                            config = RunConfig(method=m.method, dataset=dataset, ipc=ipc, seed=seed, model=model,
                                               scale=scale, sampler=sampler, initialiser=initialiser,
                                               params=_merge(g.params, m.params, so.params, params), data=data)
                            try:
                                resolved = resolve(config)
                                run_id, cell_id = _ids(resolved, settings)
                                label = resolved.label
                            except BenchError as exc:
                                cell_note = f"cannot be configured: {exc}"
                        cells.append(ContinualCell(spec.id, m, dataset, ipc, model, seed, scale, config,
                                                   tuple(settings.values()), cell_note, run_id, cell_id, label))
    return cells


def overrides_from_args(args) -> dict:
    from bench.config import parse_overrides
    from bench.grid import _split

    datasets = _split(getattr(args, "datasets", None) or getattr(args, "dataset", None))
    return {"datasets": datasets or None,
            "ipcs": [int(i) for i in _split(getattr(args, "ipc", None))] or None,
            "seeds": getattr(args, "seeds", None), "methods": _split(getattr(args, "method", None)) or None,
            "params": parse_overrides(getattr(args, "params", []) or [], "--set"),
            "eval": parse_overrides(getattr(args, "eval", []) or [], "--eval-set"),
            "classes": getattr(args, "classes", None), "max_train": getattr(args, "max_train_per_class", None),
            "max_test": getattr(args, "max_test_per_class", None)}


def record_path(out, run_id: str) -> Path:
    return Path(out) / "continual" / run_id / "record.json"


def print_dry_run(cells: list[ContinualCell], out) -> None:
    from tabulate import tabulate

    rows = []
    for i, c in enumerate(cells, 1):
        status = f"missing: {c.note}" if c.note else ("done" if record_path(out, c.run_id).exists() else "to run")
        rows.append([i, c.method.key, c.label or c.method.method, c.dataset, c.ipc, c.seed,
                     f"{c.options['steps']} steps, {c.options['protocol']}, {c.options['eval_model']}, "
                     f"{c.options['epochs']} ep", c.run_id or "-", status])
    print(tabulate(rows, headers=["#", "key", "label", "dataset", "IPC", "seed", "continual", "run id", "status"]))


# ------------------------------------------------------------------------------------------ running
def class_groups(num_classes: int, steps: int, seed: int) -> list[list[int]]:
    order = np.random.RandomState(seed).permutation(num_classes)
    per = num_classes // steps
    return [sorted(int(c) for c in order[i * per:(i + 1) * per]) for i in range(steps)]


def subset(dataset, classes: list[int]):
    """The dataset restricted to ``classes``, relabelled 0..k-1 (train and test)."""
    lookup = torch.full((dataset.num_classes,), -1, dtype=torch.long)
    lookup[torch.tensor(classes)] = torch.arange(len(classes))
    tr = torch.isin(dataset.train_labels.cpu(), torch.tensor(classes))
    te = torch.isin(dataset.test_labels.cpu(), torch.tensor(classes))
    dev = dataset.train_images.device
    variant = ",".join(filter(None, [dataset.variant, "cl-classes=" + "-".join(map(str, classes))]))
    return replace(dataset, train_images=dataset.train_images[tr.to(dev)],
                   train_labels=lookup[dataset.train_labels.cpu()[tr]].to(dev),
                   test_images=dataset.test_images[te.to(dataset.test_images.device)],
                   test_labels=lookup[dataset.test_labels.cpu()[te]].to(dev),
                   class_names=[dataset.class_names[c] for c in classes], variant=variant)


def distil_step(resolved, sub, classes: list[int], device, run_dir: Path, seed: int):
    """One step's memory: the method run on the step's classes; labels mapped back to global ones."""
    from bench.context import RunContext
    from bench.seeding import seed_everything
    from bench.synset import SyntheticSet

    seed_everything(seed)
    ctx = RunContext(resolved, sub, device, run_dir)
    synset = resolved.method_cls().run(ctx)
    images, labels = synset.training_tensors(sub)
    mapping = torch.tensor(classes, device=labels.device)
    stored = SyntheticSet(synset.images.detach().cpu(), mapping[synset.labels].cpu(), synset.space, synset.factor,
                          synset.pipeline)
    return images.detach(), mapping[labels], stored, ctx.metrics


def _train_step(net, old_net, images, labels, seen: list[int], old: list[int], dataset, opts: dict, device):
    from bench.augment import cutmix
    from bench.evaluate import augmenter_for, resolve_protocol

    protocol = resolve_protocol("idc", dataset.name)
    augment = augmenter_for(protocol, dataset)
    epochs = opts["epochs"]
    seen_t = torch.tensor(seen, device=device)
    pos = torch.full((dataset.num_classes,), -1, dtype=torch.long, device=device)
    pos[seen_t] = torch.arange(len(seen), device=device)
    y_local = pos[labels]
    old_t = torch.tensor(old, device=device) if old else None
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [int(0.6 * epochs), int(0.8 * epochs)], 0.2)
    T, beta = opts["kd_temperature"], opts["kd_beta"]
    n = len(images)
    net.train()
    for _ in range(epochs):
        order = torch.randperm(n).to(device)
        for i in range(0, n, 64):
            idx = order[i:i + 64]
            if len(idx) < 2:  # batch norm cannot train on one image
                continue
            x, y = images[idx], y_local[idx]
            if augment is not None:
                x = augment(x)
            if torch.rand(1).item() < 0.5:
                x, ya, yb, r = cutmix(x, y)
                out = net(x)[:, seen_t]
                loss = r * F.cross_entropy(out, ya) + (1 - r) * F.cross_entropy(out, yb)
            else:
                out = net(x)[:, seen_t]
                loss = F.cross_entropy(out, y)
            if old_net is not None and old_t is not None:
                with torch.no_grad():
                    ref = old_net(x)[:, old_t]
                new_old = out[:, pos[old_t]]
                loss = loss + F.kl_div(F.log_softmax(new_old / T, 1), F.softmax(ref / T, 1),
                                       reduction="batchmean") * T * T * beta
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sched.step()


@torch.no_grad()
def _test_seen(net, dataset, seen: list[int], device) -> float:
    net.eval()
    seen_t = torch.tensor(seen, device=device)
    mask = torch.isin(dataset.test_labels, seen_t)
    x, y = dataset.normalise(dataset.test_images[mask]), dataset.test_labels[mask]
    correct = 0
    for i in range(0, len(x), 1024):
        pred = seen_t[net(x[i:i + 1024])[:, seen_t].argmax(1)]
        correct += (pred == y[i:i + 1024]).sum().item()
    net.train()
    return 100.0 * correct / max(1, len(x))


def run_cell(cell: ContinualCell, out, data_root=None, device: str = "auto", force: bool = False) -> tuple[dict, bool]:
    from bench.context import atomic_torch_save
    from bench.datasets import load_dataset
    from bench.models import build_model
    from bench.runner import configure_threads, pick_device
    from bench.seeding import seed_everything
    from bench.store import atomic_write_text, code_version, device_info, package_versions
    import json

    path = record_path(out, cell.run_id)
    if path.exists() and not force:
        return json.loads(path.read_text()), False
    configure_threads()
    dev = pick_device(device)
    resolved = resolve(cell.config)
    dataset = load_dataset(cell.dataset, data_root, resolved.data).to(dev)
    opts = cell.options
    if dataset.num_classes < opts["steps"]:
        raise BenchError(f"{cell.dataset} has {dataset.num_classes} classes: too few for {opts['steps']} steps")
    groups = class_groups(dataset.num_classes, opts["steps"], cell.seed)
    run_dir = path.parent
    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    memories, step_metrics = [], []
    for t, classes in enumerate(groups):
        sub = subset(dataset, classes)
        if cell.ipc > sub.smallest_class():
            raise BenchError(f"IPC {cell.ipc} exceeds the smallest class ({sub.smallest_class()}) of step {t}")
        images, labels, stored, metrics = distil_step(resolved, sub, classes, dev, run_dir / f"step{t}",
                                                      seed=cell.seed * 1000 + t)
        atomic_torch_save(stored.state(), run_dir / f"step{t}.pt")
        memories.append((images, labels))
        step_metrics.append({k: v for k, v in metrics.items() if k in ("loss", "dream", "init")})
    distill_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    per_model = []
    for k in range(opts["num_models"]):
        seed_everything(1_000_003 * (cell.seed + 1) + 7_000 + k)
        net = build_model(opts["eval_model"], dataset).to(dev)
        accs, seen = [], []
        for t, classes in enumerate(groups):
            old = list(seen)
            seen = sorted(seen + classes)
            if opts["protocol"] == "dm":
                net, old_net = build_model(opts["eval_model"], dataset).to(dev), None
            else:
                old_net = copy.deepcopy(net).eval() if t > 0 else None
            x = torch.cat([m[0] for m in memories[:t + 1]])
            y = torch.cat([m[1] for m in memories[:t + 1]])
            _train_step(net, old_net, x, y, seen, old if t > 0 and opts["protocol"] == "idc" else [], dataset, opts, dev)
            accs.append(_test_seen(net, dataset, seen, dev))
        per_model.append(accs)
    eval_s = time.perf_counter() - t1
    steps = []
    seen = []
    for t, classes in enumerate(groups):
        seen = sorted(seen + classes)
        values = [accs[t] for accs in per_model]
        steps.append({"step": t, "classes": classes, "classes_seen": len(seen), "accuracy": float(np.mean(values)),
                      "per_model": values, "memory_images": int(sum(len(m[0]) for m in memories[:t + 1]))})
    record = {
        "schema": 1, "kind": "continual", "run_id": cell.run_id, "cell_id": cell.cell_id, "seed": cell.seed,
        "config": {**resolved.as_dict(), **opts, "classes_per_step": len(groups[0]), "spec": cell.spec_id},
        "data_variant": dataset.variant, "class_order": groups, "steps": steps,
        "final_accuracy": steps[-1]["accuracy"], "step_metrics": step_metrics,
        "timings": {"distill_s": distill_s, "eval_s": eval_s, "total_s": distill_s + eval_s},
        "code_version": code_version(), "packages": package_versions(), "device": device_info(dev),
        "started_at": started.isoformat(), "finished_at": datetime.now(timezone.utc).isoformat(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(record, indent=1, sort_keys=True, default=float))
    return record, True


def run_cells(cells: list[ContinualCell], out, data_root=None, device: str = "auto", force: bool = False) -> list[dict]:
    from tabulate import tabulate

    from bench.store import check_writable

    lines = {}
    for c in cells:
        if c.note:
            lines.setdefault(c.note, []).append(c.method.key)
    for note, keys in lines.items():
        print(f"skipping {len(keys)} cell(s) of {', '.join(sorted(set(keys)))}: {note}", flush=True)
    runnable = [c for c in cells if c.runnable]
    check_writable(Path(out))
    records = []
    for i, c in enumerate(runnable, 1):
        print(f"[{i}/{len(runnable)}] continual {c.label} {c.dataset} ipc={c.ipc} seed={c.seed} scale={c.scale} "
              f"({c.run_id})", flush=True)
        record, ran = run_cell(c, out, data_root, device, force)
        if not ran:
            print("  done already: record exists (use --force to rerun)", flush=True)
        records.append(record)
    if records:
        print()
        print(tabulate([[r["config"]["label"], r["config"]["dataset"], r["config"]["ipc"], r["seed"],
                         " / ".join(f"{s['accuracy']:.1f}" for s in r["steps"]), f"{r['timings']['total_s']:.1f}",
                         r["run_id"]] for r in records],
                       headers=["method", "dataset", "IPC", "seed", "accuracy after each step (%)", "seconds", "run id"]))
    return records


# ------------------------------------------------------------------------------------------ stored results
@dataclass
class ContinualCollected:
    scale: str
    cells: list  # first seed of each cell
    records: dict  # cell_id -> records
    variant: str = ""

    def groups(self):
        return [(c, sorted(self.records.get(c.cell_id, []), key=lambda r: r["seed"])) for c in self.cells]

    def missing(self):
        return [(c.describe(), c.note or "not run yet") for c in self.cells if not self.records.get(c.cell_id)]


def stored(out) -> list[dict]:
    import json

    recs = []
    for path in sorted(Path(out).glob("continual/*/record.json")):
        try:
            recs.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return recs


def collect(spec: Spec, out, scales=None, datasets=None, **expand_kwargs) -> list[ContinualCollected]:
    expand_kwargs.pop("seeds", None)  # every seed found counts
    recs = stored(out)
    by_cell: dict[str, list] = {}
    for r in recs:
        by_cell.setdefault(r["cell_id"], []).append(r)
    result = []
    for scale in scales or ("paper", "reduced", "smoke"):
        so = scale_override(spec, scale)
        candidates = list(datasets) if datasets else list(dict.fromkeys(
            list(so.datasets or spec.grid.datasets) + [r["config"]["dataset"] for r in recs
                                                       if r["config"]["scale"] == scale and r["config"]["dataset"] in DATASETS]))
        seeds = so.seeds or DEFAULT_SEEDS.get(scale, spec.grid.seeds)
        cells = expand_continual(spec, scale, datasets=candidates, seeds=str(parse_seeds(seeds)[0]), **expand_kwargs)
        hits = {c.cell_id: by_cell[c.cell_id] for c in cells if c.cell_id in by_cell}
        if not hits and not scales:
            continue
        shown = {c.dataset for c in cells if c.cell_id in hits} or set(candidates)
        cells = [c for c in cells if c.dataset in shown]
        variant = next((r.get("data_variant", "") for rs in hits.values() for r in rs), "")
        result.append(ContinualCollected(scale, cells, hits, variant))
    if not result:
        cells = expand_continual(spec, "paper", seeds="0", **expand_kwargs)
        result.append(ContinualCollected("paper", cells, {}))
    return result
