"""The coreset baselines: real images chosen per class, trained with the DC/DSA/DM protocol.

Both are an initialiser alone: Random is ``real`` (uniform per class with the run's seed), Herding
is ``herding``; with ``--dream`` the initialiser becomes ``cluster`` (the k-means-centre coreset).
"""

from __future__ import annotations

from dataclasses import dataclass

from methods.base import METHODS, Method


@dataclass(frozen=True)
class CoresetParams:
    """Coresets have no optimisation; the only knob is the feature network Herding selects with."""

    feature_epochs: int = 0  # epochs of full-data training for the selection network (Herding)
    feature_seed: int = 0  # one selection network per dataset, shared by all seeds (as IDC's checkpoint)


@METHODS.register("random")
class RandomCoreset(Method):
    name = "random"
    Params = CoresetParams

    def run(self, ctx):
        return ctx.initialise(space="normalized")


@METHODS.register("herding")
class HerdingCoreset(Method):
    name = "herding"
    Params = CoresetParams

    @classmethod
    def default_initialiser(cls, spec, ipc: int) -> str:
        return "herding"

    @classmethod
    def defaults(cls, spec, ipc: int, scale: str) -> dict:
        return {"feature_epochs": {"paper": 5, "reduced": 2, "smoke": 1}[scale]}

    def run(self, ctx):
        return ctx.initialise(space="normalized")
