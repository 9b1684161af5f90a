"""The library as a notebook uses it: distil a set, evaluate any set, read stored results.

    import bench
    synset = bench.distill("dm", "digits", ipc=10, seed=0, iterations=20)   # a SyntheticSet
    scores = bench.evaluate(synset, epochs=50, models=2)                    # accuracies per network
    record = bench.run_cell("dm", "digits", ipc=10, out="results")         # distil + evaluate + store
    frame = bench.load_results("results")                                   # every stored run, tidy

Each call resolves its configuration exactly as ``bench run`` does (same defaults, same checks,
same seeding), so a notebook number and a stored record of the same configuration agree. Method
hyperparameters are keyword arguments; a sampler's, an initialiser's or the diagnostics' settings
go in ``settings`` with their dotted names (``{"sampler.interval": 20}``).
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from bench.core.seeding import seed_everything
from bench.data.datasets import DataOptions, ImageDataset, load_dataset
from bench.data.synset import SyntheticSet
from bench.evaluation.evaluate import evaluate_synset, resolve_protocol
from bench.run.config import RunConfig, resolve
from bench.run.context import RunContext
from bench.run.distill import summary
from bench.run.runner import execute, pick_device, validate
from bench.run.store import RunStore


def distill(method: str, dataset: str, ipc: int, seed: int = 0, *, dream: bool = False, sampler: str | None = None,
            initialiser: str | None = None, scale: str = "smoke", model: str = "convnet3",
            data: DataOptions | None = None, data_root: str | Path | None = None, device: str = "auto",
            settings: dict[str, Any] | None = None, **params) -> SyntheticSet:
    """Run one method (optionally composed with DREAM or any sampler / initialiser) and return its
    synthetic set, with the run's resolved config and metrics in ``synset.info``. Nothing is stored."""
    overrides = {**params, **(settings or {})}
    resolved = resolve(RunConfig(method=method, dataset=dataset, ipc=ipc, seed=seed, model=model, scale=scale,
                                 dream=dream, sampler=sampler, initialiser=initialiser,
                                 params=tuple(sorted(overrides.items())), data=data))
    validate(resolved, None if data_root is None else Path(data_root))
    dev = pick_device(device)
    loaded = load_dataset(dataset, data_root, resolved.data).to(dev)
    seed_everything(seed)
    with tempfile.TemporaryDirectory() as tmp:  # checkpoints, if the method writes any, are thrown away
        ctx = RunContext(resolved, loaded, dev, Path(tmp), checkpoint_every=0)
        synset = resolved.method_cls().run(ctx)
    synset.info = {"config": resolved.as_dict(), "run_id": resolved.run_id, "metrics": ctx.metrics,
                   "data": dataclasses.asdict(resolved.data), "data_root": None if data_root is None else str(data_root)}
    return synset


def evaluate(synset: SyntheticSet, dataset: str | ImageDataset | None = None, *, protocol: str | None = None,
             models: int | None = None, architectures: tuple[str, ...] = ("convnet3",), epochs: int | None = None,
             seed: int = 0, data_root: str | Path | None = None, device: str = "auto", together: bool = False,
             **protocol_overrides) -> dict[str, Any]:
    """Train fresh networks on ``synset`` under an evaluation protocol (default: the method's own,
    else ``dsa``) and test them; ``together`` trains them at once (vmap; same accuracies up to float
    rounding). ``dataset`` defaults to the one ``distill`` used. Returns
    {"mean", "std", "per_model": {architecture: [last-epoch accuracies]}, "protocol"}."""
    info = getattr(synset, "info", None) or {}
    config = info.get("config", {})
    if dataset is None:
        if not config:
            raise ValueError("evaluate: give the dataset (this synthetic set did not come from bench.distill)")
        dataset = config["dataset"]
    if isinstance(dataset, str):
        options = DataOptions(**info["data"]) if info.get("data") else DataOptions()
        root = data_root if data_root is not None else info.get("data_root")
        dataset = load_dataset(dataset, root, options)
    overrides = dict(protocol_overrides)
    if models is not None:
        overrides["num_models"] = models
    if epochs is not None:
        overrides["epochs"] = epochs
    name = protocol or config.get("protocol", {}).get("name", "dsa")
    resolved_protocol = resolve_protocol(name, dataset.name, **overrides)
    dev = pick_device(device)
    results = evaluate_synset(synset, dataset.to(dev), list(architectures), resolved_protocol, seed=seed, device=dev,
                              together=together)
    per_model = {arch: [r.last for r in rs] for arch, rs in results.items()}
    mean, std = summary(per_model[architectures[0]])
    return {"mean": mean, "std": std, "per_model": per_model, "protocol": dataclasses.asdict(resolved_protocol)}


def run_cell(method: str, dataset: str, ipc: int, seed: int = 0, *, out: str | Path = "results", dream: bool = False,
             sampler: str | None = None, initialiser: str | None = None, scale: str = "smoke",
             model: str = "convnet3", data: DataOptions | None = None, data_root: str | Path | None = None,
             device: str = "auto", settings: dict[str, Any] | None = None, evaluation: dict[str, Any] | None = None,
             **params) -> dict:
    """What ``bench run`` does for one cell: distil, evaluate, store the record and the set under
    ``out`` (skipped when the record exists). Returns the record."""
    overrides = {**params, **(settings or {})}
    resolved = resolve(RunConfig(method=method, dataset=dataset, ipc=ipc, seed=seed, model=model, scale=scale,
                                 dream=dream, sampler=sampler, initialiser=initialiser,
                                 params=tuple(sorted(overrides.items())), eval=tuple(sorted((evaluation or {}).items())),
                                 data=data))
    root = None if data_root is None else Path(data_root)
    validate(resolved, root)
    record, _ = execute(resolved, out, root, device)
    return record


def load_results(out: str | Path = "results") -> pd.DataFrame:
    """Every stored run under ``out`` as a tidy frame: one row per (run, evaluation model)."""
    return RunStore(out).frame()
