"""DC (gradient matching) and DSA (DC + Siamese differentiable augmentation), after VICO ``main.py``.

Per iteration: a fresh randomly initialised network and a fresh SGD for it; then ``outer_loop``
times: for every class, a random real batch (``batch_real``) and the class's synthetic images, the
class's real and synthetic gradients matched with the ``ours`` distance, the loss summed over
classes and one SGD step on the images; unless it is the last outer step, the network is trained
``inner_loop`` epochs on the current synthetic set (DSA: with per-sample DSA).

A sampler "step" (what DREAM's re-clustering interval counts) is one outer-loop step:
``step = iteration * outer_loop + ol``, so ``step`` increases by one per image update.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bench.core.errors import BenchError
from bench.data.synset import SyntheticSet
from bench.evaluation.train import train_network
from bench.nets.augment import DiffAugment
from bench.nets.matching import METRICS, batched_matching_loss, per_class_matching_loss
from methods.base import METHODS, Method

# VICO utils.get_loops: IPC -> (outer_loop, inner_loop); other IPCs exit in the authors' code.
GET_LOOPS = {1: (1, 1), 10: (10, 50), 20: (20, 25), 30: (30, 20), 40: (40, 15), 50: (50, 10)}


@dataclass(frozen=True)
class DCParams:
    """DC/DSA hyperparameters (VICO ``main.py`` argparse defaults and ``get_loops``).

    Departures from the authors' code, all deliberate:
    * ``get_network`` reseeds torch with the wall clock for every new network and the DSA Siamese
      seed is ``time.time()``-based; here both come from the run's seeded, checkpointed RNG, so a
      run repeats and resumes bit for bit on CPU.
    * ``batch_real`` images per class are drawn without replacement by the run's sampler (the
      authors: a numpy permutation of the class).
    * ``iterations`` counts image-update iterations; the authors' loop runs 0..1000 and evaluates
      at iteration 1000 before its last update, i.e. after 1000 updates, which is what we keep.
    * ``smoke`` and ``reduced`` scales cut ``iterations`` (and, for smoke, ``batch_real``).
    """

    iterations: int = 1000
    outer_loop: int | None = None  # None: from get_loops(ipc)
    inner_loop: int | None = None
    batch_real: int = 256  # real images per class per matching step
    batch_train: int = 256  # batch of the inner network training on the synthetic set
    lr_img: float = 0.1  # SGD on the synthetic images, momentum 0.5
    momentum_img: float = 0.5
    lr_net: float = 0.01  # SGD on the network, no momentum, no weight decay
    metric: str = "ours"  # ours | mse | cos
    dsa: bool = False  # DSA: Siamese DSA on matched batches, per-sample DSA on network training
    # True: all classes in one pass (same maths). Off by default: on an idle 2-core CPU the per-class
    # loop was as fast or faster at a fraction of the memory (README, Speed); untimed on a GPU.
    batched: bool = False
    curve_points: int = 0  # evaluate every 1/curve_points of the run (0: never)
    curve_epochs: int = 0  # evaluation epochs at curve points (0: the protocol's)
    curve_models: int = 1
    checkpoint_every: int = 0  # iterations between checkpoints (0: none)

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {self.metric!r}")
        if self.iterations < 0 or self.batch_real < 1:
            raise ValueError("iterations must be >= 0 and batch_real >= 1")


SCALE_BUDGETS = {"paper": {}, "reduced": {"iterations": 200}, "smoke": {"iterations": 10, "batch_real": 64}}


@METHODS.register("dc")
class DC(Method):
    name = "dc"
    Params = DCParams
    protocol = "dc"
    matches_real = True
    dsa = False

    @classmethod
    def default_initialiser(cls, spec, ipc: int) -> str:
        return "real" if cls.dsa else "noise"  # DC: --init noise; DSA README: --init real

    @classmethod
    def defaults(cls, spec, ipc: int, scale: str) -> dict:
        d = dict(SCALE_BUDGETS[scale])
        d["dsa"] = cls.dsa
        if ipc in GET_LOOPS:
            d["outer_loop"], d["inner_loop"] = GET_LOOPS[ipc]
        if scale == "smoke":  # the same number of matching steps at every IPC (IPC 10: 10 a iteration)
            d["iterations"] = max(1, d["iterations"] // d.get("outer_loop", 1))
        return d

    @classmethod
    def resolve_params(cls, spec, ipc: int, scale: str, overrides: dict):
        params = super().resolve_params(spec, ipc, scale, overrides)
        if params.outer_loop is None or params.inner_loop is None:
            raise BenchError(
                f"{cls.name}: IPC {ipc} is not in the authors' loop table (IPC {sorted(GET_LOOPS)}); "
                f"give both loops explicitly, e.g. --set outer_loop=10 --set inner_loop=50")
        if params.outer_loop < 1 or params.inner_loop < 0:
            raise BenchError(f"{cls.name}: outer_loop must be >= 1 and inner_loop >= 0")
        return params

    # ------------------------------------------------------------------------------------------
    def run(self, ctx) -> SyntheticSet:
        p = ctx.params
        dataset = ctx.dataset
        k, ipc = dataset.num_classes, ctx.ipc
        synset = ctx.initialise(space="normalized")
        image_syn = synset.images.detach().clone().requires_grad_(True)
        opt_img = torch.optim.SGD([image_syn], lr=p.lr_img, momentum=p.momentum_img)
        augment = DiffAugment(dataset.spec.dsa_strategy, "dsa") if p.dsa else None
        n_real = min(p.batch_real, dataset.smallest_class())
        matching = batched_matching_loss if p.batched else per_class_matching_loss

        def current() -> SyntheticSet:
            return SyntheticSet(image_syn.detach().clone(), synset.labels.clone(), space="normalized")

        start = ctx.start_or_resume(image_syn, opt_img, current, p.iterations)
        train_images = dataset.train_images

        for it in ctx.progress(range(start + 1, p.iterations + 1), start, p.iterations):
            net = ctx.build_model()
            net.train()
            opt_net = torch.optim.SGD(net.parameters(), lr=p.lr_net)
            loss_sum = torch.zeros((), dtype=torch.float64, device=ctx.device)  # summed on the device
            for ol in range(p.outer_loop):
                step = (it - 1) * p.outer_loop + ol
                with ctx.timer("matching"):
                    real = torch.stack([
                        dataset.normalise(train_images[ctx.sampler.sample(c, n_real, net=net, step=step)])
                        for c in range(k)])
                    draws = [augment.draw(1, shared=True, device=ctx.device) for _ in range(k)] if augment is not None else None
                    syn = image_syn.view(k, ipc, *image_syn.shape[1:])
                    loss = matching(net, real, syn, augment, draws, p.metric)
                    opt_img.zero_grad(set_to_none=True)
                    loss.backward()
                    opt_img.step()
                loss_sum += loss.detach().double()
                if ol == p.outer_loop - 1:
                    break
                with ctx.timer("network_updates"):
                    self._train_net(net, opt_net, image_syn.detach().clone(), synset.labels, p, augment)
            ctx.log_loss(it, loss_sum / (k * p.outer_loop), image_syn.detach())
            if ctx.curve_due(it, p.iterations):
                ctx.evaluate_curve_point(it, current())
            ctx.track_synthetic(image_syn.detach(), it)  # Fig 4a, when diagnostics are on
            ctx.maybe_checkpoint(it, lambda: ctx.matching_state(image_syn, opt_img))
        return current()

    @staticmethod
    def _train_net(net, opt_net, images, labels, p, augment) -> None:
        """VICO ``epoch('train', ...)`` on the synthetic set, ``inner_loop`` times."""
        # the images' own finiteness is the loop's check (ctx.log_loss), named by its iteration
        train_network(net, images, labels, opt_net, range(p.inner_loop), p.batch_train, augment=augment,
                      check_finite=False)


@METHODS.register("dsa")
class DSA(DC):
    """DC plus DSA (VICO ``--method DSA``): the Siamese draw is shared by class c's real and
    synthetic batch, per-sample draws augment the inner network training, init real, and the
    DSA evaluation protocol (1000 epochs with DSA)."""

    name = "dsa"
    protocol = "dsa"
    dsa = True
