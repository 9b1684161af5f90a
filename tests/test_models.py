"""Models as the papers use them: feature sizes, the 28x28 padding rule, parameter counts."""

import pytest
import torch

from bench.core.errors import BenchError
from bench.data.datasets import DATASETS, load_dataset
from bench.nets.models import MODELS, ConvNet, build_model


def n_params(m):
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("channels,size,feature", [(1, 28, 2048), (3, 32, 2048), (1, 8, 128), (3, 64, 8192)])
def test_convnet3_feature_sizes(channels, size, feature):
    net = ConvNet(channels, 10, size)
    assert net.feature_dim == feature
    x = torch.randn(2, channels, size, size)
    assert net.embed(x).shape == (2, feature)
    assert net(x).shape == (2, 10)


def test_28x28_inputs_use_padding_3_and_instance_norm_is_groupnorm():
    net = ConvNet(1, 10, 28)
    assert net.features[0].padding == (3, 3)
    assert isinstance(net.features[1], torch.nn.GroupNorm) and net.features[1].num_groups == 128
    assert ConvNet(3, 10, 32).features[0].padding == (1, 1)


def test_resnet10_branches_and_densenet_sizes():
    cifar, mnist = DATASETS.get("cifar10"), DATASETS.get("mnist")
    r_cifar = MODELS.get("resnet10")(channels=3, num_classes=10, image_size=32, dataset=cifar)
    r_mnist = MODELS.get("resnet10")(channels=1, num_classes=10, image_size=28, dataset=mnist)
    dense = MODELS.get("densenet121")(channels=3, num_classes=10, image_size=32)
    # algorithms.md: CIFAR branch ~1.23 M, ImageNet branch for 28x28 ~4.9 M, densenet_cifar ~1.0 M
    assert 1.15e6 < n_params(r_cifar) < 1.3e6
    assert 4.7e6 < n_params(r_mnist) < 5.1e6
    assert 0.9e6 < n_params(dense) < 1.1e6
    assert r_cifar(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert r_mnist(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    assert dense(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_every_registered_model_builds_for_digits_or_says_why_not():
    digits = load_dataset("digits")
    for name in MODELS.names():
        if name == "convnet4":  # four 2x poolings need at least 16 pixels
            with pytest.raises(BenchError, match="at least 16"):
                build_model(name, digits)
            continue
        net = build_model(name, digits)
        assert net(digits.train_images[:4]).shape == (4, 10)
