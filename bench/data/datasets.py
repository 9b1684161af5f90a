"""Dataset registry: every dataset is loaded into memory as float tensors in [0, 1].

Normalisation is not baked into the stored tensors because the two code bases the paper builds on
disagree: the DC/DSA/DM code normalises at load time, the IDC/DREAM code keeps raw [0, 1] images and
normalises inside its augmentation. Each method picks its space through :meth:`ImageDataset.normalise`.

Data root: ``--data-root`` or the ``BENCH_DATA_ROOT`` environment variable (default ``./data``).
Each dataset lives in its own sub-folder of the root (``<root>/mnist``, ``<root>/cifar10``, ...), in
the layout torchvision's own classes use, so ``BENCH_DATA_ROOT=../shared/data`` works as it is.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from bench.core.errors import BenchError
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


@dataclass
class RawSplits:
    train_images: torch.Tensor  # uint8 or float, (N, C, H, W)
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    class_names: list[str]


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
        mean, std = self.stats(pipeline)
        return (x - mean.to(x.device)) / std.to(x.device)

    def to(self, device: torch.device | str) -> "ImageDataset":
        return replace(
            self,
            train_images=self.train_images.to(device),
            train_labels=self.train_labels.to(device),
            test_images=self.test_images.to(device),
            test_labels=self.test_labels.to(device),
        )


# --------------------------------------------------------------------------------------- roots


def default_data_root() -> Path:
    return Path(os.environ.get("BENCH_DATA_ROOT", "data"))


def cache_root() -> Path:
    return Path(os.environ.get("BENCH_CACHE", Path.home() / ".cache" / "dream-bench"))


def downloads_allowed() -> bool:
    return os.environ.get("BENCH_OFFLINE", "0") not in ("1", "true", "yes")


def _missing_error(spec: DatasetSpec, root: Path, reason: str = "") -> BenchError:
    files = ", ".join(spec.expected_files)
    extra = f" ({reason})" if reason else ""
    return BenchError(
        f"dataset {spec.name!r}: files not found under {root}{extra}; expected {files} "
        f"(set --data-root or BENCH_DATA_ROOT)"
    )


def _torchvision_load(spec: DatasetSpec, root: Path, cls_name: str, split_kw: Callable[[bool], dict]):
    """Load both splits with torchvision's own class, downloading only when files are missing."""
    import torchvision.datasets as tvd

    cls = getattr(tvd, cls_name)
    splits = []
    for train in (True, False):
        try:
            splits.append(cls(root=str(root), download=False, **split_kw(train)))
            continue
        except RuntimeError as exc:  # torchvision's "Dataset not found or corrupted"
            first_error = exc
        except Exception as exc:  # truncated or garbled files fail while parsing
            raise BenchError(
                f"dataset {spec.name!r}: files under {root} are corrupt or unreadable "
                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
            ) from None
        if not downloads_allowed() or not spec.downloadable:
            raise _missing_error(spec, root, str(first_error).splitlines()[0])
        try:
            splits.append(cls(root=str(root), download=True, **split_kw(train)))
        except Exception as exc:
            raise _missing_error(
                spec, root, f"download failed: {type(exc).__name__}: {str(exc).splitlines()[0]}"
            ) from None
    return splits


def _as_nchw_uint8(data) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(data))
    if t.ndim == 3:  # (N, H, W) greyscale
        t = t.unsqueeze(1)
    elif t.shape[-1] in (1, 3) and t.shape[1] not in (1, 3):  # (N, H, W, C)
        t = t.permute(0, 3, 1, 2)
    return t.contiguous()


def _load_train_flag(cls_name: str):
    """MNIST, FashionMNIST, CIFAR10 and CIFAR100: torchvision classes split by ``train=``."""

    def load(spec: DatasetSpec, root: Path, _: bool) -> RawSplits:
        train, test = _torchvision_load(spec, root, cls_name, lambda t: {"train": t})
        return RawSplits(
            _as_nchw_uint8(train.data), torch.as_tensor(train.targets),
            _as_nchw_uint8(test.data), torch.as_tensor(test.targets),
            list(train.classes),
        )

    return load


def _load_svhn(spec: DatasetSpec, root: Path, _: bool) -> RawSplits:
    train, test = _torchvision_load(
        spec, root, "SVHN", lambda t: {"split": "train" if t else "test"}
    )
    return RawSplits(
        torch.as_tensor(train.data), torch.as_tensor(train.labels),
        torch.as_tensor(test.data), torch.as_tensor(test.labels),
        [str(i) for i in range(10)],
    )


def _image_folder_tensors(folder: Path) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Decode an ImageFolder tree into one uint8 tensor with torchvision's own class."""
    from torchvision.datasets import ImageFolder

    dataset = ImageFolder(str(folder))
    images = np.stack([np.asarray(dataset.loader(path).convert("RGB")) for path, _ in dataset.samples])
    labels = torch.tensor([label for _, label in dataset.samples])
    return _as_nchw_uint8(images), labels, list(dataset.classes)


def _cached(key: str, build: Callable[[], RawSplits]) -> RawSplits:
    """Decoding tens of thousands of JPEGs takes a minute: keep the tensors in the cache folder."""
    path = cache_root() / "decoded" / f"{key}.pt"
    if path.exists():
        try:
            return RawSplits(**torch.load(path, weights_only=False))
        except Exception:
            path.unlink(missing_ok=True)  # a stale or broken cache is rebuilt, never trusted
    splits = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    torch.save(splits.__dict__, tmp)
    os.replace(tmp, path)
    return splits


