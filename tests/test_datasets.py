"""Datasets load through torchvision's own classes; missing or corrupt files give one clear line."""

import os
import struct
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bench.core.atomic import atomic_folder, is_complete
from bench.core.errors import BenchError
from bench.data.datasets import DATASETS, DataOptions, load_dataset


def write_idx(path: Path, array: np.ndarray) -> None:
    """The IDX format torchvision's MNIST-family readers parse (big-endian dims, ubyte data)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    magic = 0x0800 | array.ndim
    with open(path, "wb") as f:
        f.write(struct.pack(">I", magic))
        f.write(struct.pack(f">{array.ndim}I", *array.shape))
        f.write(array.astype(np.uint8).tobytes())


def make_mnist_like(root: Path, cls: str, n_train=30, n_test=20, seed=0) -> None:
    rng = np.random.default_rng(seed)
    raw = root / cls / "raw"
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)


def test_digits_is_built_in_and_split_stratified():
    d = load_dataset("digits")
    assert d.train_images.shape == (1257, 1, 8, 8) and d.test_images.shape == (540, 1, 8, 8)
    assert 0.0 <= float(d.train_images.min()) and float(d.train_images.max()) <= 1.0
    assert d.num_classes == 10 and d.smallest_class() == 122
    # the normalisation constants are this split's statistics
    assert abs(float(d.train_images.mean()) - d.spec.mean[0]) < 1e-3
    assert abs(float(d.train_images.std()) - d.spec.std[0]) < 1e-3


def test_genuine_mnist_through_torchvision(data_root):
    d = load_dataset("mnist", data_root)
    assert d.train_images.shape == (60000, 1, 28, 28) and d.test_images.shape == (10000, 1, 28, 28)
    assert torch.bincount(d.train_labels).tolist()[:2] == [5923, 6742]  # the published class counts
    assert d.smallest_class() == 5421
    normalised = d.normalise(d.train_images[:10000])
    assert abs(float(normalised.mean())) < 0.02 and abs(float(normalised.std()) - 1) < 0.02


def test_data_options_take_class_and_image_subsets(data_root):
    d = load_dataset("mnist", data_root, DataOptions(classes=3, max_train_per_class=50, max_test_per_class=20))
    assert d.num_classes == 3 and len(d.train_images) == 150 and len(d.test_images) == 60
    assert d.variant == "classes<3,train<=50/class,test<=20/class"


def test_fashionmnist_loader_on_generated_idx_files(tmp_path):
    make_mnist_like(tmp_path / "fashionmnist", "FashionMNIST")
    d = load_dataset("fashionmnist", tmp_path)
    assert d.train_images.shape == (30, 1, 28, 28) and d.test_labels.tolist()[:3] == [0, 1, 2]
    assert d.class_names[0] == "T-shirt/top"


@pytest.mark.parametrize("name", ["mnist", "fashionmnist", "svhn", "cifar10", "cifar100", "cifar10-jpeg", "tinyimagenet"])
def test_missing_files_one_line_naming_dataset_root_and_files(tmp_path, name):
    with pytest.raises(BenchError) as err:
        load_dataset(name, tmp_path)
    msg = str(err.value)
    assert "\n" not in msg
    assert repr(name) in msg and str(tmp_path / DATASETS.get(name).folder) in msg
    assert DATASETS.get(name).expected_files[0].split("/")[-1] in msg


def test_corrupt_mnist_files_one_line(tmp_path):
    make_mnist_like(tmp_path / "mnist", "MNIST")
    path = tmp_path / "mnist" / "MNIST" / "raw" / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:1000])  # truncated
    with pytest.raises(BenchError, match="corrupt") as err:
        load_dataset("mnist", tmp_path)
    assert "\n" not in str(err.value)


def _jpeg(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((32, 32, 3), value, dtype=np.uint8)).save(path, quality=95)


def test_cifar10_jpeg_archive_loader_on_a_generated_archive(tmp_path):
    src = tmp_path / "src" / "cifar10-jpeg"
    for split, n in (("train", 3), ("test", 2)):
        for c, cls in enumerate(["airplane", "automobile"]):
            for i in range(n):
                _jpeg(src / split / cls / f"{i:04d}.jpg", 40 + 100 * c)
    root = tmp_path / "data" / "cifar10-jpeg"
    root.mkdir(parents=True)
    with tarfile.open(root / "cifar10-jpeg.tar.gz", "w:gz") as tar:
        tar.add(src, arcname="cifar10-jpeg")
    d = load_dataset("cifar10-jpeg", tmp_path / "data")
    assert d.train_images.shape == (6, 3, 32, 32) and d.test_images.shape == (4, 3, 32, 32)
    assert d.class_names == ["airplane", "automobile"]
    assert abs(float(d.train_images[d.train_labels == 1].mean()) - 140 / 255) < 0.02


def test_corrupt_archive_one_line(tmp_path):
    root = tmp_path / "cifar10-jpeg"
    root.mkdir()
    (root / "cifar10-jpeg.tar.gz").write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(BenchError, match="corrupt"):
        load_dataset("cifar10-jpeg", tmp_path)


def test_tinyimagenet_standard_folder_layout(tmp_path):
    top = tmp_path / "tinyimagenet" / "tiny-imagenet-200"
    lines = []
    for k, wnid in enumerate(["n01443537", "n01629819"]):
        for i in range(3):
            img = Image.fromarray(np.full((64, 64, 3), 50 + 100 * k, dtype=np.uint8))
            (top / "train" / wnid / "images").mkdir(parents=True, exist_ok=True)
            img.save(top / "train" / wnid / "images" / f"{wnid}_{i}.JPEG")
        (top / "val" / "images").mkdir(parents=True, exist_ok=True)
        img.save(top / "val" / "images" / f"val_{k}.JPEG")
        lines.append(f"val_{k}.JPEG\t{wnid}\t0\t0\t63\t63")
    (top / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    d = load_dataset("tinyimagenet", tmp_path)
    assert d.train_images.shape == (6, 3, 64, 64) and d.test_labels.tolist() == [0, 1]
    assert d.class_names == ["n01443537", "n01629819"]


def test_cifar10_jpeg_real_archive(cifar_jpeg_root):
    d = load_dataset("cifar10-jpeg", cifar_jpeg_root, DataOptions(max_train_per_class=10, max_test_per_class=10))
    assert d.class_names[:3] == ["airplane", "automobile", "bird"]
    assert d.train_images.shape == (100, 3, 32, 32) and d.test_images.shape == (100, 3, 32, 32)


def _image_folder(top: Path, wnids: list[str], per_class: int, size: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for wnid in wnids:
        (top / wnid).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(top / wnid / f"{wnid}_{i}.png")


WNIDS = ["n01440764", "n01443537", "n01484850"]


def test_imagenet1k_64x64_image_folder_as_tesla_reads_it(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    top = tmp_path / "imagenet1k" / "64"
    _image_folder(top / "train", WNIDS, 4, 64, 0)
    _image_folder(top / "val", WNIDS, 2, 64, 1)
    d = load_dataset("imagenet1k", tmp_path)
    assert d.train_images.shape == (12, 3, 64, 64) and d.test_images.shape == (6, 3, 64, 64)
    assert d.class_names == WNIDS and d.train_labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    first = np.array(Image.open(top / "train" / WNIDS[0] / f"{WNIDS[0]}_0.png"))
    assert torch.equal(d.train_images[0], torch.from_numpy(first).permute(2, 0, 1).float() / 255)


def test_imagenet1k_wrong_size_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    top = tmp_path / "imagenet1k" / "64"
    _image_folder(top / "train", WNIDS, 1, 32, 0)
    _image_folder(top / "val", WNIDS, 1, 32, 1)
    with pytest.raises(BenchError, match=r"are 32x32, expected 64x64"):
        load_dataset("imagenet1k", tmp_path)


def test_full_size_imagenet_through_torchvisions_class(tmp_path, monkeypatch):
    """torchvision's ImageNet class reads a parsed root (meta.bin, train/, val/); images of any
    size are box-downsampled to 64x64 on load."""
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    top = tmp_path / "imagenet"
    _image_folder(top / "train", WNIDS, 2, 96, 0)
    _image_folder(top / "val", WNIDS, 1, 80, 1)
    torch.save(({w: (f"class {w}",) for w in WNIDS}, WNIDS), top / "meta.bin")
    d = load_dataset("imagenet", tmp_path)
    assert d.train_images.shape == (6, 3, 64, 64) and d.test_images.shape == (3, 3, 64, 64)
    assert d.class_names == WNIDS
    big = Image.open(top / "train" / WNIDS[0] / f"{WNIDS[0]}_0.png").convert("RGB").resize((64, 64), Image.BOX)
    assert torch.equal(d.train_images[0], torch.from_numpy(np.array(big)).permute(2, 0, 1).float() / 255)


def test_full_size_imagenet_missing_devkit_one_line(tmp_path):
    (tmp_path / "imagenet" / "train").mkdir(parents=True)
    with pytest.raises(BenchError, match=r"dataset 'imagenet': files not found .*meta.bin"):
        load_dataset("imagenet", tmp_path)


def test_a_folder_another_writer_put_in_place_first_is_kept_and_ours_dropped(tmp_path):
    """Two writers of one cache entry: the second rename finds a whole folder and keeps it."""
    dest = tmp_path / "entry"
    with atomic_folder(dest) as ours:
        (ours / "a").write_text("ours")
        with atomic_folder(dest) as theirs:
            (theirs / "a").write_text("theirs")
        assert (dest / "a").read_text() == "theirs" and is_complete(dest)
    assert (dest / "a").read_text() == "theirs"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["entry"], "a writer's temporary folder stayed"


def test_a_folder_without_its_marker_is_replaced(tmp_path):
    """What an older version left half-extracted (no ``.complete``) is not mistaken for a whole copy."""
    dest = tmp_path / "entry"
    (dest / "half").mkdir(parents=True)
    with atomic_folder(dest) as partial:
        (partial / "a").write_text("whole")
    assert sorted(p.name for p in dest.iterdir()) == [".complete", "a"]
    umask = os.umask(0)
    os.umask(umask)
    assert dest.stat().st_mode & 0o777 == 0o777 & ~umask, "not the mode a plain mkdir gives (a shared cache)"


_LOAD_AT = """
import sys, time
from bench.data.datasets import load_dataset
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))  # every process starts its load at one instant
d = load_dataset("cifar10-jpeg", sys.argv[1])
print(d.train_images.shape[0], round(float(d.train_images.sum()), 3))
"""


def test_processes_loading_one_archive_at_once_all_get_it(tmp_path):
    """The first load of an archive by several processes at once (SLURM array tasks, runs side by
    side) with one empty cache: each process extracts, one rename wins, none fails. Before the fix
    the later renames failed with 'Directory not empty' reported as a corrupt archive."""
    src = tmp_path / "src" / "cifar10-jpeg"
    for split, n in (("train", 400), ("test", 10)):
        for c, cls in enumerate(["airplane", "automobile"]):
            for i in range(n):
                _jpeg(src / split / cls / f"{i:04d}.jpg", 40 + 100 * c + i % 7)
    root = tmp_path / "data" / "cifar10-jpeg"
    root.mkdir(parents=True)
    with tarfile.open(root / "cifar10-jpeg.tar.gz", "w:gz") as tar:
        tar.add(src, arcname="cifar10-jpeg")
    env = {**os.environ, "BENCH_CACHE": str(tmp_path / "cache")}
    start = str(time.time() + 8)  # after every interpreter has imported torch
    procs = [subprocess.Popen([sys.executable, "-c", _LOAD_AT, str(tmp_path / "data"), start], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err for _, err in results]
    assert len({out for out, _ in results}) == 1 and results[0][0].split()[0] == "800"
    extracted = tmp_path / "cache" / "extracted"
    assert [p.name for p in extracted.iterdir()] == [p.name for p in extracted.iterdir() if is_complete(p)]
    assert len(list(extracted.iterdir())) == 1, "a writer's temporary folder stayed"
