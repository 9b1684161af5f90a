"""DREAM as a composition: a sampler (which real images a method matches) plus an initialiser (how
the synthetic set starts), each with its own settings, composed with any method.

This module is the one place ``--dream`` expands and the one place a run's label is derived from
its sampler and initialiser, so no method, command or spec loader names DREAM's parts.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from bench.core.errors import BenchError
from bench.core.params import build_settings
from bench.dream.cluster_init import ClusterInitialiser  # noqa: F401 (registers)
from bench.dream.initialisers import INITIALISERS
from bench.dream.representative import RepresentativeSampler  # noqa: F401 (registers)
from bench.dream.samplers import SAMPLERS

DREAM_SAMPLER = "representative"
DREAM_INITIALISER = "cluster"
BASELINE_SAMPLER = "random"  # what a matching method draws real batches with unless told otherwise

# ``--set <group>.<field>=value`` routes a setting to the sampler, the initialiser or the diagnostics
SETTING_GROUPS = ("sampler", "init", "diagnostics")


def switches(matches_real: bool, dream: bool, sampler: str | None, initialiser: str | None) -> tuple[str | None, str | None]:
    """(sampler, initialiser) a request names: ``dream`` fills whichever the user left open with
    DREAM's part (coresets match no real batches, so they take the initialiser alone)."""
    if dream:
        if matches_real:
            sampler = sampler or DREAM_SAMPLER
        initialiser = initialiser or DREAM_INITIALISER
    return sampler, initialiser


DREAM_SUFFIX = "+dream"


def method_and_dream(name: str, dream: bool = False) -> tuple[str, bool]:
    """``dm+dream`` in a method list is ``dm`` with ``--dream`` (the label tables print), so one
    command can run a method beside its DREAM variant."""
    if name.endswith(DREAM_SUFFIX) and len(name) > len(DREAM_SUFFIX):
        return name[: -len(DREAM_SUFFIX)], True
    return name, dream


def label(method: str, matches_real: bool, sampler: str | None, initialiser: str) -> str:
    """How tables name a run: ``idc``, ``idc+dream``, and Table 3's halves ``idc+rm`` / ``idc+init``;
    on a coreset the cluster initialiser is ``random+dream`` (the k-means-centre coreset)."""
    rm = sampler == DREAM_SAMPLER
    init = initialiser == DREAM_INITIALISER
    if rm and init:
        return f"{method}+dream"
    suffix = []
    if rm:
        suffix.append("rm")
    elif sampler not in (None, BASELINE_SAMPLER):
        suffix.append(sampler)
    if init:
        suffix.append("init" if matches_real else "dream")
    return "+".join([method, *suffix])


def split_settings(overrides: dict[str, Any]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """(method overrides, {group: overrides}) from ``--set`` keys; ``sampler.interval`` goes to the
    sampler, a key without a dot to the method."""
    method: dict[str, Any] = {}
    groups: dict[str, dict[str, Any]] = {g: {} for g in SETTING_GROUPS}
    for key, value in overrides.items():
        group, dot, field = key.partition(".")
        if not dot:
            method[key] = value
        elif group in groups and field:
            groups[group][field] = value
        else:
            raise BenchError(f"unknown setting group in {key!r}; use a method parameter or one of "
                             f"{', '.join(g + '.<field>' for g in SETTING_GROUPS)}")
    return method, groups


def resolve_sampler(name: str | None, method_cls, spec, scale: str, overrides: dict):
    """The sampler's frozen settings (None for a method that matches no real batches)."""
    if name is None:
        if overrides:
            raise BenchError(f"method {method_cls.name!r} matches no real batches, so sampler settings "
                             f"{sorted(overrides)} do not apply")
        return None
    cls = SAMPLERS.get(name)
    return build_settings(cls.Config, cls.defaults(method_cls, spec, scale), overrides, f"sampler {name!r}")


def resolve_initialiser(name: str, method_cls, spec, scale: str, overrides: dict):
    cls = INITIALISERS.get(name)
    return build_settings(cls.Config, cls.defaults(method_cls, spec, scale), overrides, f"initialiser {name!r}")


def settings_record(settings) -> dict:
    """What a run's identity holds of a settings object: every field (empty for none)."""
    return dataclasses.asdict(settings) if settings is not None else {}

