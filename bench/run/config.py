"""Run configurations: what the user asks for (:class:`RunConfig`) and what it resolves to.

A config resolves, through the method's frozen hyperparameter dataclass, the scale preset and the
evaluation protocol, into a plain dict. Its hash is the run's stable id, so asking for the same run
twice finds the same record, and changing any resolved value (a default included) makes a new run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from bench.core.errors import BenchError
from bench.core.params import NoSettings, build_settings, non_default
from bench.core.registry import Registry
from bench.data.datasets import DATASETS, DataOptions
from bench.dream.compose import BASELINE_SAMPLER, label, resolve_initialiser, resolve_sampler, split_settings, switches
from bench.dream.diagnostics import DiagnosticsConfig
from bench.evaluation.evaluate import EvalProtocol, resolve_protocol
from bench.nets.models import MODELS
from bench.run.continual import ContinualTask  # noqa: F401  (registers the task)
from bench.run.distill import DistillTask  # noqa: F401  (registers the task)
from bench.run.tasks import TASKS
from methods import METHODS  # methods sit between the building blocks and the run layer


@dataclass(frozen=True)
class ScalePreset:
    """How much compute a run gets. Methods read ``name`` to pick their own iteration budgets."""

    name: str
    eval_epochs: int | None  # None: the protocol's own (1000 / 300)
    eval_models: int
    data: DataOptions = DataOptions()


SCALE_PRESETS: Registry[ScalePreset] = Registry("scale")
SCALE_PRESETS.register("paper")(ScalePreset("paper", eval_epochs=None, eval_models=3))
SCALE_PRESETS.register("reduced")(ScalePreset("reduced", eval_epochs=300, eval_models=2))
SCALE_PRESETS.register("smoke")(ScalePreset(
    "smoke", eval_epochs=40, eval_models=1,
    data=DataOptions(max_train_per_class=500, max_test_per_class=100),
))


def parse_value(text: str) -> Any:
    """``key=value`` overrides: JSON when it parses (numbers, lists, true), else the raw string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_overrides(items: list[str] | tuple[str, ...], what: str) -> tuple[tuple[str, Any], ...]:
    pairs = {}
    for item in items:
        if "=" not in item:
            raise BenchError(f"{what} override {item!r} is not of the form key=value")
        key, value = item.split("=", 1)
        pairs[key.strip()] = parse_value(value.strip())  # a key given twice: the last one wins, as on most CLIs
    return tuple(sorted(pairs.items()))


@dataclass(frozen=True)
class RunConfig:
    """One run: a method on a dataset at an IPC with a seed. Everything else has a default."""

    method: str
    dataset: str
    ipc: int
    seed: int = 0
    model: str = "convnet3"  # the network the method distils (or selects) with
    eval_models: tuple[str, ...] = ()  # empty: the distillation model
    scale: str = "paper"
    dream: bool = False  # DREAM: fills an unset sampler / initialiser with DREAM's (bench.dream.compose)
    sampler: str | None = None  # None: the method's default (``random`` for matching methods)
    initialiser: str | None = None  # None: the method's default
    # method hyperparameter overrides; ``sampler.<field>``, ``init.<field>`` and ``diagnostics.<field>``
    # keys go to the sampler's, the initialiser's and the diagnostics' settings
    params: tuple[tuple[str, Any], ...] = ()
    eval: tuple[tuple[str, Any], ...] = ()  # evaluation protocol overrides
    data: DataOptions | None = None  # None: the scale preset's
    task: str = "distill"  # what the run does (bench/run/tasks.py): distill | continual
    task_options: tuple[tuple[str, Any], ...] = ()  # the task's settings overrides
    amp: str = "off"  # mixed precision of the distillation: off | bf16 (bench.run.distill)


# bf16 only: its exponent range is float32's, so no loss scaling is needed; float16 would need a
# GradScaler inside every method's optimiser steps.
AMP_MODES = ("off", "bf16")

OPERATIONAL_PARAMS = frozenset({"checkpoint_every"})  # left out of run and cell ids


