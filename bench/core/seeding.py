"""Explicit seeding and RNG-state capture, so CPU runs repeat bit for bit and resume exactly."""

from __future__ import annotations

import os
import random
from contextlib import contextmanager

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and every CUDA device) from one integer."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


def capture_rng_state() -> dict:
    """Every global RNG state, for checkpoints that must resume bit-identically."""
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


@contextmanager
def preserved_rng():
    """Every global RNG (python, numpy, torch's CPU and CUDA) as it was before the block, after it:
    work that seeds its own stream (training an expert) leaves the caller's stream untouched."""
    state = capture_rng_state()
    try:
        yield
    finally:
        restore_rng_state(state)


def restore_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


DETERMINISTIC_ENV = "BENCH_DETERMINISTIC"


def deterministic_requested() -> bool:
    """``bench run --deterministic`` sets the variable, so runs in subprocesses and SLURM jobs (which
    inherit the environment) apply it too."""
    return os.environ.get(DETERMINISTIC_ENV, "0") in ("1", "true", "yes")


def apply_determinism(on: bool) -> dict:
    """Deterministic GPU algorithms where torch has them: cuDNN's deterministic convolutions, no
    cuDNN autotuning, and ``torch.use_deterministic_algorithms`` in warn-only mode. What stays
    non-deterministic on CUDA is what torch has no deterministic kernel for: ``grid_sample``'s
    backward (DSA's scale and rotate, the synthetic images' gradient through them) and
    ``index_put`` with accumulation warn instead of failing. A CPU run is deterministic either way.
    ``on=False`` leaves torch's settings as they are (a notebook may have set them). Returns the
    settings in force, for the record."""
    if on:
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        torch.use_deterministic_algorithms(True, warn_only=True)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS's condition for determinism
    return {"deterministic": torch.are_deterministic_algorithms_enabled(),
            "cudnn_deterministic": torch.backends.cudnn.deterministic, "cudnn_benchmark": torch.backends.cudnn.benchmark}
