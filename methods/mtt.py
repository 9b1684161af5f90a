"""MTT (matching training trajectories), after GeorgeCazenavette/mtt-distillation ``distill.py``.

Per iteration: an expert trajectory and a start epoch s < ``max_start_epoch`` are drawn; a student
starts at the expert's parameters of epoch s and takes ``syn_steps`` SGD steps on (DSA-augmented)
mini-batches of the synthetic set with the learnable lr alpha; the loss is the normalised distance
||theta_student - theta*_{s+expert_epochs}||^2 / ||theta*_s - theta*_{s+expert_epochs}||^2, and
one SGD step (momentum 0.5) updates the images (``lr_img``) and alpha (``lr_lr``). The set is
evaluated with the learned alpha (protocol ``mtt``).

The experts are a stored artefact (bench/run/experts.py), trained on first use, shared by every
cell with the same expert settings. The meta-gradient is bench/nets/trajectory.py's; TESLA
(methods/tesla.py) is this loop with another way to compute it, and soft labels.

Departures from the authors' code, all in what is random, not in the arithmetic: the expert of an
iteration is drawn uniformly (their ``--load_all`` mode; without it they cycle through a shuffled
file), every draw comes from the run's seeded, checkpointed generator, and ZCA is not implemented
(the experts and images live in the normalised space of their ``_NO_ZCA`` runs).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bench.core.errors import BenchError
from bench.data.synset import SyntheticSet
from bench.nets.augment import DiffAugment
from bench.nets.trajectory import FlatNetwork, StudentBatches, unrolled_meta_gradient
from bench.run.experts import ExpertSpec
from methods.base import METHODS, Method


@dataclass(frozen=True)
class MTTParams:
    """MTT hyperparameters: ``distill.py``'s argument defaults, then per dataset/IPC the values of
    the authors' READMEs (:data:`README_DEFAULTS`); the expert settings are ``buffer.py``'s."""

    iterations: int = 5000
    syn_steps: int = 20
    expert_epochs: int = 3
    max_start_epoch: int = 25
    lr_img: float = 1000.0
    lr_lr: float = 1e-5
    lr_teacher: float = 0.01  # the synthetic lr's starting value
    batch_syn: int = 0  # synthetic images per student step (0: all of them)
    dsa: bool = True
    num_experts: int = 100
    expert_train_epochs: int = 50
    expert_lr: float = 0.01
    expert_batch: int = 256
    expert_momentum: float = 0.0
    expert_weight_decay: float = 0.0
    curve_points: int = 0
    curve_epochs: int = 0
    curve_models: int = 1
    checkpoint_every: int = 0

    def __post_init__(self) -> None:
        if self.iterations < 0 or self.syn_steps < 1 or self.expert_epochs < 1 or self.max_start_epoch < 1:
            raise ValueError("iterations must be >= 0; syn_steps, expert_epochs and max_start_epoch >= 1")
        if self.max_start_epoch - 1 + self.expert_epochs > self.expert_train_epochs:
            raise ValueError(f"max_start_epoch - 1 + expert_epochs = {self.max_start_epoch - 1 + self.expert_epochs} "
                             f"exceeds expert_train_epochs = {self.expert_train_epochs}: the target epoch would not exist")


# (dataset, ipc) -> the authors' README commands (None: any IPC). mtt-distillation README: CIFAR-100
# IPC 1; tesla README: CIFAR-10 IPC 1, CIFAR-100 IPC 50, ImageNet-1K IPC 1 (ConvNetD4, batch_syn 100,
# its --teacher_label is TESLA's soft labels). Everything else takes distill.py's defaults.
README_DEFAULTS = {
    ("cifar100", 1): dict(syn_steps=20, expert_epochs=3, max_start_epoch=20, lr_img=1000.0, lr_lr=1e-5),
    ("cifar10", 1): dict(syn_steps=50, expert_epochs=2, max_start_epoch=5, lr_img=1000.0, lr_lr=1e-7),
    ("cifar100", 50): dict(syn_steps=80, expert_epochs=2, max_start_epoch=40, lr_img=1000.0, lr_lr=1e-5, batch_syn=125),
    ("imagenet1k", None): dict(syn_steps=10, expert_epochs=3, max_start_epoch=10, lr_img=1e4, lr_lr=1e-4,
                               batch_syn=100, num_experts=50),
}
README_DEFAULTS[("cifar10-jpeg", 1)] = README_DEFAULTS[("cifar10", 1)]
README_DEFAULTS[("imagenet", None)] = README_DEFAULTS[("imagenet1k", None)]

# Budgets below the paper's. smoke: a few experts of a few epochs, a short distillation (CI);
# reduced: ten experts, start epochs up to 10.
SCALE_BUDGETS = {
    "paper": {},
    "reduced": dict(iterations=500, num_experts=10, expert_train_epochs=20, max_start_epoch=10),
    "smoke": dict(iterations=40, syn_steps=10, expert_epochs=2, max_start_epoch=4, num_experts=4,
                  expert_train_epochs=6, lr_img=100.0),
}


@METHODS.register("mtt")
class MTT(Method):
    name = "mtt"
    Params = MTTParams
    protocol = "mtt"
    matches_real = False  # real data enters through the experts only: DREAM composes as its initialiser

    @classmethod
    def defaults(cls, spec, ipc: int, scale: str) -> dict:
        d = dict(README_DEFAULTS.get((spec.name, ipc), README_DEFAULTS.get((spec.name, None), {})))
        budget = SCALE_BUDGETS[scale]
        d.update(budget)
        if scale != "paper":  # a reduced budget keeps the README's start epochs only where they fit
            d["max_start_epoch"] = min(d.get("max_start_epoch", MTTParams.max_start_epoch), budget["max_start_epoch"])
        return d

    @staticmethod
    def expert_spec(resolved) -> tuple[ExpertSpec, int]:
        """(the experts a resolved run reads, how many): what ``bench experts`` trains ahead."""
        p = resolved.params
        spec = ExpertSpec(dataset=resolved.config.dataset, data_variant=resolved.data.describe(), model=resolved.config.model,
                          epochs=p.expert_train_epochs, lr=p.expert_lr, batch=p.expert_batch, momentum=p.expert_momentum,
                          weight_decay=p.expert_weight_decay, augment="dsa" if p.dsa else "none")
        return spec, p.num_experts

    # The two places TESLA differs -----------------------------------------------------------
    def targets(self, p, model: FlatNetwork, images: torch.Tensor, labels: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """What the student's cross-entropy is taken against: MTT's hard labels."""
        return labels

    def meta_gradient(self, p, model, images, targets, lr, start, target, batches):
        return unrolled_meta_gradient(model, images, targets, lr, start, target, batches)

    # ------------------------------------------------------------------------------------------
    def run(self, ctx) -> SyntheticSet:
        p = ctx.params
        dataset = ctx.dataset
        experts = ctx.expert_trajectories(*self.expert_spec(ctx.resolved))
        synset = ctx.initialise(space="normalized")
        image_syn = synset.images.detach().clone().requires_grad_(True)
        syn_lr = torch.tensor(p.lr_teacher, device=ctx.device).requires_grad_(True)
        opt_img = torch.optim.SGD([image_syn], lr=p.lr_img, momentum=0.5)
        opt_lr = torch.optim.SGD([syn_lr], lr=p.lr_lr, momentum=0.5)
        model = FlatNetwork(ctx.build_model())
        stored = experts.trajectory(0).shape[1]
        if stored != sum(model.numels):
            raise BenchError(f"stored experts {experts.folder} have {stored} parameters, "
                             f"model {ctx.config.model} has {sum(model.numels)}")
        augment = DiffAugment(dataset.spec.dsa_strategy, "dsa") if p.dsa else None
        start, targets = self._resume(ctx, image_syn, opt_img, syn_lr, opt_lr, synset.labels)

        def current() -> SyntheticSet:
            return SyntheticSet(image_syn.detach().clone(), targets.detach().clone(), space="normalized",
                                lr=float(syn_lr.detach()))

        if start == 0 and ctx.curve_due(0, p.iterations):
            ctx.evaluate_curve_point(0, current())
        for it in ctx.progress(range(start + 1, p.iterations + 1), start, p.iterations):
            with ctx.timer("matching"):
                trajectory = experts.trajectory(int(torch.randint(p.num_experts, ())))
                epoch = int(torch.randint(p.max_start_epoch, ()))
                theta0 = trajectory[epoch].to(ctx.device)
                theta_t = trajectory[epoch + p.expert_epochs].to(ctx.device)
                targets = self.targets(p, model, image_syn.detach(), synset.labels, theta_t)
                batches = self._batches(image_syn, p, augment, ctx.device)
                loss, image_grad, lr_grad = self.meta_gradient(p, model, image_syn, targets, syn_lr, theta0, theta_t, batches)
                image_syn.grad, syn_lr.grad = image_grad, lr_grad
                opt_img.step()
                opt_lr.step()
            if p.lr_lr and float(syn_lr.detach()) <= 0:  # a host read, only when the lr is learned at all
                raise BenchError(f"the synthetic lr became {float(syn_lr.detach()):.3g} <= 0 at iteration {it} "
                                 f"(lr_lr {p.lr_lr:g} is too large here; try --set lr_lr=...); no record written")
            ctx.log_loss(it, loss, image_syn.detach())
            if ctx.curve_due(it, p.iterations):
                ctx.evaluate_curve_point(it, current())
            ctx.maybe_checkpoint(it, lambda: {"images": image_syn.detach().cpu(), "optimizer": opt_img.state_dict(),
                                              "lr": syn_lr.detach().cpu(), "lr_optimizer": opt_lr.state_dict(),
                                              "targets": targets.detach().cpu()})
        ctx.metrics["syn_lr"] = float(syn_lr.detach())
        return current()

    @staticmethod
    def _batches(images: torch.Tensor, p: MTTParams, augment, device) -> StudentBatches:
        batches = StudentBatches.draw(len(images), p.syn_steps, p.batch_syn, device)
        if augment is not None:  # each step's DSA draw (per-sample, as their seed -1), kept for replays
            draws = [augment.draw(len(ix), device=device) for ix in batches.indices]
            batches.augment = lambda x, step: augment.apply(x, draws[step])
        return batches

    @staticmethod
    def _resume(ctx, image_syn, opt_img, syn_lr, opt_lr, labels) -> tuple[int, torch.Tensor]:
        """(iteration to continue from, current targets), the state restored in place."""
        resumed = ctx.resume()
        if resumed is None:
            return 0, labels
        start, state = resumed
        with torch.no_grad():
            image_syn.copy_(state["images"].to(image_syn.device))
            syn_lr.copy_(state["lr"].to(syn_lr.device))
        opt_img.load_state_dict(state["optimizer"])
        opt_lr.load_state_dict(state["lr_optimizer"])
        return start, state["targets"].to(labels.device)
