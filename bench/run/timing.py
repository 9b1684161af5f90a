"""Timing a method's distillation iterations on a fixed small config (``bench speed``): seconds per
iteration (wall and CPU), the phase split, peak memory, and DREAM's clustering share."""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path

import psutil
import torch

from bench.core.errors import BenchError
from bench.core.seeding import seed_everything
from bench.data.datasets import DATASETS, DataOptions, ImageDataset, load_dataset
from bench.data.synset import SyntheticSet
from bench.dream.representative import clustering_share_at
from bench.evaluation.evaluate import evaluate_synset, resolve_protocol
from bench.nets.models import build_model
from bench.nets.trajectory import FlatNetwork, StudentBatches, adjoint_meta_gradient, unrolled_meta_gradient
from bench.run.config import RunConfig, resolve
from bench.run.context import RunContext


def _random_dataset(name: str, per_class: int = 300, test_per_class: int = 10):
    spec = DATASETS.get(name)
    g = torch.Generator().manual_seed(0)
    k = spec.num_classes
    shape = (spec.channels, spec.size, spec.size)
    return ImageDataset(
        spec=spec,
        train_images=torch.rand(k * per_class, *shape, generator=g),
        train_labels=torch.arange(k).repeat_interleave(per_class),
        test_images=torch.rand(k * test_per_class, *shape, generator=g),
        test_labels=torch.arange(k).repeat_interleave(test_per_class),
        class_names=[str(c) for c in range(k)],
        variant="random tensors",
    )


def timing_dataset(name: str, data_root: Path | None):
    if data_root is None:
        return _random_dataset(name)

    try:
        return load_dataset(name, data_root, DataOptions(max_train_per_class=500, max_test_per_class=10))
    except BenchError:
        print(f"  ({name} not under {data_root}: random tensors of its shape)")
        return _random_dataset(name)


class _PeakRSS:
    def __init__(self) -> None:
        self.proc = psutil.Process()
        self.base = self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)

    @property
    def mb(self) -> float:
        return (self.peak - self.base) / 2**20


def time_method(method: str, dataset, ipc: int, iterations: int, batched: bool | None, device: torch.device,
                overrides: dict | None = None, seed: int = 0, sampler: str | None = None,
                initialiser: str | None = None, dream: bool = False) -> dict:
    """Run ``iterations`` iterations of a method; seconds per iteration, phase split, peak memory.
    With DREAM's sampler, also the clustering share of an iteration at I_int = 10 (``dream_share``)."""

    params = {"iterations": iterations, "curve_points": 0, **(overrides or {})}
    if batched is not None:  # None: a method with a single loop (IDC)
        params["batched"] = batched
    resolved = resolve(RunConfig(method=method, dataset=dataset.name, ipc=ipc, seed=seed, scale="paper",
                                 params=tuple(sorted(params.items())), dream=dream, sampler=sampler,
                                 initialiser=initialiser))
    with tempfile.TemporaryDirectory() as tmp:
        ctx = RunContext(resolved, dataset.to(device), device, Path(tmp), checkpoint_every=0)
        seed_everything(seed)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
        with _PeakRSS() as rss:
            wall, cpu = time.perf_counter(), time.process_time()
            resolved.method_cls().run(ctx)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else rss.mb
    phases = {k: v / max(iterations, 1) for k, v in ctx.timer.seconds.items() if k != "initialisation"}
    out = {"s_per_it": wall / max(iterations, 1), "cpu_s_per_it": cpu / max(iterations, 1),
           "phases": phases, "peak_mb": peak}
    if "sampler" in ctx.metrics.get("dream", {}):
        out["dream_share"] = clustering_share_at(ctx, wall, interval=10)
    return out


def time_evaluation(dataset, ipc: int, networks: int, epochs: int, together: bool, device: torch.device,
                    protocol: str = "dsa", seed: int = 0) -> float:
    """Wall seconds to train and test ``networks`` fresh ConvNet-3s for ``epochs`` epochs on a set of
    ``ipc`` real images per class, one after another or together (vmap)."""
    data = dataset.to(device)
    picks = torch.cat([data.class_indices(c)[:ipc] for c in range(data.num_classes)])
    synset = SyntheticSet(data.normalise(data.train_images[picks]), data.train_labels[picks].clone())
    chosen = resolve_protocol(protocol, dataset.name, epochs=epochs, num_models=networks)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    wall = time.perf_counter()
    evaluate_synset(synset, data, ["convnet3"], chosen, seed=seed, device=device, together=together)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - wall


def meta_gradient_memory(kind: str, dataset_name: str, ipc: int, syn_steps: int, batch_syn: int,
                         device: torch.device) -> dict:
    """Peak memory and time of one trajectory-matching meta-gradient (``kind``: ``mtt`` through the
    unroll, ``tesla`` one step at a time) on random images of a dataset's shape, ConvNet-3, a random
    expert segment. CUDA: max allocated; CPU: the peak resident set above the start, so run each
    cell in a fresh process (``bench speed --trajectory-memory`` does) for a clean baseline."""
    seed_everything(0)
    data = _random_dataset(dataset_name, per_class=1, test_per_class=1)
    model = FlatNetwork(build_model("convnet3", data).to(device))
    start = model.flatten()
    target = start + 0.01 * torch.randn_like(start)
    k = data.num_classes
    images = torch.randn(k * ipc, data.channels, data.size, data.size, device=device, requires_grad=True)
    labels = torch.arange(k, device=device).repeat_interleave(ipc)
    lr = torch.tensor(0.01, device=device, requires_grad=True)
    batches = StudentBatches.draw(len(images), syn_steps, batch_syn, device)
    compute = unrolled_meta_gradient if kind == "mtt" else adjoint_meta_gradient
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    started = time.perf_counter()
    with _PeakRSS() as rss:
        compute(model, images, labels, lr, start, target, batches)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    seconds = time.perf_counter() - started
    peak = (torch.cuda.max_memory_allocated(device) - base) / 2**20 if device.type == "cuda" else rss.mb
    return {"peak_mb": peak, "seconds": seconds, "params": start.numel()}
