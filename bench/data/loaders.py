"""Loading each dataset through torchvision's own classes (or the files it ships as), into uint8
tensors; decoded archives are cached under ``$BENCH_CACHE``."""

from __future__ import annotations

import hashlib
import tarfile
import zlib
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

from bench.core.atomic import atomic_folder, atomic_torch_save, is_complete, is_write_failure, write_failed
from bench.core.errors import BenchError
from bench.data.spec import DatasetSpec, RawSplits, cache_root, downloads_allowed


def _missing_error(spec: DatasetSpec, root: Path, reason: str = "") -> BenchError:
    files = ", ".join(spec.expected_files)
    extra = f" ({reason})" if reason else ""
    return BenchError(
        f"dataset {spec.name!r}: files not found under {root}{extra}; expected {files} "
        f"(set --data-root or BENCH_DATA_ROOT)"
    )


def _torchvision_load(spec: DatasetSpec, root: Path, cls_name: str, split_kw: Callable[[bool], dict]):
    """Load both splits with torchvision's own class, downloading only when files are missing."""
    import torchvision.datasets as tvd  # deferred: a heavy import, needed only when a dataset is loaded

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


def _idx_problem(path: Path) -> str | None:
    """What is wrong with an IDX file (MNIST's format) as its own header describes it, or None:
    the header's magic and dimensions give the exact size the file must have."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(4)
        if len(head) < 4 or head[:2] != b"\0\0" or head[2] not in (0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E) or not 1 <= head[3] <= 4:
            return f"{path.name} has no IDX header (first bytes {head.hex() or 'none'}, {size} bytes)"
        dims_raw = handle.read(4 * head[3])
    if len(dims_raw) < 4 * head[3]:
        return f"{path.name} is {size} bytes, shorter than its IDX header"
    dims = [int.from_bytes(dims_raw[i:i + 4], "big") for i in range(0, len(dims_raw), 4)]
    item = {0x08: 1, 0x09: 1, 0x0B: 2, 0x0C: 4, 0x0D: 4, 0x0E: 8}[head[2]]
    expected = 4 + 4 * head[3] + item * int(np.prod(dims))
    if size != expected:
        shape = "x".join(map(str, dims))
        return f"{path.name} is {size} bytes, expected {expected} for its {shape} IDX header (truncated or corrupt)"
    return None


_VERIFIED: set[tuple] = set()  # (path, size, mtime) whose checksum matched in this process


def check_files(spec: DatasetSpec, root: Path) -> None:
    """Name the damaged file, with expected against found size or checksum, before torchvision's
    own check turns it into "not found or corrupted" with no detail."""
    for rel in spec.expected_files:
        path = root / rel
        if not path.is_file():
            continue  # a missing file is torchvision's (and the download's) business
        problem = _idx_problem(path) if path.name.endswith("-ubyte") else None
        expected_md5 = spec.file_md5.get(rel)
        stat = path.stat()
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        if problem is None and expected_md5 and key not in _VERIFIED:
            found = _file_digest(path)
            if found != expected_md5:
                problem = f"{path.name} has md5 {found}, expected {expected_md5} (corrupt)"
            else:
                _VERIFIED.add(key)
        if problem:
            raise BenchError(f"dataset {spec.name!r}: {problem}, under {root}")


def _load_train_flag(cls_name: str):
    """MNIST, FashionMNIST, CIFAR10 and CIFAR100: torchvision classes split by ``train=``."""

    def load(spec: DatasetSpec, root: Path, _: bool) -> RawSplits:
        check_files(spec, root)
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
    from torchvision.datasets import ImageFolder  # deferred: heavy, needed only to decode an archive

    return _decode_samples(ImageFolder(str(folder)))


def _decode_samples(dataset, size: int | None = None) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Every sample of a torchvision folder dataset (``ImageFolder``, ``ImageNet``) as RGB uint8,
    resized to ``size`` x ``size`` first when given (box filter: the downsampled-ImageNet recipe)."""
    def decode(path: str) -> np.ndarray:
        image = dataset.loader(path).convert("RGB")
        if size is not None and image.size != (size, size):
            image = image.resize((size, size), Image.BOX)
        return np.asarray(image)

    images = np.stack([decode(path) for path, _ in dataset.samples])
    labels = torch.tensor([label for _, label in dataset.samples])
    # ImageNet's own class turns ``classes`` into name tuples and keeps the folder names as ``wnids``
    return _as_nchw_uint8(images), labels, list(getattr(dataset, "wnids", dataset.classes))


