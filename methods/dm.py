"""DM (distribution matching), after VICO ``main_DM.py``.

Per iteration: a fresh randomly initialised ConvNet with frozen parameters (train mode); for every
class a random real batch and the class's synthetic images, one shared (Siamese) DSA draw for both,
embeddings of both; loss = sum over classes of ||mean embed(real) - mean embed(syn)||^2; one SGD
step on the images.

A sampler "step" (what DREAM's re-clustering interval counts) is one iteration: ``step = it - 1``
for iteration ``it`` = 1..iterations (the network changes every iteration).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bench.data.synset import SyntheticSet
from bench.nets.augment import DiffAugment
from bench.nets.matching import siamese_per_class
from methods.base import METHODS, Method


@dataclass(frozen=True)
class DMParams:
    """DM hyperparameters (VICO ``main_DM.py`` defaults and README: lr_img 1, init real, DSA on).

    Departures from the authors' code: the network seed and the Siamese DSA seed come from the
    run's seeded, checkpointed RNG instead of the wall clock; ``iterations`` counts image updates
    (the authors' loop runs 0..20000 and evaluates at 20000 before its last update). All classes'
    real (and synthetic) images go through the network in one forward: identical for instance
    norm (per sample) and the authors' own choice for batch-norm models. ``smoke``/``reduced``
    cut ``iterations`` (and, for smoke, ``batch_real``).
    """

    iterations: int = 20000
    batch_real: int = 256
    lr_img: float = 1.0
    momentum_img: float = 0.5
    dsa: bool = True
    # True: one forward over all classes (same maths). Off by default: slower on an idle 2-core CPU
    # than the per-class loop (README, Speed); untimed on a GPU.
    batched: bool = False
    curve_points: int = 0
    curve_epochs: int = 0
    curve_models: int = 1
    checkpoint_every: int = 0

    def __post_init__(self) -> None:
        if self.iterations < 0 or self.batch_real < 1:
            raise ValueError("iterations must be >= 0 and batch_real >= 1")


SCALE_BUDGETS = {"paper": {}, "reduced": {"iterations": 2000}, "smoke": {"iterations": 40, "batch_real": 64}}


def dm_loss(embed, real: torch.Tensor, syn: torch.Tensor, batched: bool = True) -> torch.Tensor:
    """sum_c ||mean embed(real[c]) - mean embed(syn[c])||^2 for real (K, N, ...), syn (K, M, ...)."""
    k = real.shape[0]
    if batched:
        with torch.no_grad():
            mr = embed(real.reshape(-1, *real.shape[2:])).view(k, real.shape[1], -1).mean(1)
        ms = embed(syn.reshape(-1, *syn.shape[2:])).view(k, syn.shape[1], -1).mean(1)
        return torch.sum((mr - ms) ** 2)
    loss = syn.new_zeros(())
    for c in range(k):
        out_real = embed(real[c]).detach()
        out_syn = embed(syn[c])
        loss = loss + torch.sum((torch.mean(out_real, dim=0) - torch.mean(out_syn, dim=0)) ** 2)
    return loss


@METHODS.register("dm")
class DM(Method):
    name = "dm"
    Params = DMParams
    protocol = "dsa"
    matches_real = True

    @classmethod
    def default_initialiser(cls, spec, ipc: int) -> str:
        return "real"

    @classmethod
    def defaults(cls, spec, ipc: int, scale: str) -> dict:
        return dict(SCALE_BUDGETS[scale])

    def run(self, ctx) -> SyntheticSet:
        p = ctx.params
        dataset = ctx.dataset
        k, ipc = dataset.num_classes, ctx.ipc
        synset = ctx.initialise(space="normalized")
        image_syn = synset.images.detach().clone().requires_grad_(True)
        opt_img = torch.optim.SGD([image_syn], lr=p.lr_img, momentum=p.momentum_img)
        augment = DiffAugment(dataset.spec.dsa_strategy, "dsa") if p.dsa else None
        n_real = min(p.batch_real, dataset.smallest_class())

        def current() -> SyntheticSet:
            return SyntheticSet(image_syn.detach().clone(), synset.labels.clone(), space="normalized")

        start = ctx.start_or_resume(image_syn, opt_img, current, p.iterations)

        for it in ctx.progress(range(start + 1, p.iterations + 1), start, p.iterations):
            net = ctx.build_model()
            net.train()
            for param in net.parameters():
                param.requires_grad_(False)
            with ctx.timer("matching"):
                real = torch.stack([
                    dataset.normalise(dataset.train_images[ctx.sampler.sample(c, n_real, net=net, step=it - 1)])
                    for c in range(k)])
                syn = image_syn.view(k, ipc, *image_syn.shape[1:])
                if augment is not None:
                    draws = [augment.draw(1, shared=True, device=ctx.device) for _ in range(k)]
                    real, syn = siamese_per_class(augment, real, syn, draws)
                loss = dm_loss(net.embed, real, syn, p.batched)
                opt_img.zero_grad(set_to_none=True)
                loss.backward()
                opt_img.step()
            ctx.log_loss(it, loss.detach().double() / k, image_syn.detach())
            if ctx.curve_due(it, p.iterations):
                ctx.evaluate_curve_point(it, current())
            ctx.track_synthetic(image_syn.detach(), it)  # Fig 4a, when diagnostics are on
            ctx.maybe_checkpoint(it, lambda: ctx.matching_state(image_syn, opt_img))
        return current()
