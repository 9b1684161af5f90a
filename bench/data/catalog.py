"""The registered datasets, each with every fact about it in its spec."""

from __future__ import annotations

from bench.data.loaders import (
    _load_cifar10_jpeg,
    _load_digits,
    _load_imagenet_downsampled,
    _load_imagenet_full,
    _load_svhn,
    _load_tinyimagenet,
    _load_train_flag,
)
from bench.data.spec import DATASETS, DatasetSpec

# DC's own protocol on digits: 1000 epochs with the DC paper's crop/scale/rotate augmentation.
_DC_DIGIT_PROTOCOL = {"epochs": 1000, "augment": "dc"}
# IDC --reproduce on MNIST with factor > 1: no CutMix, DSA color_crop_scale_rotate (IDC-I runs with
# factor 1 should pass cutmix_p=0.5 augment=idc as evaluation overrides).
_IDC_MNIST_PROTOCOL = {"cutmix_p": 0.0, "augment": "idc:color_crop_scale_rotate"}
# ... and in distillation: matching augmentation without cutout, no CutMix in network updates.
_IDC_MNIST_MULTI_FORMATION = {"match_aug": "color_crop", "mix_p": 0.0}

_IMAGENET_STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
_CIFAR10_STATS = ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))
_MNIST_FILES = tuple(
    f"{{cls}}/raw/{n}" for n in (
        "train-images-idx3-ubyte", "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte",
    )
)

# The published (uncompressed) MNIST files, as ../shared/data/README.md lists them.
_MNIST_MD5 = {
    "MNIST/raw/train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "MNIST/raw/train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "MNIST/raw/t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "MNIST/raw/t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}

for _spec in (
    DatasetSpec("mnist", 1, 28, 10, (0.1307,), (0.3081,), None, None, "mnist",
                tuple(f.format(cls="MNIST") for f in _MNIST_FILES), _load_train_flag("MNIST"),
                dsa_strategy="color_crop_cutout_scale_rotate", idc_metric="l1", display="MNIST",
                protocol_overrides={"dc": _DC_DIGIT_PROTOCOL, "idc": _IDC_MNIST_PROTOCOL},
                idc_lr_img=1e-4, idc_lr_base_size=28, idc_multi_formation=_IDC_MNIST_MULTI_FORMATION,
                file_md5=_MNIST_MD5),
    DatasetSpec("fashionmnist", 1, 28, 10, (0.2861,), (0.3530,), None, None, "fashionmnist",
                tuple(f.format(cls="FashionMNIST") for f in _MNIST_FILES),
                _load_train_flag("FashionMNIST"), idc_metric="l1", display="FashionMNIST", idc_lr_img=1e-4),
    DatasetSpec("svhn", 3, 32, 10, (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970), None, None,
                "svhn", ("train_32x32.mat", "test_32x32.mat"), _load_svhn,
                dsa_strategy="color_crop_cutout_scale_rotate", display="SVHN"),
    DatasetSpec("cifar10", 3, 32, 10, *_CIFAR10_STATS, None, None, "cifar10",
                ("cifar-10-batches-py/",), _load_train_flag("CIFAR10"), resnet_branch="cifar", display="CIFAR10",
                idc_n_data=2000),
    DatasetSpec("cifar100", 3, 32, 100, (0.5071, 0.4866, 0.4409), (0.2673, 0.2564, 0.2762),
                *_CIFAR10_STATS, "cifar100", ("cifar-100-python/",), _load_train_flag("CIFAR100"),
                resnet_branch="cifar", display="CIFAR100", idc_n_data=2000),
    DatasetSpec("cifar10-jpeg", 3, 32, 10, *_CIFAR10_STATS, None, None, "cifar10-jpeg",
                ("cifar10-jpeg.tar.gz",), _load_cifar10_jpeg, resnet_branch="cifar",
                downloadable=False, display="CIFAR10-JPEG", paper_stand_in="cifar10", idc_n_data=2000),
    DatasetSpec("tinyimagenet", 3, 64, 200, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), None, None,
                "tinyimagenet", ("tiny-imagenet-200/train/", "tiny-imagenet-200/val/val_annotations.txt"),
                _load_tinyimagenet, downloadable=False, dream_batch_real=64, display="TinyImageNet",
                idc_n_data=1000, idc_lr_img_at_ipc={50: 1e-6}),
    # ImageNet-1K at 64x64 in TESLA's setting (Table 6): the pre-downsampled ImageFolder copy TESLA
    # reads, and the full-size set through torchvision's ImageNet class, downsampled the same way.
    DatasetSpec("imagenet1k", 3, 64, 1000, *_IMAGENET_STATS, None, None, "imagenet1k",
                ("64/train/<wnid>/", "64/val/<wnid>/"), _load_imagenet_downsampled,
                downloadable=False, display="ImageNet-1K"),
    DatasetSpec("imagenet", 3, 64, 1000, *_IMAGENET_STATS, None, None, "imagenet",
                ("ILSVRC2012_devkit_t12.tar.gz or meta.bin", "train/", "val/"),
                _load_imagenet_full, downloadable=False, display="ImageNet-1K (full size, read at 64x64)"),
    DatasetSpec("digits", 1, 8, 10, (0.3056,), (0.3760,), None, None, "digits", (),
                _load_digits, dsa_strategy="color_crop_cutout_scale_rotate", idc_metric="l1",
                downloadable=False, protocol_overrides={"dc": _DC_DIGIT_PROTOCOL}, idc_lr_img=1e-4),
):
    DATASETS.register(_spec.name)(_spec)
