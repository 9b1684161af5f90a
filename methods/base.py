"""The method interface and its registry. A method is a class with one frozen dataclass of
hyperparameters (``Params``), per-dataset/IPC/scale defaults, and a ``run`` that returns a
synthetic set. Samplers and initialisers come from the run context, never from the method."""

from __future__ import annotations

from typing import Any, ClassVar

from bench.config import build_params
from bench.registry import Registry
from bench.synset import SyntheticSet

METHODS: Registry[type["Method"]] = Registry("method")

DREAM_SAMPLER = "representative"
DREAM_INITIALISER = "cluster"


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
