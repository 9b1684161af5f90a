"""Dataset registry: every dataset is loaded into memory as float tensors in [0, 1].

Normalisation is not baked into the stored tensors because the two code bases the paper builds on
disagree: the DC/DSA/DM code normalises at load time, the IDC/DREAM code keeps raw [0, 1] images and
normalises inside its augmentation. Each method picks its space through :meth:`ImageDataset.normalise`.

Data root: ``--data-root`` or the ``BENCH_DATA_ROOT`` environment variable (default ``./data``).
Each dataset lives in its own sub-folder of the root (``<root>/mnist``, ``<root>/cifar10``, ...), in
the layout torchvision's own classes use, so ``BENCH_DATA_ROOT=../shared/data`` works as it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from bench.core.errors import BenchError
from bench.data.catalog import DATASETS  # noqa: F401  (every dataset registered)
from bench.data.spec import DatasetSpec, default_data_root


@dataclass
class ImageDataset:
    """A loaded dataset: [0, 1] float images in memory, with per-class index lists."""

    spec: DatasetSpec
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    class_names: list[str]
    variant: str = ""  # e.g. "classes=0-4,train<=500" for reduced smoke data
    _class_indices: list[torch.Tensor] = field(default_factory=list, repr=False)
    # normalisation constants per (pipeline, device, default dtype): made once, not at every step
    _stats_on: dict = field(default_factory=dict, repr=False, init=False, compare=False)

    def __post_init__(self) -> None:
        self._class_indices = [
            torch.nonzero(self.train_labels == c, as_tuple=True)[0] for c in range(self.num_classes)
        ]

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def channels(self) -> int:
        return self.train_images.shape[1]

    @property
    def size(self) -> int:
        return self.train_images.shape[-1]

    def class_indices(self, c: int) -> torch.Tensor:
        return self._class_indices[c]

    def class_images(self, c: int) -> torch.Tensor:
        return self.train_images[self._class_indices[c]]

    def smallest_class(self) -> int:
        return min(len(ix) for ix in self._class_indices)

    def stats(self, pipeline: str = "vico") -> tuple[torch.Tensor, torch.Tensor]:
        mean, std = self.spec.mean, self.spec.std
        if pipeline == "idc" and self.spec.idc_mean is not None:
            mean, std = self.spec.idc_mean, self.spec.idc_std
        return (
            torch.tensor(mean).view(1, -1, 1, 1),
            torch.tensor(std).view(1, -1, 1, 1),
        )

    def normalise(self, x: torch.Tensor, pipeline: str = "vico") -> torch.Tensor:
        key = (pipeline, x.device, torch.get_default_dtype())
        if key not in self._stats_on:
            self._stats_on[key] = tuple(t.to(x.device) for t in self.stats(pipeline))
        mean, std = self._stats_on[key]
        return (x - mean) / std

    def to(self, device: torch.device | str) -> "ImageDataset":
        return replace(
            self,
            train_images=self.train_images.to(device),
            train_labels=self.train_labels.to(device),
            test_images=self.test_images.to(device),
            test_labels=self.test_labels.to(device),
        )


@dataclass(frozen=True)
class DataOptions:
    """How much of a dataset a run uses: smoke runs take class subsets and fewer images."""

    classes: int | None = None  # the first k classes only
    max_train_per_class: int | None = None  # the first k training images of each class
    max_test_per_class: int | None = None

    def describe(self) -> str:
        parts = []
        if self.classes:
            parts.append(f"classes<{self.classes}")
        if self.max_train_per_class:
            parts.append(f"train<={self.max_train_per_class}/class")
        if self.max_test_per_class:
            parts.append(f"test<={self.max_test_per_class}/class")
        return ",".join(parts)


def _first_per_class(labels: torch.Tensor, classes: int, limit: int | None) -> torch.Tensor:
    keep = []
    for c in range(classes):
        ix = torch.nonzero(labels == c, as_tuple=True)[0]
        keep.append(ix[:limit] if limit else ix)
    return torch.sort(torch.cat(keep)).values


_MEMORY: dict[tuple, ImageDataset] = {}


def load_dataset(name: str, root: Path | str | None = None, options: DataOptions = DataOptions()) -> ImageDataset:
    """Load a registered dataset (cached in memory for the life of the process)."""
    spec = DATASETS.get(name)
    root = Path(root) if root is not None else default_data_root()
    key = (name, str(root.resolve()), options)
    if key in _MEMORY:
        return _MEMORY[key]
    raw = spec.loader(spec, root / spec.folder, True)
    classes = options.classes or len(raw.class_names)
    if classes > len(raw.class_names):
        raise BenchError(f"dataset {name!r} has {len(raw.class_names)} classes, not {classes}")
    train_keep = _first_per_class(raw.train_labels, classes, options.max_train_per_class)
    test_keep = _first_per_class(raw.test_labels, classes, options.max_test_per_class)

    def to_unit(x: torch.Tensor) -> torch.Tensor:
        return x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()

    dataset = ImageDataset(
        spec=spec,
        train_images=to_unit(raw.train_images[train_keep]),
        train_labels=raw.train_labels[train_keep].long(),
        test_images=to_unit(raw.test_images[test_keep]),
        test_labels=raw.test_labels[test_keep].long(),
        class_names=list(raw.class_names[:classes]),
        variant=options.describe(),
    )
    _MEMORY[key] = dataset
    return dataset
