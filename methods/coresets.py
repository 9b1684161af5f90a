"""The coreset baselines: real images chosen per class, trained with the DC/DSA/DM protocol.

Both are an initialiser alone: Random is ``real`` (uniform per class with the run's seed), Herding
is ``herding`` (whose feature-network budget is the initialiser's setting). Any other initialiser
composes with them from outside.
"""

from __future__ import annotations

from dataclasses import dataclass

from methods.base import METHODS, Method


@dataclass(frozen=True)
class RandomParams:
    """A coreset has no hyperparameters of its own: the run's seed and its initialiser decide."""


@METHODS.register("random")
class RandomCoreset(Method):
    name = "random"
    Params = RandomParams

    def run(self, ctx):
        return ctx.initialise(space="normalized")


@METHODS.register("herding")
class HerdingCoreset(Method):
    name = "herding"
    Params = RandomParams

    @classmethod
    def default_initialiser(cls, spec, ipc: int) -> str:
        return "herding"

    def run(self, ctx):
        return ctx.initialise(space="normalized")