def _file_digest(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _load_cifar10_jpeg(spec: DatasetSpec, root: Path, _: bool) -> RawSplits:
    archive = root / "cifar10-jpeg.tar.gz"
    if not archive.exists():
        raise _missing_error(spec, root)
    key = f"cifar10-jpeg-{_file_digest(archive)}"

    def build() -> RawSplits:
        extract_to = cache_root() / "extracted" / key
        try:
            if not (extract_to / "train").exists():
                extract_to.mkdir(parents=True, exist_ok=True)
                with tarfile.open(archive) as tar:
                    tar.extractall(extract_to, filter="data")
            top = next(p.parent for p in extract_to.rglob("train") if p.is_dir())
            train_x, train_y, classes = _image_folder_tensors(top / "train")
            test_x, test_y, _ = _image_folder_tensors(top / "test")
        except (tarfile.TarError, OSError, StopIteration, EOFError) as exc:
            raise BenchError(
                f"dataset {spec.name!r}: archive {archive} is corrupt or unreadable ({exc})"
            ) from None
        return RawSplits(train_x, train_y, test_x, test_y, classes)

    return _cached(key, build)


def _load_tinyimagenet(spec: DatasetSpec, root: Path, _: bool) -> RawSplits:
    """The standard ``tiny-imagenet-200/`` layout: train/<wnid>/images/*.JPEG, val annotations."""
    top = root / "tiny-imagenet-200"
    annotations = top / "val" / "val_annotations.txt"
    if not (top / "train").is_dir() or not annotations.exists():
        raise _missing_error(spec, root)
    stamp = f"{(top / 'train').stat().st_mtime_ns}-{annotations.stat().st_size}"
    key = f"tinyimagenet-{hashlib.md5(str(top.resolve()).encode() + stamp.encode()).hexdigest()[:12]}"

    def build() -> RawSplits:
        from PIL import Image

        try:
            train_x, train_y, wnids = _image_folder_tensors(top / "train")
            index = {w: i for i, w in enumerate(wnids)}
            images, labels = [], []
            for line in annotations.read_text().splitlines():
                name, wnid = line.split("\t")[:2]
                with Image.open(top / "val" / "images" / name) as img:
                    images.append(np.asarray(img.convert("RGB")))
                labels.append(index[wnid])
        except (OSError, KeyError, ValueError) as exc:
            raise BenchError(f"dataset {spec.name!r}: files under {top} are corrupt ({exc})") from None
        return RawSplits(train_x, train_y, _as_nchw_uint8(np.stack(images)), torch.tensor(labels), wnids)

    return _cached(key, build)


def _load_digits(spec: DatasetSpec, root: Path, _: bool) -> RawSplits:
    """scikit-learn's bundled 8x8 digits (1797 images, values 0..16): no download needed.

    There is no official split: a stratified 70/30 split with a fixed seed, so every run and every
    machine sees the same test set.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = (bunch.images * (255.0 / 16.0)).round().astype(np.uint8)[:, None]
    x_train, x_test, y_train, y_test = train_test_split(
        images, bunch.target, test_size=0.3, random_state=0, stratify=bunch.target
    )
    return RawSplits(
        torch.as_tensor(x_train), torch.as_tensor(y_train),
        torch.as_tensor(x_test), torch.as_tensor(y_test),
        [str(i) for i in range(10)],
    )


_CIFAR10_STATS = ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))
_MNIST_FILES = tuple(
    f"{{cls}}/raw/{n}" for n in (
        "train-images-idx3-ubyte", "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte",
    )
)

for _spec in (
    DatasetSpec("mnist", 1, 28, 10, (0.1307,), (0.3081,), None, None, "mnist",
                tuple(f.format(cls="MNIST") for f in _MNIST_FILES), _load_train_flag("MNIST"),
                dsa_strategy="color_crop_cutout_scale_rotate", idc_metric="l1"),
    DatasetSpec("fashionmnist", 1, 28, 10, (0.2861,), (0.3530,), None, None, "fashionmnist",
                tuple(f.format(cls="FashionMNIST") for f in _MNIST_FILES),
                _load_train_flag("FashionMNIST"), idc_metric="l1"),
    DatasetSpec("svhn", 3, 32, 10, (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970), None, None,
                "svhn", ("train_32x32.mat", "test_32x32.mat"), _load_svhn,
                dsa_strategy="color_crop_cutout_scale_rotate"),
    DatasetSpec("cifar10", 3, 32, 10, *_CIFAR10_STATS, None, None, "cifar10",
                ("cifar-10-batches-py/",), _load_train_flag("CIFAR10"), resnet_branch="cifar"),
    DatasetSpec("cifar100", 3, 32, 100, (0.5071, 0.4866, 0.4409), (0.2673, 0.2564, 0.2762),
                *_CIFAR10_STATS, "cifar100", ("cifar-100-python/",), _load_train_flag("CIFAR100"),
                resnet_branch="cifar"),
    DatasetSpec("cifar10-jpeg", 3, 32, 10, *_CIFAR10_STATS, None, None, "cifar10-jpeg",
                ("cifar10-jpeg.tar.gz",), _load_cifar10_jpeg, resnet_branch="cifar",
                downloadable=False),
    DatasetSpec("tinyimagenet", 3, 64, 200, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), None, None,
                "tinyimagenet", ("tiny-imagenet-200/train/", "tiny-imagenet-200/val/val_annotations.txt"),
                _load_tinyimagenet, downloadable=False, dream_batch_real=64),
    DatasetSpec("digits", 1, 8, 10, (0.3056,), (0.3760,), None, None, "digits", (),
                _load_digits, dsa_strategy="color_crop_cutout_scale_rotate", idc_metric="l1",
                downloadable=False),
):
    DATASETS.register(_spec.name)(_spec)


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
