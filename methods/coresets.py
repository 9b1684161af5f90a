"""The coreset baselines: real images chosen per class, trained with the DC/DSA/DM protocol.

Both are an initialiser alone: Random is ``real`` (uniform per class with the run's seed), Herding
is ``herding``; with ``--dream`` the initialiser becomes ``cluster`` (the k-means-centre coreset).
"""

from __future__ import annotations

from dataclasses import dataclass

from methods.base import METHODS, Method


@dataclass(frozen=True)
class RandomParams:
    """Random selection has no hyperparameters: the run's seed decides the draw."""


@dataclass(frozen=True)
class HerdingParams:
    """Herding selects with a ConvNet trained on the full training set (IDC loads such a checkpoint;
    the harness trains its own). The budget is ``feature_epochs`` but at least ``feature_min_steps``
    SGD steps, so a small dataset (digits: 5 steps an epoch) still gets a trained network."""

    feature_epochs: int = 3
    feature_min_steps: int = 500
    feature_seed: int = 0  # one selection network per dataset, shared by all seeds


@METHODS.register("random")
class RandomCoreset(Method):
    name = "random"
    Params = RandomParams

    def run(self, ctx):
        return ctx.initialise(space="normalized")


@METHODS.register("herding")
class HerdingCoreset(Method):
    name = "herding"
    Params = HerdingParams

    @classmethod
    def default_initialiser(cls, spec, ipc: int) -> str:
        return "herding"

    @classmethod
    def defaults(cls, spec, ipc: int, scale: str) -> dict:
        return {"feature_epochs": {"paper": 3, "reduced": 2, "smoke": 1}[scale],
                "feature_min_steps": {"paper": 500, "reduced": 500, "smoke": 300}[scale]}

    def run(self, ctx):
        return ctx.initialise(space="normalized")
