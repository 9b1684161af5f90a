"""Frozen hyperparameter dataclasses built from defaults and ``key=value`` overrides.

One builder for every kind of settings (a method's Params, a sampler's or an initialiser's Config,
the diagnostics), so an unknown key, a wrong type or a bad value is the same one-line error
everywhere."""

from __future__ import annotations

import dataclasses
from typing import Any

from bench.core.errors import BenchError


def build_settings(cls: type, defaults: dict, overrides: dict, what: str):
    """``cls(**{**defaults, **overrides})``; ``what`` names the owner in errors ("method 'dc'")."""
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise BenchError(f"unknown parameter(s) {unknown} for {what}; known: {sorted(fields)}")
    values = {**defaults, **overrides}
    for key, value in values.items():  # lists from JSON become tuples, so settings stay hashable
        if isinstance(value, list):
            values[key] = tuple(value)
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise BenchError(f"bad parameters for {what}: {exc}") from None


def non_default(settings: Any) -> dict:
    """The fields of a settings dataclass that differ from the class defaults."""
    base = type(settings)()
    return {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)
            if getattr(settings, f.name) != getattr(base, f.name)}


@dataclasses.dataclass(frozen=True)
class NoSettings:
    """A sampler or initialiser without settings of its own."""


def flatten_settings(table: dict, prefix: str = "") -> dict:
    """TOML's ``{ sampler.clusters = 32 }`` is a nested table; settings keys are dotted strings."""
    flat: dict = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten_settings(value, name + "."))
        else:
            flat[name] = value
    return flat
