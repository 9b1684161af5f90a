"""Shared fixtures. Real data comes from the shared folder beside the clone (../shared/data) or
BENCH_DATA_ROOT; tests that need it skip with the reason when it is absent."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("BENCH_DATA_ROOT", REPO.parent / "shared" / "data")).resolve()


@pytest.fixture(autouse=True, scope="session")
def _quiet_offline_env(tmp_path_factory):
    """No progress bars, no download attempts, and a cache the tests share."""
    os.environ["BENCH_PROGRESS"] = "0"
    os.environ["BENCH_OFFLINE"] = "1"
    os.environ.setdefault("BENCH_CACHE", str(tmp_path_factory.mktemp("bench-cache")))
    yield


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The shared data folder holding genuine MNIST (and the CIFAR-10 JPEG archive)."""
    if not (SHARED_DATA / "mnist" / "MNIST" / "raw" / "train-images-idx3-ubyte").exists():
        pytest.skip(f"genuine MNIST not found under {SHARED_DATA}/mnist (set BENCH_DATA_ROOT to the shared data folder)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def cifar_jpeg_root() -> Path:
    if not (SHARED_DATA / "cifar10-jpeg" / "cifar10-jpeg.tar.gz").exists():
        pytest.skip(f"CIFAR-10 JPEG archive not found under {SHARED_DATA}/cifar10-jpeg (set BENCH_DATA_ROOT)")
    return SHARED_DATA


def run_bench(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    """The real console entry point in a subprocess, as a user runs it."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "bench.cli", *args], cwd=cwd or REPO, env=full_env,
                          capture_output=True, text=True, timeout=timeout)
