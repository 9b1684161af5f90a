"""Initialisers: how a synthetic set starts. Coresets (Random, Herding) are initialisers alone.

For multi-formation (factor f > 1) a selection initialiser picks ``ipc * f^2`` real images of a
class, shrinks each to its tile (H/f x W/f; where f does not divide H, the first H mod f tiles one
pixel longer) by nearest-neighbour downsampling and tiles them into f x f grids, block k of ``ipc``
images filling grid cell k, as the DREAM code does.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import accumulate
from typing import ClassVar

import torch
import torch.nn.functional as F

from bench.core.errors import BenchError
from bench.core.params import NoSettings
from bench.core.registry import Registry
from bench.data.synset import SyntheticSet
from bench.dream.feature_net import embed_in_batches, trained_feature_net

INITIALISERS: Registry[type["Initialiser"]] = Registry("initialiser")


class Initialiser:
    """Builds the synthetic set a method starts from. Settings, when an initialiser has any, are its
    frozen ``Config`` (``--set init.<field>=value``), resolved and hashed with the run."""

    Config: ClassVar[type] = NoSettings

    @classmethod
    def defaults(cls, method_cls, spec, scale: str) -> dict:
        """Per-method, per-dataset, per-scale defaults of ``Config``."""
        return {}

    def __init__(self, config=None) -> None:
        self.config = config if config is not None else self.Config()

    def __call__(self, ctx, ipc: int, space: str = "normalized", factor: int = 1,
                 pipeline: str = "vico") -> SyntheticSet:
        raise NotImplementedError


def tile_sizes(length: int, factor: int) -> list[int]:
    """The f tile lengths along one side: the first ``length % f`` one pixel longer, as the authors'
    DREAM initialisation (28 px, f = 3: 10, 9, 9), so tiles cover the image with no padding."""
    return [length // factor + (1 if i < length % factor else 0) for i in range(factor)]


def tile_multi_formation(images: torch.Tensor, ipc: int, factor: int) -> torch.Tensor:
    """(ipc * f^2, C, H, W) real images of one class -> (ipc, C, H, W) tiled f x f images.

    Block k = row * f + col of ``ipc`` images, each shrunk by nearest-neighbour interpolation to its
    tile's size, fills tile (row, col) of the ipc synthetic images."""
    if factor == 1:
        return images
    _, c, h, w = images.shape
    tiled = images.new_empty(ipc, c, h, w)
    blocks = images.split(ipc)
    tops, lefts = [0, *accumulate(tile_sizes(h, factor))], [0, *accumulate(tile_sizes(w, factor))]
    for k, block in enumerate(blocks):
        row, col = divmod(k, factor)
        top, bottom, left, right = tops[row], tops[row + 1], lefts[col], lefts[col + 1]
        tiled[:, :, top:bottom, left:right] = F.interpolate(block, size=(bottom - top, right - left))  # nearest
    return tiled


class SelectionInitialiser(Initialiser):
    """Starts from real images chosen per class by :meth:`select`."""

    def select(self, ctx, c: int, k: int) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, ctx, ipc: int, space: str = "normalized", factor: int = 1,
                 pipeline: str = "vico") -> SyntheticSet:
        dataset = ctx.dataset
        k = ipc * factor * factor
        if k > dataset.smallest_class():
            raise BenchError(
                f"{type(self).__name__} needs {k} real images per class (IPC {ipc} x factor^2) but the "
                f"smallest class of {dataset.name} has {dataset.smallest_class()}"
            )
        images, labels = [], []
        for c in range(dataset.num_classes):
            ix = self.select(ctx, c, k)
            tiled = tile_multi_formation(dataset.train_images[ix], ipc, factor)
            images.append(tiled)
            labels.append(torch.full((ipc,), c, dtype=torch.long, device=tiled.device))
        x = torch.cat(images)
        if space == "normalized":
            x = dataset.normalise(x, pipeline)
        ctx.metrics.setdefault("init", {})["selected"] = True
        return SyntheticSet(x.detach().clone(), torch.cat(labels), space=space, factor=factor, pipeline=pipeline)


