"""The one loop that trains a network on a fixed set of images: evaluation networks, the continual
learning networks and Herding's feature network all go through it, so an augmentation, CutMix or
schedule detail is written (and fixed) once.

The random draws happen in a fixed order per batch (the epoch's permutation, then the
augmentation, then the CutMix coin and box), which is what makes a run repeat bit for bit.
"""

from __future__ import annotations

from typing import Callable, Iterable

import torch
import torch.nn.functional as F

from bench.core.errors import BenchError
from bench.nets.augment import CutMixDraw, cutmix


class TrainingDiverged(BenchError):
    """The training loss became NaN or inf: the network's weights are garbage from there on."""


def cutmix_cross_entropy(forward: Callable, x: torch.Tensor, y: torch.Tensor, p: float, draw: CutMixDraw | None = None):
    """(loss, inputs used, logits): with probability ``p`` CutMix (beta 1) and the mixed loss
    r CE(out, y_a) + (1 - r) CE(out, y_b), else plain cross-entropy. No coin is drawn when p = 0;
    a given ``draw`` applies CutMix with it, without a coin (the parity tests' fixed draw)."""
    if draw is not None or (p > 0 and torch.rand(1).item() < p):
        x, y_a, y_b, r = cutmix(x, y, draw=draw)
        out = forward(x)
        return r * F.cross_entropy(out, y_a) + (1 - r) * F.cross_entropy(out, y_b), x, out
    out = forward(x)
    return F.cross_entropy(out, y), x, out


def train_network(net: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, optimizer: torch.optim.Optimizer,
                  epochs: Iterable[int], batch_size: int, scheduler=None, augment: Callable | None = None,
                  cutmix_p: float = 0.0, forward: Callable | None = None,
                  extra_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                  min_batch: int = 1, on_epoch_end: Callable[[int], None] | None = None,
                  check_finite: bool = True) -> None:
    """SGD over shuffled mini-batches for each epoch of ``epochs`` (an iterable, so a progress bar
    can wrap it). ``forward`` maps inputs to the logits the loss sees (default ``net``);
    ``extra_loss(x, logits)`` is added to each batch's loss (continual learning's distillation
    term); batches smaller than ``min_batch`` are skipped (batch norm cannot train on one image);
    ``scheduler.step()`` then ``on_epoch_end(epoch)`` run after each epoch. A non-finite loss
    raises :class:`TrainingDiverged` at the end of its epoch (``check_finite=False``: the caller
    checks, as a distillation loop does for its own images)."""
    forward = forward or net
    n = len(images)
    net.train()
    for epoch in epochs:
        # checked once per epoch, on the device: no host synchronisation per step
        finite = torch.ones((), dtype=torch.bool, device=images.device)
        order = torch.randperm(n, device=images.device)
        for i in range(0, n, batch_size):
            idx = order[i:i + batch_size]
            if len(idx) < min_batch:
                continue
            x, y = images[idx], labels[idx]
            if augment is not None:
                x = augment(x)
            loss, x, out = cutmix_cross_entropy(forward, x, y, cutmix_p)
            if extra_loss is not None:
                loss = loss + extra_loss(x, out)
            if check_finite:
                finite &= torch.isfinite(loss.detach())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if check_finite and not bool(finite):
            raise TrainingDiverged(f"training loss became non-finite in epoch {epoch}")
        if scheduler is not None:
            scheduler.step()
        if on_epoch_end is not None:
            on_epoch_end(epoch)


@torch.no_grad()
def test_accuracy(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, batch: int = 1024) -> float:
    model.eval()
    correct = 0
    for i in range(0, len(images), batch):
        correct += (model(images[i:i + batch]).argmax(1) == labels[i:i + batch]).sum().item()
    model.train()
    return 100.0 * correct / len(images)
