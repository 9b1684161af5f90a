"""What the harness knows about a dataset before loading it: one :class:`DatasetSpec` per dataset,
holding every fact the layers above need (normalisation, augmentation strategy, the authors'
per-dataset protocol and hyperparameter exceptions, display name). Nothing above this layer keys a
fact by a dataset's name; adding a dataset is one ``DATASETS.register`` of a spec."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from bench.core.registry import Registry

DATASETS: Registry["DatasetSpec"] = Registry("dataset")


@dataclass(frozen=True)
class DatasetSpec:
    """What the harness knows about a dataset before loading it."""

    name: str
    channels: int
    size: int
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    # The IDC/DREAM code uses CIFAR10's statistics for CIFAR100 (algorithms.md 1.1).
    idc_mean: tuple[float, ...] | None
    idc_std: tuple[float, ...] | None
    folder: str
    expected_files: tuple[str, ...]
    loader: Callable[["DatasetSpec", Path, bool], "RawSplits"]
    # The VICO DSA strategy per dataset: flip hurts digits.
    dsa_strategy: str = "color_crop_cutout_flip_scale_rotate"
    # Which metric IDC/DREAM match gradients with (algorithms.md 2.5).
    idc_metric: str = "mse"
    # The IDC code picks the ResNet branch by dataset name, not size.
    resnet_branch: str = "imagenet"
    downloadable: bool = True
    # DREAM's real batch per class (its --reproduce: 128, 64 on Tiny ImageNet) for IDC-based matching.
    dream_batch_real: int = 128
    display: str = ""  # the name tables and figures print ("" = the registered name)
    # Paper numbers a stand-in is shown beside (cifar10-jpeg -> cifar10), with a note saying so.
    paper_stand_in: str | None = None
    # The authors' per-dataset exceptions to an evaluation protocol: {protocol: {field: value}}.
    protocol_overrides: dict = field(default_factory=dict, compare=False)
    # IDC's per-dataset defaults (algorithms.md 2.5, misc/reproduce.py): the base image lr
    # (tune_lr_img rescales it), the real images seen per network-update round, the image size
    # tune_lr_img scales against, per-IPC lr exceptions, and what changes with multi-formation.
    idc_lr_img: float = 5e-3
    idc_n_data: int = 500
    idc_lr_base_size: int = 32
    idc_lr_img_at_ipc: dict = field(default_factory=dict, compare=False)
    idc_multi_formation: dict = field(default_factory=dict, compare=False)
    # md5 of files whose published bytes are known ({relative path: md5}): checked once per process,
    # so a garbled file is named with both checksums instead of training on noise.
    file_md5: dict = field(default_factory=dict, compare=False)

    @property
    def title(self) -> str:
        return self.display or self.name


@dataclass
class RawSplits:
    train_images: torch.Tensor  # uint8 or float, (N, C, H, W)
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    class_names: list[str]


def default_data_root() -> Path:
    return Path(os.environ.get("BENCH_DATA_ROOT", "data"))


def cache_root() -> Path:
    return Path(os.environ.get("BENCH_CACHE", Path.home() / ".cache" / "dream-bench"))


def downloads_allowed() -> bool:
    return os.environ.get("BENCH_OFFLINE", "0") not in ("1", "true", "yes")