@dataclass(frozen=True)
class ResolvedRun:
    config: RunConfig
    method_cls: type
    params: Any  # the method's frozen dataclass
    protocol: EvalProtocol
    data: DataOptions
    sampler: str | None
    initialiser: str
    eval_models: tuple[str, ...]
    sampler_config: Any = None  # the sampler's frozen settings (None: the method matches no real batches)
    initialiser_config: Any = None
    diagnostics: DiagnosticsConfig = DiagnosticsConfig()
    task_settings: Any = None  # the task's frozen settings (None for ``distill``)

    @property
    def label(self) -> str:
        """The method as tables name it: ``idc``, ``idc+dream``, ``idc+rm``, ``idc+init``."""
        return label(self.method_cls.name, self.method_cls.matches_real, self.sampler, self.initialiser)

    def as_dict(self) -> dict:
        c = self.config
        return {
            "method": c.method,
            "label": self.label,
            "dataset": c.dataset,
            "ipc": c.ipc,
            "seed": c.seed,
            "model": c.model,
            "eval_models": list(self.eval_models),
            "scale": c.scale,
            "sampler": self.sampler,
            "initialiser": self.initialiser,
            "params": _jsonable(dataclasses.asdict(self.params)),
            "protocol": dataclasses.asdict(self.protocol),
            "data": dataclasses.asdict(self.data),
            # settings appear only when they exist or differ from "off", so adding a settings-free
            # sampler or initialiser changes no existing run id
            **({"sampler_config": dataclasses.asdict(self.sampler_config)}
               if self.sampler_config is not None and dataclasses.fields(self.sampler_config) else {}),
            **({"initialiser_config": dataclasses.asdict(self.initialiser_config)}
               if self.initialiser_config is not None and dataclasses.fields(self.initialiser_config) else {}),
            **({"diagnostics": _jsonable(non_default(self.diagnostics))} if non_default(self.diagnostics) else {}),
            **({"task": self.config.task, "task_options": dataclasses.asdict(self.task_settings)}
               if self.config.task != "distill" else {}),
            # present only when on: mixed precision changes the numbers, so it is part of the run id
            **({"amp": c.amp} if c.amp != "off" else {}),
        }

    def identity(self) -> dict:
        """What the run's result depends on: the resolved config less the operational parameters
        (how often to checkpoint changes nothing in the result: resume is bit-identical, tested)."""
        d = self.as_dict()
        d["params"] = {k: v for k, v in d["params"].items() if k not in OPERATIONAL_PARAMS}
        return d

    @property
    def run_id(self) -> str:
        return stable_hash(self.identity())

    @property
    def cell_id(self) -> str:
        """The same run without its seed: the seeds of one table cell share it."""
        d = self.identity()
        d.pop("seed")
        return stable_hash(d)


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))


def stable_hash(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def resolve(config: RunConfig) -> ResolvedRun:
    """Check every name and build the fully resolved run. Raises BenchError on bad input."""
    method_cls = METHODS.get(config.method)
    spec = DATASETS.get(config.dataset)
    MODELS.get(config.model)
    eval_models = config.eval_models or (config.model,)
    for name in eval_models:
        MODELS.get(name)
    scale = SCALE_PRESETS.get(config.scale)
    if config.ipc < 1:
        raise BenchError(f"IPC must be a positive integer, got {config.ipc}")
    if config.amp not in AMP_MODES:
        raise BenchError(f"unknown --amp {config.amp!r}; known: {', '.join(AMP_MODES)}")

    method_overrides, groups = split_settings(dict(config.params))
    if config.sampler is not None and not method_cls.matches_real:
        raise BenchError(f"method {config.method!r} matches no real batches, so it takes no sampler")
    sampler, initialiser = switches(method_cls.matches_real, config.dream, config.sampler, config.initialiser)
    sampler = sampler or (BASELINE_SAMPLER if method_cls.matches_real else None)
    initialiser = initialiser or method_cls.default_initialiser(spec, config.ipc)
    sampler_config = resolve_sampler(sampler, method_cls, spec, scale.name, groups["sampler"])
    initialiser_config = resolve_initialiser(initialiser, method_cls, spec, scale.name, groups["init"])
    diagnostics = build_settings(DiagnosticsConfig, {}, groups["diagnostics"], "diagnostics")

    params = method_cls.resolve_params(spec, config.ipc, scale.name, method_overrides)
    protocol_overrides = {"num_models": scale.eval_models}
    if scale.eval_epochs is not None:
        protocol_overrides["epochs"] = scale.eval_epochs
    protocol_overrides.update(dict(config.eval))
    protocol = resolve_protocol(method_cls.protocol, config.dataset, **protocol_overrides)
    data = config.data if config.data is not None else scale.data
    task_cls = TASKS.get(config.task)
    task_settings = None if task_cls.Settings is NoSettings else build_settings(
        task_cls.Settings, task_cls.defaults(scale), dict(config.task_options), f"task {config.task!r}")
    return ResolvedRun(config, method_cls, params, protocol, data, sampler, initialiser, tuple(eval_models),
                       sampler_config, initialiser_config, diagnostics, task_settings)


def parse_seeds(text: str) -> list[int]:
    """``0-4``, ``0,2,5`` or ``3``. Anything else is one clear error."""
    seeds: list[int] = []
    try:
        for part in str(text).split(","):
            part = part.strip()
            if "-" in part[1:]:
                lo, hi = part.split("-", 1) if not part.startswith("-") else (part, "")
                lo_i, hi_i = int(lo), int(hi)
                if hi_i < lo_i:
                    raise ValueError
                seeds.extend(range(lo_i, hi_i + 1))
            else:
                seeds.append(int(part))
    except ValueError:
        raise BenchError(f"malformed seeds {text!r}: use a range like 0-4, a list like 0,2,5, or one integer") from None
    if any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise BenchError(f"malformed seeds {text!r}: seeds must be distinct non-negative integers")
    return seeds
