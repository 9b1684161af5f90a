"""Model registry: ConvNet (the distillation backbone), ResNet-10 and DenseNet-121 as the IDC/DREAM
code builds them for cross-architecture evaluation (algorithms.md, appendix sections 1-2).

Every builder takes the same keyword arguments (channels, num_classes, image_size, dataset) so the
harness never branches on the model name.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from bench.core.errors import BenchError
from bench.core.registry import Registry

MODELS: Registry = Registry("model")


def _norm2d(kind: str, channels: int) -> nn.Module:
    if kind == "instance":
        # The authors' "instancenorm" is GroupNorm with one group per channel (affine).
        return nn.GroupNorm(channels, channels, affine=True)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}")


class ConvNet(nn.Module):
    """depth x [conv3x3(width) -> norm -> ReLU -> pool2], flatten, linear.

    28x28 inputs get padding 3 in the first conv, so they are treated as 32x32 (the authors' rule).
    """

    def __init__(self, channels: int, num_classes: int, image_size: int, width: int = 128,
                 depth: int = 3, norm: str = "instance", pooling: str = "avg"):
        super().__init__()
        if pooling != "none" and image_size < 2 ** depth:
            raise BenchError(f"a depth-{depth} ConvNet needs images of at least {2 ** depth} pixels, got {image_size}")
        layers: list[nn.Module] = []
        size = image_size
        in_ch = channels
        for d in range(depth):
            padding = 3 if (d == 0 and image_size == 28) else 1
            if padding == 3:
                size = 32
            layers += [nn.Conv2d(in_ch, width, 3, padding=padding), _norm2d(norm, width), nn.ReLU(inplace=True)]
            if pooling == "avg":
                layers.append(nn.AvgPool2d(2, 2))
                size //= 2
            elif pooling == "max":
                layers.append(nn.MaxPool2d(2, 2))
                size //= 2
            elif pooling != "none":
                raise ValueError(f"unknown pooling {pooling!r}")
            in_ch = width
        self.features = nn.Sequential(*layers)
        self.feature_dim = width * size * size
        self.classifier = nn.Linear(self.feature_dim, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The classifier's input: the flattened output of the last block."""
        return self.features(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))


class BasicBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, stride: int, norm: str):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn1 = _norm2d(norm, out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = _norm2d(norm, out_ch)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), _norm2d(norm, out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet10(nn.Module):
    """IDC's ResNet-10: one BasicBlock per stage, 3x3 stride-1 stem, no max-pool.

    Branch by dataset name as the authors do: ``cifar*`` uses widths 32-256, everything else
    64-512 (stem for inputs up to 64 pixels). Global average pooling over the final map.
    """

    def __init__(self, channels: int, num_classes: int, image_size: int, branch: str = "cifar",
                 norm: str = "batch"):
        super().__init__()
        base = 32 if branch == "cifar" else 64
        widths = [base, base * 2, base * 4, base * 8]
        self.stem = nn.Sequential(nn.Conv2d(channels, base, 3, 1, 1, bias=False), _norm2d(norm, base), nn.ReLU(inplace=True))
        blocks, in_ch = [], base
        for i, w in enumerate(widths):
            blocks.append(BasicBlock(in_ch, w, 1 if i == 0 else 2, norm))
            in_ch = w
        self.layers = nn.Sequential(*blocks)
        self.feature_dim = in_ch
        self.classifier = nn.Linear(in_ch, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, 0.0, (2.0 / n) ** 0.5)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(self.layers(self.stem(x)), 1).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))


class DenseBottleneck(nn.Module):
    def __init__(self, in_ch: int, growth: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_ch)
        self.conv1 = nn.Conv2d(in_ch, 4 * growth, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(4 * growth)
        self.conv2 = nn.Conv2d(4 * growth, growth, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.bn1(x)))
        out = self.conv2(F.relu(self.bn2(out)))
        return torch.cat([out, x], 1)


class DenseNet121(nn.Module):
    """The ``densenet_cifar`` the IDC/DREAM test script calls "DenseNet-121": blocks [6, 12, 24, 16],
    growth rate 12 (not 32), compression 0.5, 3x3 stem without pooling, BatchNorm only.

    The authors' version hard-wires 3 input channels and 32x32 inputs; this one takes any channel
    count and pools adaptively, so it also runs on MNIST-sized inputs (a documented extension).
    """

    def __init__(self, channels: int, num_classes: int, image_size: int, growth: int = 12,
                 blocks: tuple[int, ...] = (6, 12, 24, 16), reduction: float = 0.5):
        super().__init__()
        ch = 2 * growth
        self.stem = nn.Conv2d(channels, ch, 3, padding=1, bias=False)
        stages: list[nn.Module] = []
        for i, n in enumerate(blocks):
            for _ in range(n):
                stages.append(DenseBottleneck(ch, growth))
                ch += growth
            if i != len(blocks) - 1:
                out = int(ch * reduction)
                stages += [nn.BatchNorm2d(ch), nn.ReLU(inplace=True), nn.Conv2d(ch, out, 1, bias=False), nn.AvgPool2d(2)]
                ch = out
        self.stages = nn.Sequential(*stages)
        self.bn = nn.BatchNorm2d(ch)
        self.feature_dim = ch
        self.classifier = nn.Linear(ch, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn(self.stages(self.stem(x))))
        return F.adaptive_avg_pool2d(out, 1).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))


def _convnet(depth: int, norm: str, width: int = 128, pooling: str = "avg"):
    def build(channels: int, num_classes: int, image_size: int, dataset=None) -> nn.Module:
        return ConvNet(channels, num_classes, image_size, width=width, depth=depth, norm=norm, pooling=pooling)

    return build


MODELS.register("convnet3")(_convnet(3, "instance"))
MODELS.register("convnet3-bn")(_convnet(3, "batch"))
MODELS.register("convnet3-nonorm")(_convnet(3, "none"))
MODELS.register("convnet4")(_convnet(4, "instance"))  # Tiny ImageNet in the IDC/DREAM reproduce setting


@MODELS.register("resnet10")
def _resnet10_bn(channels: int, num_classes: int, image_size: int, dataset=None) -> nn.Module:
    branch = dataset.resnet_branch if dataset is not None else "cifar"
    return ResNet10(channels, num_classes, image_size, branch=branch, norm="batch")


@MODELS.register("resnet10-in")
def _resnet10_in(channels: int, num_classes: int, image_size: int, dataset=None) -> nn.Module:
    branch = dataset.resnet_branch if dataset is not None else "cifar"
    return ResNet10(channels, num_classes, image_size, branch=branch, norm="instance")


@MODELS.register("densenet121")
def _densenet121(channels: int, num_classes: int, image_size: int, dataset=None) -> nn.Module:
    return DenseNet121(channels, num_classes, image_size)


def build_model(name: str, dataset, num_classes: int | None = None) -> nn.Module:
    """Build a registered model for a loaded :class:`~bench.data.datasets.ImageDataset`."""
    builder = MODELS.get(name)
    return builder(
        channels=dataset.channels,
        num_classes=num_classes or dataset.num_classes,
        image_size=dataset.size,
        dataset=dataset.spec,
    )
