"""Data and import shims the authors' code needs here, shared by the parity and speed experiments:
CIFAR-10 pickles written from our decode of the CIFAR10-JPEG archive (the authors' torchvision
``CIFAR10`` reads ``cifar-10-batches-py``), and a folder for the authors' PYTHONPATH. Not part of
the package: experiments only."""
from __future__ import annotations

import pickle
from pathlib import Path


def write_cifar_pickles(data: Path, dest: Path) -> None:
    import torch

    from bench.data.datasets import load_dataset

    ds = load_dataset("cifar10-jpeg", data)
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
