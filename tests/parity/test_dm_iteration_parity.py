"""One whole DM iteration on CIFAR-shaped inputs against the authors' (VICO-UoE/DatasetCondensation
main_DM.py with its seeded Siamese DSA): six classes, one per category of the CIFAR strategy
``color_crop_cutout_flip_scale_rotate``, each class's real and synthetic batch augmented alike, the
loss summed over classes and one image step. Values and provenance in tests/parity/dm_iteration.json
(experiments/parity/dm_iteration_probe.py); the authors' code is not needed here.

Ours takes the path ``methods.dm.DM.run`` takes: one shared draw per class, ``siamese_per_class``
(classes grouped by their ops), ``dm_loss``. Float32 only, as their probe (rtol 1e-5 on the loss,
norms and slices: tests/parity/golden.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from bench.nets.augment import DiffAugment, Draw
from bench.nets.matching import siamese_per_class
from methods.dm import dm_loss
from tests.parity.golden import check_image_step, close, precision_settings, seeded_convnet, stats

GOLDEN = json.loads((Path(__file__).parent / "dm_iteration.json").read_text())
S = GOLDEN["shapes"]
K, IPC, B, C, H = S["classes"], S["ipc"], S["batch_real"], S["channels"], S["size"]
CLASSES = GOLDEN["iteration"]["classes"]


@pytest.fixture
def precision():
    yield from precision_settings("float32", GOLDEN["iteration"])


def _draws() -> list[Draw]:
    """Class c's shared draw: their category's ops with image 0's numbers (all images share them)."""
    return [Draw(list(c["u"]), {op: torch.tensor(u) for op, u in c["u"].items()}) for c in CLASSES]


def _setup():
    net = seeded_convnet(S, K)
    net.train()
    for p in net.parameters():
        p.requires_grad_(False)
    torch.manual_seed(S["real_seed"])
    real = torch.randn(K, B, C, H, H)
    torch.manual_seed(S["syn_seed"])
    images = torch.randn(K * IPC, C, H, H).requires_grad_(True)
    return net, real, images


def test_the_six_classes_cover_every_category_of_the_cifar_strategy():
    assert sorted(c["category"] for c in CLASSES) == sorted(S["strategy"].split("_"))
    assert CLASSES[[c["category"] for c in CLASSES].index("flip")]["u"]["flip"][0][0] < 0.5  # it does flip


@pytest.mark.parametrize("c", range(K), ids=[c["category"] for c in CLASSES])
def test_each_class_real_and_synthetic_batch_get_their_transform(precision, c):
    """Their Siamese call gives every image of both batches image 0's parameters; ours one shared draw."""
    net, real, images = _setup()
    real_aug, syn_aug = siamese_per_class(DiffAugment(S["strategy"], "dsa"), real, images.view(K, IPC, C, H, H), _draws())
    close(stats(real_aug[c]), CLASSES[c]["real_augmented"], precision)
    close(stats(syn_aug[c]), CLASSES[c]["syn_augmented"], precision)


@pytest.mark.parametrize("batched", [False, True])
def test_one_iteration_loss_gradient_and_image_step(precision, batched):
    net, real, images = _setup()
    opt = torch.optim.SGD([images], lr=1.0, momentum=0.5)  # DM's optimizer_img
    real_aug, syn_aug = siamese_per_class(DiffAugment(S["strategy"], "dsa"), real, images.view(K, IPC, C, H, H), _draws())
    per_class = [float(dm_loss(net.embed, real_aug[c:c + 1], syn_aug[c:c + 1].detach())) for c in range(K)]
    assert per_class == pytest.approx([c["loss"] for c in CLASSES], rel=precision.rtol)
    loss = dm_loss(net.embed, real_aug, syn_aug, batched)
    golden = precision.golden
    check_image_step(loss, images, opt, golden, precision)

