"""Data and import shims the authors' code needs here, shared by the parity and speed experiments:
CIFAR-10 pickles written from our decode of the CIFAR10-JPEG archive (the authors' torchvision
``CIFAR10`` reads ``cifar-10-batches-py``), and a folder for the authors' PYTHONPATH. Not part of
the package: experiments only."""
from __future__ import annotations

import pickle
from pathlib import Path


def write_cifar_pickles(data: Path, dest: Path, per_class: int | None = None) -> None:
    """CIFAR10-JPEG as CIFAR-10's python pickles; with ``per_class``, only the first ``per_class``
    training images of each class, in file order (what our ``max_train_per_class`` keeps), and the
    whole test set."""
    import torch

    from bench.data.datasets import DataOptions, load_dataset

    ds = load_dataset("cifar10-jpeg", data, DataOptions(max_train_per_class=per_class))
    dest.mkdir(parents=True, exist_ok=True)

    def batch(images, labels):  # CIFAR's layout: uint8 rows of 3072 (R plane, G, B), list of labels
        rows = (images * 255).round().clamp(0, 255).to(torch.uint8).reshape(len(images), -1)
        return {"data": rows.numpy(), "labels": [int(y) for y in labels]}

    n = len(ds.train_images)
    for k in range(5):
        part = slice(k * n // 5, (k + 1) * n // 5)
        with open(dest / f"data_batch_{k + 1}", "wb") as fh:
            pickle.dump(batch(ds.train_images[part], ds.train_labels[part]), fh)
    with open(dest / "test_batch", "wb") as fh:
        pickle.dump(batch(ds.test_images, ds.test_labels), fh)
    with open(dest / "batches.meta", "wb") as fh:
        pickle.dump({"label_names": list(ds.class_names)}, fh)


def authors_site(work: Path) -> Path:
    """A folder put first on the authors' PYTHONPATH: an empty ``efficientnet_pytorch`` (IDC's
    train.py imports it at the top; unused here) and a ``sitecustomize`` that lets torchvision's
    CIFAR10 read pickles whose md5 is not the published one."""
    site = work / "authors_site"
    (site / "efficientnet_pytorch").mkdir(parents=True, exist_ok=True)
    (site / "efficientnet_pytorch" / "__init__.py").write_text("EfficientNet = None\n")
    (site / "sitecustomize.py").write_text(
        "import torchvision.datasets as _d, torchvision.datasets.cifar as _c\n"
        "_d.CIFAR10._check_integrity = lambda self: True\n_c.check_integrity = lambda *a, **k: True\n")
    return site


def accept_our_cifar_pickles() -> None:
    """In this process, let torchvision's CIFAR10 read the pickles above (their md5s are not the
    published ones): what the ``sitecustomize`` of :func:`authors_site` does for subprocesses."""
    import torchvision.datasets as tvd
    import torchvision.datasets.cifar as cifar

    tvd.CIFAR10._check_integrity = lambda self: True
    cifar.check_integrity = lambda *a, **k: True  # batches.meta's md5 too


def write_mnist_pool(data: Path, dest: Path, per_class: int) -> None:
    """MNIST in torchvision's raw layout (``MNIST/raw``, idx files) with only the first ``per_class``
    training images of each class, in file order (what our ``max_train_per_class`` keeps), and the
    whole test set: the authors' loaders read it as MNIST, so both sides draw from one pool."""
    import numpy as np
    import torch

    from bench.data.datasets import DataOptions, load_dataset

    ds = load_dataset("mnist", data, DataOptions(max_train_per_class=per_class))
    raw = dest / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)

    def idx(path: Path, magic: int, array: np.ndarray) -> None:  # big-endian header, then the bytes
        header = np.array([magic, *array.shape], dtype=">i4")
        path.write_bytes(header.tobytes() + array.astype(np.uint8).tobytes())

    def pixels(images: torch.Tensor) -> np.ndarray:  # our [0, 1] floats are the file's bytes / 255
        return (images[:, 0] * 255).round().to(torch.uint8).numpy()

    for split, images, labels in (("train", ds.train_images, ds.train_labels), ("t10k", ds.test_images, ds.test_labels)):
        idx(raw / f"{split}-images-idx3-ubyte", 2051, pixels(images))
        idx(raw / f"{split}-labels-idx1-ubyte", 2049, labels.numpy())
