"""The evaluation protocols of algorithms.md: train fresh networks on a synthetic set, test them.

* ``dsa``: the DC/DSA/DM protocol (VICO ``evaluate_synset``): batch 256, SGD lr 0.01 momentum 0.9
  wd 5e-4, E+1 epochs with lr x0.1 after epoch E//2, per-sample DSA augmentation, 1000 epochs.
* ``dc``: DC's own variant: 300 epochs without augmentation, except MNIST (1000 epochs with the DC
  paper's crop/scale/rotate augmentation).
* ``mtt``: MTT/TESLA's (VICO's ``evaluate_synset`` again): ``dsa`` with the lr distilled with the
  set instead of 0.01.
* ``idc``: the IDC/DREAM protocol (``test.py``/``train.py``): batch 64, MultiStepLR at 2E/3 and 5E/6
  with gamma 0.2, IDC-style DiffAug per sample (cutout dropped because CutMix is on) + CutMix p=0.5,
  tested at E/4, E/2, 3E/4 and E. MNIST: no CutMix and DSA ``color_crop_scale_rotate`` (the
  authors' ``--reproduce`` for factor > 1).

The reported figure is the last-epoch test accuracy. The best of the intermediate test checks is
stored too, labelled ``test_selected_best`` because it is chosen on the test set.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass

import torch
from tqdm import tqdm

from bench.core.errors import BenchError
from bench.core.params import typed_overrides
from bench.core.progress import progress_enabled
from bench.core.registry import Registry
from bench.core.seeding import seed_everything
from bench.data.datasets import DATASETS
from bench.evaluation.batched import train_and_test_together
from bench.evaluation.train import TrainingDiverged, test_accuracy, train_network
from bench.nets.augment import DC_PARAMS, DiffAugment
from bench.nets.models import build_model

PROTOCOLS: Registry["EvalProtocol"] = Registry("evaluation protocol")


@dataclass(frozen=True)
class EvalProtocol:
    name: str
    epochs: int = 1000
    batch_size: int = 256
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "half"  # "half": x0.1 after E//2 (E+1 epochs) | "idc": [2E/3, 5E/6] x0.2
    augment: str = "dsa"  # "dsa" | "dc" | "idc" | "none"
    cutmix_p: float = 0.0
    num_models: int = 3  # freshly initialised networks per run
    test_checks: int = 1  # test-set checks spread evenly over training, the last at the end
    learned_lr: bool = False  # train with the lr distilled with the set (SyntheticSet.lr) when it has one


PROTOCOLS.register("dsa")(EvalProtocol("dsa"))
PROTOCOLS.register("dc")(EvalProtocol("dc", epochs=300, augment="none"))
PROTOCOLS.register("idc")(EvalProtocol("idc", batch_size=64, schedule="idc", augment="idc", cutmix_p=0.5, test_checks=4))
# MTT/TESLA (their utils.evaluate_synset, VICO's): the DSA protocol with the learned synthetic lr
PROTOCOLS.register("mtt")(EvalProtocol("mtt", learned_lr=True))


def resolve_protocol(name: str, dataset_name: str, **overrides) -> EvalProtocol:
    """A registered protocol with the dataset's own exceptions (its spec's ``protocol_overrides``:
    the authors' per-dataset variants), then explicit overrides."""
    protocol = PROTOCOLS.get(name)
    protocol = dataclasses.replace(protocol, **DATASETS.get(dataset_name).protocol_overrides.get(name, {}))
    fields = {f.name for f in dataclasses.fields(EvalProtocol)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise BenchError(f"unknown evaluation setting(s) {unknown}; known: {sorted(fields - {'name'})}")
    return dataclasses.replace(protocol, **typed_overrides(EvalProtocol, overrides, "evaluation"))


def augmenter_for(protocol: EvalProtocol, dataset) -> DiffAugment | None:
    strategy = dataset.spec.dsa_strategy
    if protocol.augment == "none":
        return None
    if protocol.augment == "dsa":
        return DiffAugment(strategy, "dsa")
    if protocol.augment == "dc":
        return DiffAugment("crop_scale_rotate", "per_sample_choice", DC_PARAMS)
    if protocol.augment.startswith("idc:"):  # an explicit strategy, as IDC's --dsa_strategy
        return DiffAugment(protocol.augment[4:], "idc")
    if protocol.augment == "idc":  # cutout is dropped when CutMix is on, as in the IDC code
        ops = [op for op in strategy.split("_") if op != "cutout" or protocol.cutmix_p == 0]
        return DiffAugment("_".join(ops), "idc")
    raise BenchError(f"unknown augmentation {protocol.augment!r} in protocol {protocol.name!r}")


@dataclass
class ModelResult:
    model: str
    last: float
    test_selected_best: float
    checks: dict[int, float]  # epoch -> test accuracy
    seconds: float


class DropAndRestart:
    """The VICO evaluation's schedule (utils.evaluate_synset): train E + 1 epochs, and after the one
    with 0-based index E // 2 + 1 multiply the lr by 0.1 and build a new SGD. A new SGD on the same
    parameters is this one with its state (the momentum buffers) emptied, which is what ``step``
    does. ``step`` runs after each epoch, as an lr scheduler's does."""

    def __init__(self, optimizer: torch.optim.Optimizer, after_epoch: int, factor: float = 0.1):
        self.optimizer, self.after_epoch, self.factor, self.epoch = optimizer, after_epoch, factor, 0

    def step(self) -> None:
        self.epoch += 1
        if self.epoch == self.after_epoch:
            for group in self.optimizer.param_groups:
                group["lr"] *= self.factor
            self.optimizer.state.clear()


def _scheduler(protocol: EvalProtocol, optimizer: torch.optim.Optimizer, epochs: int):
    if protocol.schedule == "half":  # epochs = E + 1; the drop follows epoch number E // 2 + 2
        return DropAndRestart(optimizer, (epochs - 1) // 2 + 2)
    if protocol.schedule == "idc":
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, [2 * epochs // 3, 5 * epochs // 6], 0.2)
    raise BenchError(f"unknown schedule {protocol.schedule!r}")


def train_and_test(model_name: str, images: torch.Tensor, labels: torch.Tensor, dataset,
                   protocol: EvalProtocol, seed: int, desc: str = "", pipeline: str = "vico") -> ModelResult:
    """Train one freshly initialised network on normalised (images, labels); test it on the test
    split, normalised with the same statistics (``pipeline``) as the training images."""
    seed_everything(seed)
    device = images.device
    model = build_model(model_name, dataset).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=protocol.lr, momentum=protocol.momentum,
                                weight_decay=protocol.weight_decay)
    # The VICO loop runs E+1 epochs with the drop after epoch E//2; IDC's runs E.
    epochs = protocol.epochs + 1 if protocol.schedule == "half" else protocol.epochs
    scheduler = _scheduler(protocol, optimizer, epochs)
    augment = augmenter_for(protocol, dataset)
    check_at = {round(epochs * k / protocol.test_checks) for k in range(1, protocol.test_checks + 1)}
    checks: dict[int, float] = {}
    test_x = dataset.normalise(dataset.test_images.to(device), pipeline)
    test_y = dataset.test_labels.to(device)
    start = time.perf_counter()
    bar = tqdm(range(1, epochs + 1), desc=desc or f"eval {model_name}", leave=False,
               disable=not progress_enabled(), unit="ep")

    def check(epoch: int) -> None:
        if epoch in check_at:
            checks[epoch] = test_accuracy(model, test_x, test_y)
            bar.set_postfix(acc=f"{checks[epoch]:.1f}")

    try:
        train_network(model, images, labels, optimizer, bar, protocol.batch_size, scheduler, augment,
                      protocol.cutmix_p, on_epoch_end=check)
    except TrainingDiverged as exc:
        raise TrainingDiverged(f"evaluation ({desc or model_name}, lr {protocol.lr:g}, {len(images)} images): {exc}; "
                               "no record written") from None
    seconds = time.perf_counter() - start
    return ModelResult(model_name, checks[epochs], max(checks.values()), checks, seconds)


def evaluate_synset(synset, dataset, model_names: list[str], protocol: EvalProtocol, seed: int,
                    device: torch.device | str = "cpu", together: bool | None = None) -> dict[str, list[ModelResult]]:
    """``protocol.num_models`` fresh networks of every named model, each with its own derived seed:
    one after another, or trained together (``together``; default: ``$BENCH_EVAL_TOGETHER``, see
    bench/evaluation/batched.py), which gives the same accuracies up to float rounding."""
    images, labels = synset.training_tensors(dataset)
    images, labels = images.to(device), labels.to(device)
    if protocol.learned_lr and synset.lr is not None:
        protocol = dataclasses.replace(protocol, lr=float(synset.lr))
    together = evaluate_together() if together is None else together
    results: dict[str, list[ModelResult]] = {}
    for m, name in enumerate(model_names):
        seeds = [_eval_seed(seed, m, k) for k in range(protocol.num_models)]
        if together and len(seeds) > 1:
            results[name] = _train_together(name, images, labels, dataset, protocol, seeds, synset.pipeline)
            continue
        results[name] = [
            train_and_test(name, images, labels, dataset, protocol, pipeline=synset.pipeline,
                           seed=s, desc=f"eval {name} {k + 1}/{protocol.num_models}")
            for k, s in enumerate(seeds)
        ]
    return results


TOGETHER_ENV = "BENCH_EVAL_TOGETHER"


def evaluate_together() -> bool:
    """``bench run --eval-together`` sets it, so executors' subprocesses and jobs see it too."""
    return os.environ.get(TOGETHER_ENV, "0") in ("1", "true", "yes")


def _train_together(name, images, labels, dataset, protocol, seeds, pipeline) -> list[ModelResult]:
    epochs = protocol.epochs + 1 if protocol.schedule == "half" else protocol.epochs
    check_at = {round(epochs * k / protocol.test_checks) for k in range(1, protocol.test_checks + 1)}
    test_x = dataset.normalise(dataset.test_images.to(images.device), pipeline)
    results, seconds = train_and_test_together(
        name, images, labels, dataset, protocol, seeds, test_x, dataset.test_labels.to(images.device), epochs,
        lambda optimizer: _scheduler(protocol, optimizer, epochs), augmenter_for(protocol, dataset), check_at)
    return [ModelResult(name, last, best, checks, seconds / len(seeds)) for last, best, checks in results]


def _eval_seed(run_seed: int, model_index: int, repeat: int) -> int:
    # Disjoint from the distillation seed stream, stable across code changes.
    return 1_000_003 * (run_seed + 1) + 1_000 * model_index + repeat
