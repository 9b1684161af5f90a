"""Real-batch samplers: which real images of a class a matching method matches against.

The baselines draw a random batch; DREAM (its own module) registers a representative sampler
here, and the paper's probes (central, boundary) too. A method only ever calls ``sample``.
"""

from __future__ import annotations

import torch

from bench.registry import Registry

SAMPLERS: Registry[type["RealSampler"]] = Registry("sampler")


class RealSampler:
    """Draws indices into ``dataset.train_images`` for one class.

    ``net`` is the current matching network and ``step`` a counter the method advances (what a step
    means is the method's choice, documented there); samplers that cluster use them, random ignores
    them. Randomness comes from torch's global RNG, which the run seeds and checkpoints.
    """

    def __init__(self, dataset, ctx=None):
        self.dataset = dataset
        self.ctx = ctx

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
        chosen = ix[torch.randperm(len(ix))[:n].to(ix.device)]
        if self.ctx is not None:  # DREAM diagnostics (Fig 2c, 3) when the run asks; no RNG use
            from bench.diagnostics import observe_real_batch

            observe_real_batch(self.ctx, c, chosen, net, step, sampler="random")
        return chosen


# DREAM's samplers (representative, central, boundary, boundary_grad) and its ``cluster``
# initialiser register on import; imported here so every use of SAMPLERS sees them.
from bench import dream  # noqa: E402,F401
