"""Expert trajectories (MTT's ``buffer.py``) as a stored artefact: N networks trained on the real
training set, each epoch's parameters kept, under ``<store>/experts/<key>/``, where the key hashes
everything that makes them (dataset and its variant, model, epochs, optimiser, augmentation).

* Every cell that asks for the same experts reads the same files; nobody trains them twice.
* Each expert is written atomically when it finishes (``expert_007.pt``: a (epochs + 1, P) float32
  tensor of flat parameters, epoch 0 the initialisation, and its test accuracy), so a killed job
  loses at most the expert it was training; the next call trains only the missing ones.
* Expert k's initialisation and data order come from a seed derived from (key, k): the same expert
  whoever trains it, in-process, in a local subprocess or as one task of a SLURM array
  (``bench experts --executor slurm``).
* Two runs that need the same missing experts at the same moment both train them (identical files,
  by the seed); ``bench experts`` first avoids the duplicate work.

The authors' ``buffer.py`` defaults: 50 epochs, SGD lr 0.01 without momentum or weight decay, batch
256, DSA (per-sample parameters, their ``dsa_strategy``) on every batch, no lr decay (``--decay``
off). ZCA whitening (their CIFAR scripts' ``--zca``) is not implemented: these are their ``_NO_ZCA``
experts.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from bench.core.atomic import atomic_torch_save, atomic_write_text
from bench.core.errors import BenchError
from bench.core.progress import progress_enabled
from bench.core.seeding import preserved_rng, seed_everything
from bench.evaluation.train import test_accuracy, train_network
from bench.nets.augment import DiffAugment
from bench.nets.models import build_model
from bench.nets.trajectory import FlatNetwork


@dataclass(frozen=True)
class ExpertSpec:
    """What makes a set of experts; its hash names their folder."""

    dataset: str
    data_variant: str  # the loaded subset ("" for the full set): experts of a subset are other experts
    model: str
    epochs: int = 50
    lr: float = 0.01
    batch: int = 256
    momentum: float = 0.0
    weight_decay: float = 0.0
    augment: str = "dsa"  # "dsa" (the dataset's DSA strategy, per-sample draws) or "none"
    decay: bool = False  # buffer.py --decay: lr x0.1 after epoch epochs // 2 + 1

    @property
    def key(self) -> str:
        text = json.dumps(asdict(self), sort_keys=True)
        return f"{self.dataset}-{self.model}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"

    def seed(self, index: int) -> int:
        return int(hashlib.sha256(f"{self.key}:{index}".encode()).hexdigest()[:8], 16) % (2**31 - 1)


class ExpertStore:
    """The folder of one :class:`ExpertSpec`'s experts."""

    def __init__(self, root: Path | str, spec: ExpertSpec):
        self.spec = spec
        self.folder = Path(root) / "experts" / spec.key

    def path(self, index: int) -> Path:
        return self.folder / f"expert_{index:03d}.pt"

    def missing(self, count: int) -> list[int]:
        return [k for k in range(count) if not self.path(k).exists()]

    def trajectory(self, index: int) -> torch.Tensor:
        """(epochs + 1, P) float32, memory-mapped: a hundred experts need not fit in memory."""
        return torch.load(self.path(index), mmap=True, weights_only=True)["trajectory"]

    def describe(self) -> dict:
        done = sorted(self.folder.glob("expert_*.pt"))
        return {"key": self.spec.key, "folder": str(self.folder), "experts": len(done), "spec": asdict(self.spec)}

    def write_spec(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        spec_file = self.folder / "spec.json"
        if not spec_file.exists():
            atomic_write_text(spec_file, json.dumps(asdict(self.spec), indent=1, sort_keys=True))


def train_expert(store: ExpertStore, index: int, dataset, device: torch.device) -> dict:
    """Train expert ``index`` on the whole (normalised) training set and store its trajectory.

    The expert's seed comes from its key; the caller's RNG streams are restored afterwards, so a run
    that trains its experts and a run that finds them stored go on identically."""
    with preserved_rng():
        return _train_expert(store, index, dataset, device)


def _train_expert(store: ExpertStore, index: int, dataset, device: torch.device) -> dict:
    spec = store.spec
    seed_everything(spec.seed(index))
    net = build_model(spec.model, dataset).to(device)
    flat = FlatNetwork(net)
    optimizer = torch.optim.SGD(net.parameters(), lr=spec.lr, momentum=spec.momentum, weight_decay=spec.weight_decay)
    augment = DiffAugment(dataset.spec.dsa_strategy, "dsa") if spec.augment == "dsa" else None
    images = dataset.normalise(dataset.train_images)
    snapshots = [flat.flatten().cpu()]
    decay_after = spec.epochs // 2 + 2 if spec.decay else None  # after 0-based epoch epochs // 2 + 1

    def snapshot(epoch: int) -> None:
        snapshots.append(flat.flatten().cpu())
        if epoch == decay_after:
            for group in optimizer.param_groups:
                group["lr"] *= 0.1
            optimizer.state.clear()  # buffer.py builds a new SGD there

    started = time.perf_counter()
    bar = tqdm(range(1, spec.epochs + 1), desc=f"expert {index} {spec.dataset} {spec.model}", unit="ep",
               leave=False, disable=not progress_enabled())
    train_network(net, images, dataset.train_labels, optimizer, bar, spec.batch, augment=augment, on_epoch_end=snapshot)
    accuracy = test_accuracy(net, dataset.normalise(dataset.test_images), dataset.test_labels)
    store.write_spec()
    atomic_torch_save({"trajectory": torch.stack(snapshots), "test_accuracy": accuracy, "seed": spec.seed(index),
                       "seconds": time.perf_counter() - started}, store.path(index))
    return {"index": index, "test_accuracy": accuracy, "seconds": time.perf_counter() - started}


def ensure_experts(root: Path | str, spec: ExpertSpec, count: int, dataset, device: torch.device,
                   announce: bool = True) -> ExpertStore:
    """The store with ``count`` experts, training the missing ones here, one after another."""
    if count < 1:
        raise BenchError(f"need at least one expert, got {count}")
    store = ExpertStore(root, spec)
    missing = store.missing(count)
    for i, k in enumerate(missing, 1):
        info = train_expert(store, k, dataset, device)
        if announce:
            print(f"expert {k} ({i}/{len(missing)} missing) of {spec.key}: test {info['test_accuracy']:.2f} %, "
                  f"{info['seconds']:.0f} s", flush=True)
    return store
