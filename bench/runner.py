"""One config -> distil -> evaluate -> record. The only place that writes results."""

from __future__ import annotations

import os
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from bench.config import ResolvedRun, RunConfig, resolve
from bench.context import RunContext
from bench.datasets import load_dataset
from bench.errors import BenchError
from bench.evaluate import evaluate_synset
from bench.seeding import seed_everything
from bench.store import RunStore, code_version, device_info, package_versions


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


def _summary(values: list[float]) -> tuple[float, float]:
    mean = statistics.fmean(values)
    std = statistics.pstdev(values) if len(values) > 1 else 0.0
    return mean, std


def execute(resolved: ResolvedRun, out: Path | str, data_root: Path | None = None, device: str = "auto",
            force: bool = False, checkpoint_every: int | None = None) -> tuple[dict, bool]:
    """Run one resolved config unless its record exists. Returns (record, ran)."""
    store = RunStore(out)
    run_id = resolved.run_id
    if store.has_record(run_id) and not force:
        return store.read_record(run_id), False
    configure_threads()
    version = code_version()  # before the run: the code this process loaded (cached)
    dev = pick_device(device)
    dataset = load_dataset(resolved.config.dataset, data_root, resolved.data).to(dev)
    started = datetime.now(timezone.utc)
    seed_everything(resolved.config.seed)
    every = checkpoint_every if checkpoint_every is not None else getattr(resolved.params, "checkpoint_every", 0)
    ctx = RunContext(resolved, dataset, dev, store.run_dir(run_id), checkpoint_every=every)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    t0 = time.perf_counter()
    method = resolved.method_cls()
    synset = method.run(ctx)
    distill_s = time.perf_counter() - t0

    t1 = time.perf_counter()
    results = evaluate_synset(synset, dataset, list(resolved.eval_models), resolved.protocol,
                              seed=resolved.config.seed, device=dev)
    eval_s = time.perf_counter() - t1

    per_model = {}
    for name, rs in results.items():
        mean, std = _summary([r.last for r in rs])
        best_mean, _ = _summary([r.test_selected_best for r in rs])
        per_model[name] = {
            "last": [r.last for r in rs], "mean": mean, "std": std,
            "test_selected_best": [r.test_selected_best for r in rs], "test_selected_best_mean": best_mean,
            "checks": [{str(k): v for k, v in r.checks.items()} for r in rs],
            "seconds": [r.seconds for r in rs],
        }
    primary = per_model[resolved.eval_models[0]]
    peak = _peak_memory_mb(dev)
    record = {
        "schema": 1,
        "run_id": run_id,
        "cell_id": resolved.cell_id,
        "config": resolved.as_dict(),
        "seed": resolved.config.seed,
        "data_variant": dataset.variant,
        "accuracy": {"mean": primary["mean"], "std": primary["std"], "model": resolved.eval_models[0],
                     "per_model": per_model, "reported": "last-epoch test accuracy"},
        "metrics": ctx.metrics,
        "timings": {"distill_s": distill_s, "eval_s": eval_s, "total_s": distill_s + eval_s,
                    "phases": ctx.timer.seconds},
        "peak_memory_mb": peak,
        "code_version": version,
        "packages": package_versions(),
        "device": device_info(dev),
        "started_at": started.isoformat(),
        "finished_at": datetime.now(timezone.utc).isoformat(),
        "synset_file": "synset.pt",
    }
    store.save_synset(run_id, synset)
    store.write_record(record)  # the commit point: written last, atomically
    ctx.checkpointer.remove()
    return record, True


def _peak_memory_mb(dev: torch.device) -> float:
    if dev.type == "cuda":
        return torch.cuda.max_memory_allocated(dev) / 2**20
    try:
        import resource

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
