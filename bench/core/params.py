"""Frozen hyperparameter dataclasses built from defaults and ``key=value`` overrides.

One builder for every kind of settings (a method's Params, a sampler's or an initialiser's Config,
the diagnostics), so an unknown key, a wrong type or a bad value is the same one-line error
everywhere."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any

from bench.core.errors import BenchError


def build_settings(cls: type, defaults: dict, overrides: dict, what: str):
    """``cls(**{**defaults, **overrides})``; ``what`` names the owner in errors ("method 'dc'")."""
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise BenchError(f"unknown parameter(s) {unknown} for {what}; known: {sorted(fields)}")
    values = {**defaults, **typed_overrides(cls, overrides, what)}
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


def _coerce(value: Any, hint: Any) -> Any:
    """``value`` as the field type ``hint``; raises ValueError when it is not one."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg)
            except ValueError:
                continue
        raise ValueError
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError
        return tuple(_coerce(v, args[0]) for v in value)
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ValueError
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ValueError
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value) if isinstance(value, float) else value
        raise ValueError
    if hint is str:
        if isinstance(value, str):
            return value
        raise ValueError
    return value  # a type this harness does not parse: passed on, the dataclass checks it


def _type_name(hint: Any) -> str:
    text = getattr(hint, "__name__", None) if typing.get_origin(hint) is None else None
    return text or str(hint).replace("typing.", "")


def typed_overrides(cls: type, overrides: dict, what: str) -> dict:
    """Overrides checked against the dataclass's field types: an integer field takes an integer, a
    float field a finite number, a bool true/false; one line naming the key, the type and the value."""
    hints = typing.get_type_hints(cls)
    out = {}
    for key, value in overrides.items():
        hint = hints.get(key)
        if hint is None:
            out[key] = value
            continue
        try:
            out[key] = _coerce(value, hint)
        except ValueError:
            raise BenchError(f"{what}: {key} must be {_type_name(hint)}"
                             f"{' (finite)' if hint is float else ''}, got {value!r}") from None
    return out
