"""The method interface and its registry. A method is a class with one frozen dataclass of
hyperparameters (``Params``), per-dataset/IPC/scale defaults, and a ``run`` that returns a
synthetic set. Which real images it matches and how its set starts come from the run context
(``ctx.sampler``, ``ctx.initialise``), composed from outside: a method never names them."""

from __future__ import annotations

from typing import Any, ClassVar

from bench.core.params import build_settings
from bench.core.registry import Registry
from bench.data.synset import SyntheticSet

METHODS: Registry[type["Method"]] = Registry("method")


class Method:
    name: ClassVar[str]
    Params: ClassVar[type]
    protocol: ClassVar[str] = "dsa"  # the evaluation protocol of the method's own paper
    matches_real: ClassVar[bool] = False  # True: draws real batches through ``ctx.sampler``
    # The space its synthetic images live in and the normalisation it matches under: DC/DSA/DM
    # keep normalised images (VICO), IDC raw [0, 1] images normalised inside its augmentation.
    space: ClassVar[str] = "normalized"
    pipeline: ClassVar[str] = "vico"

    @classmethod
    def default_initialiser(cls, spec, ipc: int) -> str:
        return "real"

    @classmethod
    def defaults(cls, spec, ipc: int, scale: str) -> dict[str, Any]:
        """Per-dataset, per-IPC and per-scale defaults (the Params' own defaults fill the rest)."""
        return {}

    @classmethod
    def resolve_params(cls, spec, ipc: int, scale: str, overrides: dict[str, Any]):
        return build_settings(cls.Params, cls.defaults(spec, ipc, scale), overrides, f"method {cls.name!r}")

    def run(self, ctx) -> SyntheticSet:
        raise NotImplementedError
