"""Real-batch samplers: which real images of a class a matching method matches against.

The baselines draw a random batch; DREAM's module registers a representative sampler here, and the
paper's probes (central, boundary) too. A method only ever calls ``ctx.sampler.sample``.

Each sampler class carries its settings as a frozen dataclass (``Config``) with defaults that may
depend on the method and the dataset (``defaults``); the run resolves and hashes them with the rest
of its config (``--set sampler.<field>=value``), so no method's hyperparameters hold a sampler's.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from bench.core.params import NoSettings
from bench.core.registry import Registry
from bench.dream.diagnostics import observe_real_batch

SAMPLERS: Registry[type["RealSampler"]] = Registry("sampler")


class RealSampler:
    """Draws indices into ``dataset.train_images`` for one class.

    ``net`` is the current matching network and ``step`` a counter the method advances (what a step
    means is the method's choice, documented there); samplers that cluster use them, random ignores
    them. Randomness comes from torch's global RNG, which the run seeds and checkpoints.
    """

    Config: ClassVar[type] = NoSettings

    @classmethod
    def defaults(cls, method_cls, spec, scale: str) -> dict:
        """Per-method, per-dataset defaults of ``Config`` (the dataclass's own fill the rest)."""
        return {}

    def __init__(self, dataset, ctx=None, config=None):
        self.dataset = dataset
        self.ctx = ctx
        if config is None:
            config = getattr(getattr(ctx, "resolved", None), "sampler_config", None) or self.Config()
        self.config = config

    def sample(self, c: int, n: int, net: torch.nn.Module | None = None, step: int = 0) -> torch.Tensor:
        raise NotImplementedError

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


@SAMPLERS.register("random")
class RandomSampler(RealSampler):
    """``n`` distinct random images of class ``c`` (all of them when the class is smaller)."""

    def sample(self, c: int, n: int, net: torch.nn.Module | None = None, step: int = 0) -> torch.Tensor:
        ix = self.dataset.class_indices(c)
        chosen = ix[torch.randperm(len(ix), device=ix.device)[:n]]  # drawn on the data's device
        if self.ctx is not None:  # DREAM diagnostics (Fig 2c, 3) when the run asks; no RNG use
            observe_real_batch(self.ctx, c, chosen, net, step, sampler="random")
        return chosen
