"""What a method sees while it runs: data, device, sampler, initialiser, metrics, timers,
checkpoints and the accuracy-vs-iteration curve. Methods never touch the store or the CLI."""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from bench.core.atomic import atomic_torch_save, move_aside
from bench.core.errors import BenchError
from bench.core.progress import progress_enabled
from bench.core.seeding import capture_rng_state, restore_rng_state
from bench.data.synset import SyntheticSet
from bench.dream.compose import INITIALISERS, SAMPLERS
from bench.dream.diagnostics import track_synthetic
from bench.evaluation.evaluate import evaluate_synset
from bench.run.experts import ExpertSpec, ExpertStore, ensure_experts
from bench.nets.models import build_model


class DivergenceError(BenchError):
    """NaN or inf in the loss or the synthetic images: the run stops, its last checkpoint stays."""


class PhaseTimer:
    """Wall-clock seconds per named phase (matching, network updates, clustering, evaluation...)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, phase: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[phase] = self.seconds.get(phase, 0.0) + time.perf_counter() - start


class Checkpointer:
    """Saves the distillation state every ``every`` iterations; ``every=0`` disables it.

    Two generations are kept: ``checkpoint.pt`` and the one before it, ``checkpoint.prev.pt``.
    Each is written atomically, so a kill leaves whole files; a file damaged on disk anyway (a
    truncation, a full disk elsewhere) is moved aside with one warning line and the run resumes from
    the other generation, or from the start when neither loads."""

    KEYS = ("iteration", "method_state", "rng", "run_id")

    def __init__(self, path: Path, every: int):
        self.path = path
        self.previous = path.with_name(f"{path.stem}.prev{path.suffix}")
        self.every = every
        self.resumed_from: int | None = None

    def due(self, iteration: int) -> bool:
        return self.every > 0 and iteration % self.every == 0

    def save(self, payload: dict) -> None:
        if self.path.exists():
            os.replace(self.path, self.previous)
        atomic_torch_save(payload, self.path)

    def exists(self) -> bool:
        return self.path.exists() or self.previous.exists()

    def load(self) -> dict | None:
        for path in (self.path, self.previous):
            payload = self._read(path)
            if payload is not None:
                return payload
        return None

    def _read(self, path: Path) -> dict | None:
        if not path.exists():
            return None
        try:
            payload = torch.load(path, weights_only=False, map_location="cpu")
            missing = [k for k in self.KEYS if k not in payload] if isinstance(payload, dict) else list(self.KEYS)
            if missing:
                raise ValueError(f"missing {', '.join(missing)}")
            return payload
        except Exception as exc:  # noqa: BLE001 - torch.load fails in many ways on a damaged file
            aside = move_aside(path)
            first = (str(exc).splitlines() or [type(exc).__name__])[0][:120]
            where = f"moved aside to {aside.name}" if aside else "already moved aside"
            print(f"warning: damaged checkpoint {path} ({type(exc).__name__}: {first}) {where}", file=sys.stderr, flush=True)
            return None

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
        self.previous.unlink(missing_ok=True)


@dataclass
class RunContext:
    resolved: "object"  # bench.run.config.ResolvedRun
    dataset: "object"  # bench.data.datasets.ImageDataset, already on `device`
    device: torch.device
    run_dir: Path
    checkpoint_every: int = 0
    metrics: dict = field(default_factory=dict)
    timer: PhaseTimer = field(default_factory=PhaseTimer)
    _sampler: object = None
    # the results store this run belongs to: shared artefacts (expert trajectories) live under it
    store_root: Path | None = None

    def __post_init__(self) -> None:
        self.checkpointer = Checkpointer(self.run_dir / "checkpoint.pt", self.checkpoint_every)
        self._pending_losses: list = []

    # ---------------------------------------------------------------- what the run asked for
    @property
    def config(self):
        return self.resolved.config

    @property
    def params(self):
        return self.resolved.params

    @property
    def ipc(self) -> int:
        return self.resolved.config.ipc

    @property
    def seed(self) -> int:
        return self.resolved.config.seed

    def build_model(self, name: str | None = None) -> torch.nn.Module:
        return build_model(name or self.config.model, self.dataset).to(self.device)

    @property
    def sampler(self):
        if self._sampler is None:
            if self.resolved.sampler is None:
                raise BenchError(f"method {self.config.method!r} declares no real-batch matching (matches_real)")
            self._sampler = SAMPLERS.get(self.resolved.sampler)(self.dataset, self, self.resolved.sampler_config)
        return self._sampler

    def real_batch(self, method_default: int) -> int:
        """Real images per class per matching step: the sampler's ``batch_real`` setting when it has
        one (DREAM's code matches 128 where IDC's matches 64), else the method's own."""
        return getattr(self.resolved.sampler_config, "batch_real", None) or method_default

    def initialise(self, space: str = "normalized", factor: int = 1, pipeline: str = "vico") -> SyntheticSet:
        initialiser = INITIALISERS.get(self.resolved.initialiser)(self.resolved.initialiser_config)
        with self.timer("initialisation"):
            return initialiser(self, self.ipc, space=space, factor=factor, pipeline=pipeline)

    def progress(self, steps, done: int, total: int):
        """The distillation loop with a progress bar (stderr; off when not a terminal unless
        BENCH_PROGRESS=1), resumed runs starting at ``done`` of ``total``."""

        bar = tqdm(steps, initial=done, total=total, desc=f"{self.resolved.label} {self.dataset.name} ipc={self.ipc}",
                   unit="it", disable=not progress_enabled(), leave=False, mininterval=5 if not sys.stderr.isatty() else 0.1)
        return self._flushing(bar)

    def _flushing(self, bar):
        """The loop's iterations, then the losses still held on the device."""
        yield from bar
        self.flush_losses()

    def track_synthetic(self, images, iteration: int, space: str = "normalized", pipeline: str = "vico") -> None:
        """Fig 4a's hook, once per iteration: returns at once unless the run's diagnostics ask."""
        track_synthetic(self, images, iteration, space=space, pipeline=pipeline)

    # ---------------------------------------------------------------- safety
    def check_finite(self, iteration: int, loss: float | torch.Tensor, images: torch.Tensor) -> None:
        """An immediate check (a host read); the matching loops use :meth:`log_loss` instead."""
        value = float(loss)
        if not math.isfinite(value) or not torch.isfinite(images).all():
            self._diverged("matching loss" if not math.isfinite(value) else "synthetic images", iteration)

    # ---------------------------------------------------------------- losses without a host sync per step
    LOSS_FLUSH_EVERY = 25  # iterations between host reads of the logged losses

    def log_loss(self, iteration: int, loss: torch.Tensor, images: torch.Tensor) -> None:
        """Record an iteration's loss (``metrics['loss']``) and check it and the images are finite,
        without reading anything on the host: the value and the flags stay on the device until
        :meth:`flush_losses`, every ``LOSS_FLUSH_EVERY`` iterations, before a checkpoint and when the
        loop of :meth:`progress` ends. A non-finite value is still named by its own iteration."""
        loss = loss.detach().double()
        loss_ok = torch.isfinite(loss)
        self._pending_losses.append((iteration, loss, torch.stack([loss_ok & torch.isfinite(images).all(), loss_ok])))
        if len(self._pending_losses) >= self.LOSS_FLUSH_EVERY:
            self.flush_losses()

    def flush_losses(self) -> None:
        pending, self._pending_losses = self._pending_losses, []
        if not pending:
            return
        values = torch.stack([v for _, v, _ in pending]).tolist()  # one host read for all of them
        flags = torch.stack([f for _, _, f in pending]).tolist()
        losses = self.metrics.setdefault("loss", [])
        for (iteration, _, _), value, (ok, loss_ok) in zip(pending, values, flags):
            if not ok:
                self._diverged("matching loss" if not loss_ok else "synthetic images", iteration)
            losses.append(value)

    def _diverged(self, where: str, iteration: int):
        kept = f"last good checkpoint kept at {self.checkpointer.path}" if self.checkpointer.exists() else "no checkpoint yet"
        raise DivergenceError(f"{where} became non-finite at iteration {iteration}; {kept}; no record written")

    # ---------------------------------------------------------------- artefacts
    def expert_trajectories(self, spec: ExpertSpec, count: int) -> ExpertStore:
        """``count`` stored experts of ``spec`` (trained here first when missing, resumable), under
        the run's store (``./results`` for a run outside one, as a notebook's ``bench.distill``)."""
        with self.timer("experts"):
            return ensure_experts(self.store_root or Path("results"), spec, count, self.dataset, self.device)

    def save_artifact(self, name: str, obj, what: str) -> None:
        """A file beside the run's record (written atomically) that figures read back, e.g. the
        initialiser's own clusters for Fig 2d; the record lists it under ``metrics.artifacts``."""
        atomic_torch_save(obj, self.run_dir / name)
        self.metrics.setdefault("artifacts", {})[name] = what

    # ---------------------------------------------------------------- checkpoints
    def save_checkpoint(self, iteration: int, state: dict) -> None:
        """``state`` is the method's own (synthetic images, optimiser, sampler...); the context adds
        every RNG state, the metrics so far and the phase timings. A diverged state is never saved:
        the logged losses are read (and checked) first."""
        self.flush_losses()
        self.checkpointer.save({
            "iteration": iteration,
            "method_state": state,
            "rng": capture_rng_state(),
            "metrics": self.metrics,
            "timer": self.timer.seconds,
            "run_id": self.resolved.run_id,
        })

    def maybe_checkpoint(self, iteration: int, state_fn) -> None:
        if self.checkpointer.due(iteration):
            self.save_checkpoint(iteration, state_fn())

    def resume(self) -> tuple[int, dict] | None:
        """(iteration, method state) of the last checkpoint of this very run, with every RNG, the
        metrics and timings restored; None when there is none."""
        payload = self.checkpointer.load()
        if payload is None or payload.get("run_id") != self.resolved.run_id:
            return None
        restore_rng_state(payload["rng"])
        self.metrics.clear()
        self.metrics.update(payload["metrics"])
        self.timer.seconds = dict(payload["timer"])
        self.checkpointer.resumed_from = payload["iteration"]
        self.metrics.setdefault("resumed_at", []).append(payload["iteration"])
        print(f"resuming run {self.resolved.run_id} at iteration {payload['iteration']}", flush=True)
        return payload["iteration"], payload["method_state"]

    def start_or_resume(self, images: torch.Tensor, optimizer, current, total: int) -> int:
        """The iteration a matching method continues from: with a checkpoint of this run, its
        synthetic ``images``, their ``optimizer`` and the sampler are restored in place; on a fresh
        start the iteration-0 curve point is evaluated when due (``current()`` builds the set)."""
        resumed = self.resume()
        if resumed is not None:
            start, state = resumed
            with torch.no_grad():
                images.copy_(state["images"].to(images.device))
            optimizer.load_state_dict(state["optimizer"])
            self.sampler.load_state_dict(state.get("sampler", {}))
            return start
        if self.curve_due(0, total):
            self.evaluate_curve_point(0, current())
        return 0

    def matching_state(self, images: torch.Tensor, optimizer) -> dict:
        """What :meth:`start_or_resume` restores: the images, their optimiser and the sampler."""
        return {"images": images.detach().cpu().clone(), "optimizer": optimizer.state_dict(),
                "sampler": self.sampler.state_dict()}

    # ---------------------------------------------------------------- accuracy vs iteration
    def curve_due(self, iteration: int, total: int) -> bool:
        points = getattr(self.params, "curve_points", 0)
        if not points:
            return False
        marks = {round(total * k / points) for k in range(0, points + 1)}
        return iteration in marks

    def evaluate_curve_point(self, iteration: int, synset: SyntheticSet) -> float:
        """Short evaluation at one iteration, stored under ``metrics['curve']``. It uses its own
        derived seeds and restores the global RNG afterwards, so it never changes the run itself."""
        epochs = getattr(self.params, "curve_epochs", 0) or self.resolved.protocol.epochs
        models = getattr(self.params, "curve_models", 1)
        protocol = dataclasses.replace(self.resolved.protocol, epochs=epochs, num_models=models)
        state = capture_rng_state()
        with self.timer("evaluation"):
            results = evaluate_synset(synset, self.dataset, [self.config.model], protocol,
                                      seed=self.seed * 7919 + iteration, device=self.device)
        restore_rng_state(state)
        accs = [r.last for r in results[self.config.model]]
        mean = sum(accs) / len(accs)
        self.metrics.setdefault("curve", []).append({"iteration": iteration, "accuracy": mean, "per_model": accs,
                                                     "epochs": epochs})
        return mean
