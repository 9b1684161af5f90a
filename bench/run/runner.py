"""One config -> distil -> evaluate -> record. The only place that writes results."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

import torch

from bench.core.allocator import keep_freed_memory
from bench.core.errors import BenchError
from bench.core.seeding import apply_determinism, deterministic_requested, seed_everything
from bench.data.datasets import load_dataset
from bench.run.config import ResolvedRun, RunConfig, resolve
from bench.run.context import RunContext
from bench.run.store import RunStore, code_version, device_info, package_versions
from bench.run.tasks import TASKS


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise BenchError(f"device {name!r} requested but CUDA is not available")
    return torch.device(name)


def configure_threads() -> None:
    """Inside a SLURM job, use exactly the CPUs it was given."""
    cpus = os.environ.get("SLURM_CPUS_PER_TASK")
    if cpus and cpus.isdigit():
        torch.set_num_threads(int(cpus))


def validate(resolved: ResolvedRun, data_root: Path | None) -> None:
    """Everything that can be checked before work starts (data present, IPC fits)."""
    dataset = load_dataset(resolved.config.dataset, data_root, resolved.data)
    if resolved.config.ipc > dataset.smallest_class():
        raise BenchError(
            f"IPC {resolved.config.ipc} is larger than the smallest class of {dataset.name} "
            f"({dataset.smallest_class()} training images{' in ' + dataset.variant if dataset.variant else ''})"
        )


def execute(resolved: ResolvedRun, out: Path | str, data_root: Path | None = None, device: str = "auto",
            force: bool = False, checkpoint_every: int | None = None) -> tuple[dict, bool]:
    """Run one resolved config unless its record exists. Returns (record, ran)."""
    store = RunStore(out)
    run_id = resolved.run_id
    if store.has_record(run_id) and not force:
        return store.read_record(run_id), False
    configure_threads()
    allocator = keep_freed_memory()  # before the first big tensor: see bench/core/allocator.py
    determinism = apply_determinism(deterministic_requested())
    version = code_version()  # before the run: the code this process loaded (cached)
    dev = pick_device(device)
    dataset = load_dataset(resolved.config.dataset, data_root, resolved.data).to(dev)
    with store.running(run_id):
        record, synset, ctx = _distil(resolved, dataset, dev, store, version, checkpoint_every)
        record["device"].update(determinism, malloc=allocator)
        if synset is not None:
            store.save_synset(run_id, synset)
            record["synset_file"] = "synset.pt"
        store.write_record(record)  # the commit point: written last, atomically
        ctx.checkpointer.remove()
    return record, True


def _distil(resolved: ResolvedRun, dataset, dev: torch.device, store: RunStore, version: dict,
            checkpoint_every: int | None):
    """Run the task and build its record (not yet written)."""
    run_id = resolved.run_id
    started = datetime.now(timezone.utc)
    seed_everything(resolved.config.seed)
    every = checkpoint_every if checkpoint_every is not None else getattr(resolved.params, "checkpoint_every", 0)
    ctx = RunContext(resolved, dataset, dev, store.run_dir(run_id), checkpoint_every=every, store_root=store.root)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    synset, fields = TASKS.get(resolved.config.task)().run(resolved, ctx, dataset, dev)
    record = {
        "schema": 1,
        "kind": resolved.config.task,
        "run_id": run_id,
        "cell_id": resolved.cell_id,
        "config": resolved.as_dict(),
        # what the request named explicitly (the rest are defaults): tells a stale record apart
        "request": {"params": dict(resolved.config.params), "eval": dict(resolved.config.eval)},
        "seed": resolved.config.seed,
        "data_variant": dataset.variant,
        "metrics": ctx.metrics,
        **fields,
        "peak_memory_mb": _peak_memory_mb(dev),
        "code_version": version,
        "packages": package_versions(),
        "device": device_info(dev),
        "started_at": started.isoformat(),
        "finished_at": datetime.now(timezone.utc).isoformat(),
    }
    record["timings"] = {**record["timings"], "phases": ctx.timer.seconds}
    return record, synset, ctx


def _peak_memory_mb(dev: torch.device) -> float:
    if dev.type == "cuda":
        return torch.cuda.max_memory_allocated(dev) / 2**20
    try:
        import resource  # POSIX only: imported where a missing module can fall back to NaN

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB
    except (ImportError, OSError):
        return float("nan")


def run_config(config: RunConfig, out: Path | str, data_root: Path | None = None, device: str = "auto",
               force: bool = False) -> dict:
    """Resolve, validate and execute one config: the entry point executors call."""
    resolved = resolve(config)
    validate(resolved, data_root)
    record, _ = execute(resolved, out, data_root, device, force)
    return record