@INITIALISERS.register("real")
class RandomRealInitialiser(SelectionInitialiser):
    """``k`` distinct real images of the class, drawn uniformly with the run's seed."""

    def select(self, ctx, c: int, k: int) -> torch.Tensor:
        ix = ctx.dataset.class_indices(c)
        return ix[torch.randperm(len(ix), device=ix.device)[:k]]


@INITIALISERS.register("first")
class FirstRealInitialiser(SelectionInitialiser):
    """The first ``k`` images of the class in dataset order: what the IDC/DREAM code calls random."""

    def select(self, ctx, c: int, k: int) -> torch.Tensor:
        return ctx.dataset.class_indices(c)[:k]


@INITIALISERS.register("noise")
class NoiseInitialiser(Initialiser):
    """Gaussian noise N(0, 1) in normalised space (DC's default); uniform [0, 1] in unit space."""

    def __call__(self, ctx, ipc: int, space: str = "normalized", factor: int = 1,
                 pipeline: str = "vico") -> SyntheticSet:
        d = ctx.dataset
        shape = (d.num_classes * ipc, d.channels, d.size, d.size)
        x = torch.randn(shape) if space == "normalized" else torch.rand(shape)
        labels = torch.arange(d.num_classes).repeat_interleave(ipc)
        return SyntheticSet(x.to(d.train_images.device), labels.to(d.train_images.device),
                            space=space, factor=factor, pipeline=pipeline)


@dataclass(frozen=True)
class HerdingConfig:
    """Herding selects with a ConvNet trained on the full training set (IDC loads such a checkpoint;
    the harness trains its own). The budget is ``feature_epochs`` but at least ``feature_min_steps``
    SGD steps, so a small dataset (digits: 5 steps an epoch) still gets a trained network."""

    feature_epochs: int = 3
    feature_min_steps: int = 500
    feature_seed: int = 0  # one selection network per dataset, shared by all seeds


@INITIALISERS.register("herding")
class HerdingInitialiser(SelectionInitialiser):
    """Greedy mean matching (IDC ``coreset.py``): with class mean mu and running sum S of the chosen
    features, the k-th pick is the unchosen sample minimising ||k mu - S - f_i||."""

    Config = HerdingConfig

    @classmethod
    def defaults(cls, method_cls, spec, scale: str) -> dict:
        return {"feature_epochs": {"paper": 3, "reduced": 2, "smoke": 1}[scale],
                "feature_min_steps": {"paper": 500, "reduced": 500, "smoke": 300}[scale]}

    def __init__(self, config=None) -> None:
        super().__init__(config)
        self._net = None

    def select(self, ctx, c: int, k: int) -> torch.Tensor:
        if self._net is None:
            cfg = self.config
            steps_per_epoch = -(-len(ctx.dataset.train_images) // 256)
            epochs = max(cfg.feature_epochs, -(-cfg.feature_min_steps // steps_per_epoch))
            self._net, info = trained_feature_net(ctx.dataset, ctx.config.model, epochs, cfg.feature_seed, ctx.device)
            ctx.metrics["feature_net"] = info
        ix = ctx.dataset.class_indices(c)
        feats = embed_in_batches(self._net, ctx.dataset.normalise(ctx.dataset.train_images[ix]))
        return ix[herding_order(feats, k).to(ix.device)]


def herding_order(features: torch.Tensor, k: int) -> torch.Tensor:
    mu = features.mean(0)
    running = torch.zeros_like(mu)
    chosen: list[int] = []
    available = torch.ones(len(features), dtype=torch.bool, device=features.device)
    for step in range(1, k + 1):
        dist = torch.linalg.vector_norm(step * mu - running - features, dim=1)
        dist[~available] = float("inf")
        i = int(torch.argmin(dist))
        chosen.append(i)
        available[i] = False
        running += features[i]
    return torch.tensor(chosen, dtype=torch.long)
