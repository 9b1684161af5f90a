"""Class-incremental continual learning (Fig 4d): the ``continual`` task of an ordinary run.

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

Settings (:class:`ContinualSettings`, hashed with the run): ``steps``, ``protocol``, ``eval_model``,
``epochs`` (default: the scale preset's evaluation epochs, 1000 at paper scale), ``num_models``
(default: the preset's number of evaluation networks; the step accuracy is their mean),
``kd_temperature`` and ``kd_beta``. A spec's ``[continual]`` table sets them (bench/grid/cells.py).

Any dataset with at least ``steps`` classes works (CIFAR100 is not available offline here):
``--datasets digits`` runs 5 steps of 2 classes; records and captions name the dataset used.
Records live where every record lives, ``<out>/runs/<run_id>/record.json``, beside each step's
memory ``step<t>.pt``; so the grid, the launchers (``--executor slurm``) and ``bench status`` treat
these runs like any other. The record's ``accuracy`` is the accuracy after the last step.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from bench.core.atomic import atomic_torch_save
from bench.core.errors import BenchError
from bench.core.seeding import seed_everything
from bench.data.synset import SyntheticSet
from bench.evaluation.evaluate import augmenter_for, resolve_protocol
from bench.evaluation.train import train_network
from bench.nets.models import build_model
from bench.run.context import RunContext
from bench.run.distill import summary
from bench.run.tasks import TASKS, Task


@dataclass(frozen=True)
class ContinualSettings:
    steps: int = 5
    protocol: str = "idc"  # "idc": fine-tune with distillation loss | "dm": a fresh network per step
    eval_model: str = "resnet10"
    epochs: int = 1000
    num_models: int = 3
    kd_temperature: float = 2.0
    kd_beta: float = 1.0

    def __post_init__(self) -> None:
        if self.protocol not in ("idc", "dm"):
            raise ValueError(f"protocol must be 'idc' or 'dm', not {self.protocol!r}")
        if min(self.steps, self.epochs, self.num_models) < 1:
            raise ValueError("steps, epochs and num_models must be >= 1")


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
    seed_everything(seed)
    ctx = RunContext(resolved, sub, device, run_dir)
    synset = resolved.method_cls().run(ctx)
    images, labels = synset.training_tensors(sub)
    mapping = torch.tensor(classes, device=labels.device)
    stored = SyntheticSet(synset.images.detach().cpu(), mapping[synset.labels].cpu(), synset.space, synset.factor,
                          synset.pipeline)
    return images.detach(), mapping[labels], stored, ctx.metrics


def _train_step(net, old_net, images, labels, seen: list[int], old: list[int], dataset, opts: ContinualSettings,
                device) -> None:
    protocol = resolve_protocol("idc", dataset.name)
    augment = augmenter_for(protocol, dataset)
    epochs = opts.epochs
    seen_t = torch.tensor(seen, device=device)
    pos = torch.full((dataset.num_classes,), -1, dtype=torch.long, device=device)
    pos[seen_t] = torch.arange(len(seen), device=device)
    old_t = torch.tensor(old, device=device) if old else None
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [int(0.6 * epochs), int(0.8 * epochs)], 0.2)
    T, beta = opts.kd_temperature, opts.kd_beta

    def distillation(x, out):  # KL(old || new) on the old classes, IDC's KLDivLoss x T^2 x beta
        with torch.no_grad():
            ref = old_net(x)[:, old_t]
        return F.kl_div(F.log_softmax(out[:, pos[old_t]] / T, 1), F.softmax(ref / T, 1),
                        reduction="batchmean") * T * T * beta

    train_network(net, images, pos[labels], opt, range(epochs), 64, sched, augment, cutmix_p=0.5,
                  forward=lambda x: net(x)[:, seen_t],
                  extra_loss=distillation if old_net is not None and old_t is not None else None, min_batch=2)


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


def _evaluate(opts: ContinualSettings, groups, memories, dataset, seed: int, device) -> list[list[float]]:
    """Accuracy on the classes seen so far after each step, per evaluation network."""
    per_model = []
    for k in range(opts.num_models):
        seed_everything(1_000_003 * (seed + 1) + 7_000 + k)
        net = build_model(opts.eval_model, dataset).to(device)
        accs, seen = [], []
        for t, classes in enumerate(groups):
            old = list(seen)
            seen = sorted(seen + classes)
            if opts.protocol == "dm":
                net, old_net = build_model(opts.eval_model, dataset).to(device), None
            else:
                old_net = copy.deepcopy(net).eval() if t > 0 else None
            x = torch.cat([m[0] for m in memories[:t + 1]])
            y = torch.cat([m[1] for m in memories[:t + 1]])
            _train_step(net, old_net, x, y, seen, old if t > 0 and opts.protocol == "idc" else [], dataset, opts,
                        device)
            accs.append(_test_seen(net, dataset, seen, device))
        per_model.append(accs)
    return per_model


@TASKS.register("continual")
class ContinualTask(Task):
    Settings = ContinualSettings

    @classmethod
    def defaults(cls, scale) -> dict:
        return {"epochs": scale.eval_epochs or ContinualSettings.epochs, "num_models": scale.eval_models}

    def run(self, resolved, ctx, dataset, device):
        opts: ContinualSettings = resolved.task_settings
        seed = resolved.config.seed
        if dataset.num_classes < opts.steps:
            raise BenchError(f"{dataset.name} has {dataset.num_classes} classes: too few for {opts.steps} steps")
        groups = class_groups(dataset.num_classes, opts.steps, seed)
        t0 = time.perf_counter()
        memories, step_metrics = [], []
        for t, classes in enumerate(groups):
            sub = subset(dataset, classes)
            if resolved.config.ipc > sub.smallest_class():
                raise BenchError(f"IPC {resolved.config.ipc} exceeds the smallest class ({sub.smallest_class()}) "
                                 f"of step {t}")
            images, labels, stored, metrics = distil_step(resolved, sub, classes, device, ctx.run_dir / f"step{t}",
                                                          seed=seed * 1000 + t)
            atomic_torch_save(stored.state(), ctx.run_dir / f"step{t}.pt")
            memories.append((images, labels))
            step_metrics.append({k: v for k, v in metrics.items() if k in ("loss", "dream", "init")})
        distill_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        per_model = _evaluate(opts, groups, memories, dataset, seed, device)
        eval_s = time.perf_counter() - t1
        steps, seen = [], []
        for t, classes in enumerate(groups):
            seen = sorted(seen + classes)
            values = [accs[t] for accs in per_model]
            steps.append({"step": t, "classes": classes, "classes_seen": len(seen), "accuracy": float(np.mean(values)),
                          "per_model": values, "memory_images": int(sum(len(m[0]) for m in memories[:t + 1]))})
        final = [accs[-1] for accs in per_model]
        mean, std = summary(final)
        return None, {
            "accuracy": {"mean": mean, "std": std, "model": opts.eval_model, "reported": "accuracy after the last step",
                         "per_model": {opts.eval_model: {"last": final, "mean": mean, "std": std}}},
            "class_order": groups, "classes_per_step": len(groups[0]), "steps": steps,
            "final_accuracy": steps[-1]["accuracy"], "step_metrics": step_metrics,
            "timings": {"distill_s": distill_s, "eval_s": eval_s, "total_s": distill_s + eval_s},
        }