def _folder_key(name: str, *paths: Path) -> str:
    """A cache key that changes when the folders are replaced or touched."""
    stamp = "".join(f"{p.resolve()}:{p.stat().st_mtime_ns}" for p in paths)
    return f"{name}-{hashlib.md5(stamp.encode()).hexdigest()[:12]}"


def _check_size(spec: DatasetSpec, where: Path, splits: RawSplits) -> RawSplits:
    got = tuple(splits.train_images.shape[1:])
    want = (spec.channels, spec.size, spec.size)
    if got != want:
        raise BenchError(f"dataset {spec.name!r}: images under {where} are {got[1]}x{got[2]}, expected "
                         f"{spec.size}x{spec.size} (a pre-downsampled copy, as TESLA reads it)")
    return splits


def _load_imagenet_downsampled(spec: DatasetSpec, root: Path, _: bool) -> RawSplits:
    """ImageNet-1K pre-downsampled to 64x64, as TESLA's ``get_dataset('ImageNet')`` reads it:
    ``<data root>/imagenet1k/64/train/<wnid>/*`` and ``.../64/val/<wnid>/*`` through ``ImageFolder``
    (ToTensor and ImageNet mean/std only, no resize). All images are decoded into memory: 1.28 M
    images take 15.7 GB as uint8."""
    top = root / str(spec.size)
    if not (top / "train").is_dir() or not (top / "val").is_dir():
        raise _missing_error(spec, root)

    def build() -> RawSplits:
        try:
            train_x, train_y, classes = _image_folder_tensors(top / "train")
            test_x, test_y, test_classes = _image_folder_tensors(top / "val")
        except (OSError, ValueError) as exc:
            raise BenchError(f"dataset {spec.name!r}: files under {top} are corrupt ({exc})") from None
        if test_classes != classes:
            raise BenchError(f"dataset {spec.name!r}: train/ and val/ under {top} hold different class folders")
        return _check_size(spec, top, RawSplits(train_x, train_y, test_x, test_y, classes))

    return _cached(_folder_key(spec.name, top / "train", top / "val"), build)


def _load_imagenet_full(spec: DatasetSpec, root: Path, _: bool) -> RawSplits:
    """The full-size ImageNet-1K through torchvision's ``ImageNet`` class (its devkit archive or its
    parsed ``meta.bin``, and the ``train``/``val`` folders it builds), each image box-downsampled to
    ``spec.size`` on load, the same recipe as the pre-downsampled copy."""
    from torchvision.datasets import ImageNet  # deferred: heavy, needed only here

    top = root
    try:
        splits = [ImageNet(str(top), split=split) for split in ("train", "val")]
    except (RuntimeError, FileNotFoundError) as exc:  # torchvision: archive or meta file missing
        raise _missing_error(spec, root, str(exc).splitlines()[0]) from None

    def build() -> RawSplits:
        (train_x, train_y, classes), (test_x, test_y, _) = (_decode_samples(s, spec.size) for s in splits)
        return _check_size(spec, top, RawSplits(train_x, train_y, test_x, test_y, classes))

    return _cached(_folder_key(f"{spec.name}{spec.size}", top / "train", top / "val"), build)


def _cached(key: str, build: Callable[[], RawSplits]) -> RawSplits:
    """Decoding tens of thousands of JPEGs takes a minute: keep the tensors in the cache folder."""
    path = cache_root() / "decoded" / f"{key}.pt"
    if path.exists():
        try:
            return RawSplits(**torch.load(path, weights_only=False))
        except Exception:
            path.unlink(missing_ok=True)  # a stale or broken cache is rebuilt, never trusted
    splits = build()
    atomic_torch_save(splits.__dict__, path)
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
            if not is_complete(extract_to):
                with atomic_folder(extract_to) as partial, tarfile.open(archive) as tar:
                    tar.extractall(partial, filter="data")
            top = next(p.parent for p in extract_to.rglob("train") if p.is_dir())
            train_x, train_y, classes = _image_folder_tensors(top / "train")
            test_x, test_y, _ = _image_folder_tensors(top / "test")
        except (tarfile.TarError, OSError, StopIteration, EOFError, zlib.error) as exc:
            if is_write_failure(exc):
                raise write_failed(extract_to, exc) from None
            raise BenchError(
                f"dataset {spec.name!r}: archive {archive} is corrupt or unreadable ({exc or type(exc).__name__})"
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
    from sklearn.datasets import load_digits  # deferred: sklearn is heavy and only digits needs it here
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
