"""bench.core.allocator: freed activations stay in the process (no page faults when the next
iteration allocates them again), the opt-out restores glibc's behaviour, and results do not move."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

# Allocate and free a 200 MB tensor a few times, as iterations do, then count the minor page faults
# of one more allocation (the first rounds may land elsewhere in the heap).
_REALLOCATE = """
import resource, sys, torch
from bench.core.allocator import keep_freed_memory
state = keep_freed_memory()
for _ in range(3):
    x = torch.ones(50_000_000); del x
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
x = torch.ones(50_000_000)
print(state, "|", resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""
_PAGES = 50_000_000 * 4 // 4096


def _reallocate(**env) -> tuple[str, int]:
    out = subprocess.run([sys.executable, "-c", _REALLOCATE], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT), **env})
    state, faults = out.stdout.strip().rsplit("|", 1)
    return state.strip(), int(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_a_freed_tensor_is_reallocated_without_page_faults():
    state, faults = _reallocate(BENCH_MALLOC="")
    assert state == "glibc: keep freed memory"
    assert faults < 0.02 * _PAGES, f"{faults} faults re-allocating {_PAGES} pages"
    state, faults = _reallocate(BENCH_MALLOC="system")  # glibc's defaults: unmapped on free, faulted again
    assert state == "system default (BENCH_MALLOC=system)"
    assert faults > 0.9 * _PAGES, f"only {faults} faults for {_PAGES} pages: the opt-out did not take"


def test_the_allocator_setting_changes_no_result_and_is_recorded(tmp_path):
    runs = {}
    for setting in ("", "system"):
        out = tmp_path / (setting or "kept")
        done = subprocess.run([sys.executable, "-m", "bench.cli", "run", "--method", "dm", "--dataset", "digits",
                               "--ipc", "2", "--scale", "smoke", "--set", "iterations=5", "--eval-set", "epochs=5",
                               "--eval-set", "num_models=1", "--out", str(out)], capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT), "BENCH_MALLOC": setting})
        assert done.returncode == 0, done.stderr[-2000:]
        folder = next((out / "runs").glob("*/record.json")).parent
        runs[setting] = (json.loads((folder / "record.json").read_text()), torch.load(folder / "synset.pt", weights_only=False))
    (kept, kept_set), (system, system_set) = runs[""], runs["system"]
    assert kept["run_id"] == system["run_id"]  # not part of what a run is
    assert kept["device"]["malloc"] != system["device"]["malloc"] == "system default (BENCH_MALLOC=system)"
    assert torch.equal(kept_set["images"], system_set["images"])
    assert kept["metrics"]["loss"] == system["metrics"]["loss"]
    assert kept["accuracy"]["mean"] == system["accuracy"]["mean"]
