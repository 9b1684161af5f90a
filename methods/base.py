"""The method interface and its registry. A method is a class with one frozen dataclass of
hyperparameters (``Params``), per-dataset/IPC/scale defaults, and a ``run`` that returns a
synthetic set. Samplers and initialisers come from the run context, never from the method."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from bench.config import build_params
from bench.registry import Registry
from bench.synset import SyntheticSet

METHODS: Registry[type["Method"]] = Registry("method")

DREAM_SAMPLER = "representative"
DREAM_INITIALISER = "cluster"


@dataclass(frozen=True)
class MatchingSwitches:
    """Knobs every matching method accepts though the method never reads them: the DREAM sampler
    (:mod:`bench.dream`) and the diagnostics (:mod:`bench.diagnostics`) read them from the run's
    params. Method Params inherit these, so ``--set dream_interval=20`` is validated like any field.
    """

    dream_clusters: int = 128  # N sub-clusters (the paper's default)
    dream_per_cluster: int = 1  # n samples nearest each centre
    dream_interval: int = 10  # I_int: re-cluster every I_int sampler steps (the method defines a step)
    dream_dedupe: bool = True  # replace duplicate picks with the next-nearest unused sample
    diagnostics_every: int = 0  # observe the matched batch every k sampler calls per class (0: off)
    diagnostics_classes: tuple[int, ...] = (0,)
    diagnostics_grad_norms: bool = True
    diagnostics_track_every: int = 0  # Fig 4a tracking interval (0: diagnostics_every)
    diagnostics_track_index: int = 0


class Method:
    name: ClassVar[str]
    Params: ClassVar[type]
    protocol: ClassVar[str] = "dsa"  # the evaluation protocol of the method's own paper
    default_sampler: ClassVar[str | None] = None  # None: the method matches no real batches

    @classmethod
    def default_initialiser(cls, spec, ipc: int) -> str:
        return "real"

    @classmethod
    def defaults(cls, spec, ipc: int, scale: str) -> dict[str, Any]:
        """Per-dataset, per-IPC and per-scale defaults (the Params' own defaults fill the rest)."""
        return {}

    @classmethod
    def resolve_params(cls, spec, ipc: int, scale: str, overrides: dict[str, Any]):
        return build_params(cls.Params, cls.defaults(spec, ipc, scale), overrides, cls.name)

    @classmethod
    def label(cls, sampler: str | None, initialiser: str) -> str:
        """How tables name the method: DREAM's halves are Table 3's RM-only and Init-only rows."""
        rm = sampler == DREAM_SAMPLER
        init = initialiser == DREAM_INITIALISER
        if rm and init:
            return f"{cls.name}+dream"
        suffix = []
        if rm:
            suffix.append("rm")
        elif sampler not in (None, "random"):
            suffix.append(sampler)
        if init:
            suffix.append("init" if cls.default_sampler is not None else "dream")
        return "+".join([cls.name, *suffix])

    def run(self, ctx) -> SyntheticSet:
        raise NotImplementedError
