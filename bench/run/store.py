"""Results on disk: ``<out>/runs/<run_id>/record.json`` beside ``synset.pt``.

The record is written last and atomically (temp file in the same folder, fsync, rename), so its
presence means the run finished: a killed run leaves at most a checkpoint and temp files, never a
partial record. Many processes may write different runs at once (SLURM array tasks on a shared
file system); they never write the same file.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import subprocess
import sys
from contextlib import contextmanager
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import pandas as pd
import torch

from bench.core.atomic import atomic_torch_save, atomic_write_text, move_aside
from bench.core.errors import BenchError
from bench.core.version import __version__

RECORD_KEYS = ("run_id", "cell_id", "config", "accuracy", "seed")
PACKAGES = ("torch", "torchvision", "numpy", "fast-pytorch-kmeans", "scikit-learn", "scipy", "pandas", "submitit")


@functools.lru_cache(maxsize=1)
def code_version() -> dict:
    """The git commit of the harness (with a dirty flag and the modified files) and its package version.

    Cached on first call, which the CLI makes at start-up: the record must name the code this
    process loaded, not whatever the checkout holds when a long run finishes."""
    return {"package": __version__, **git_state(Path(__file__).resolve().parents[2])}


def git_state(root: Path, max_paths: int = 20) -> dict:
    """HEAD of the checkout at ``root``, whether tracked files differ from it, and which (at most
    ``max_paths``): a run started while a log of earlier runs is being appended to is "dirty" with
    its code untouched, and only the paths tell the two apart. Nones outside a git checkout."""
    info = {"git": None, "dirty": None, "modified": None}
    try:
        info["git"] = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                     check=True, timeout=10).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                                capture_output=True, text=True, check=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return info
    paths = [line[3:] for line in status.splitlines() if line.strip()]
    info["dirty"] = bool(paths)
    info["modified"] = paths[:max_paths] + ([f"... and {len(paths) - max_paths} more"] if len(paths) > max_paths else [])
    return info


def package_versions() -> dict:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def device_info(device: torch.device) -> dict:
    info = {"device": str(device), "torch_threads": torch.get_num_threads(), "host": platform.node(),
            "cpu": platform.processor() or platform.machine()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def check_writable(out: Path) -> None:
    """Fail before any work when ``out`` cannot be created or written, leaving nothing behind."""
    probe_dir = out
    while not probe_dir.exists():
        if probe_dir.parent == probe_dir:
            break
        probe_dir = probe_dir.parent
    if probe_dir.exists() and not probe_dir.is_dir():
        raise BenchError(f"output folder {out} cannot be written: {probe_dir} is a file")
    probe = probe_dir / f".bench-write-probe-{os.getpid()}"
    try:
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise BenchError(f"output folder {out} cannot be written ({exc.strerror or exc})") from None


def _process_start(pid) -> str | None:
    """The start time of a process (field 22 of /proc/<pid>/stat): a pid and this identify it, where
    a pid alone may have been reused."""
    try:
        stat = Path(f"/proc/{int(pid)}/stat").read_text()
    except (OSError, ValueError, TypeError):
        return None
    return stat.rsplit(")", 1)[1].split()[19]


class RunStore:
    def __init__(self, root: Path | str):
        self.root = Path(root)

    def run_dir(self, run_id: str) -> Path:
        return self.root / "runs" / run_id

    def record_path(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "record.json"

    def has_record(self, run_id: str) -> bool:
        return self.read_record(run_id) is not None

    def read_record(self, run_id: str) -> dict | None:
        """The run's record, or None when there is none (a damaged one is moved aside first)."""
        return self._load(self.record_path(run_id))

    def _load(self, path: Path) -> dict | None:
        """The one reader of records. Records are written atomically, so an unreadable one was
        damaged on disk (a crash of the file system, a hand edit, a full disk elsewhere): it is moved
        aside to ``record.json.corrupt-<time>``, said once on stderr, and its cell counts as not run."""
        try:
            record = json.loads(path.read_text())
            missing = [k for k in RECORD_KEYS if k not in record] if isinstance(record, dict) else list(RECORD_KEYS)
            if missing:
                raise ValueError(f"missing {', '.join(missing)}")
            return record
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:  # json.JSONDecodeError is a ValueError
            aside = move_aside(path)
            if aside is None:  # another reader moved it first
                return None
            print(f"warning: corrupt record {path} ({str(exc).splitlines()[0][:120]}) moved aside to {aside.name}; "
                  "its run will be redone", file=sys.stderr)
            return None

    # ---------------------------------------------------------------- runs in progress
    def running_path(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "running.json"

    @contextmanager
    def running(self, run_id: str):
        """Marks the run as in progress (pid, its start time, host) while the block runs, so
        ``bench status`` can tell a running cell from a missing one whatever launched it."""
        path = self.running_path(run_id)
        # A process killed mid-write (kill -9, power loss) leaves its temp file beside the target; it
        # never became the file. Only one process runs a run at a time, so any temp file here is such.
        for stale in self.run_dir(run_id).glob(".*.tmp*"):
            stale.unlink(missing_ok=True)
        atomic_write_text(path, json.dumps({"pid": os.getpid(), "pid_started": _process_start(os.getpid()),
                                            "host": platform.node(), "since": datetime.now(timezone.utc).isoformat(
                                                timespec="seconds")}))
        try:
            yield
        finally:
            path.unlink(missing_ok=True)
            try:
                path.parent.rmdir()  # only when empty: a failed run leaves no folder behind
            except OSError:
                pass

    def running_info(self, run_id: str) -> dict | None:
        """The marker of a run in progress with ``alive``: True when its process still runs on this
        host, False when it ended without finishing (killed), None when it runs on another host."""
        try:
            info = json.loads(self.running_path(run_id).read_text())
        except (OSError, ValueError):
            return None
        if info.get("host") != platform.node():
            info["alive"] = None
        else:
            info["alive"] = info.get("pid_started") is not None and _process_start(info.get("pid")) == info["pid_started"]
        return info

    def save_synset(self, run_id: str, synset) -> Path:
        path = self.run_dir(run_id) / "synset.pt"
        atomic_torch_save(synset.state(), path)
        return path

    def write_record(self, record: dict) -> Path:
        path = self.record_path(record["run_id"])
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(record, indent=1, sort_keys=True, default=float))
        return path

    def records(self) -> list[dict]:
        return [r for r in (self._load(path) for path in sorted(self.root.glob("runs/*/record.json"))) if r]

    def frame(self):
        """One row per (run, evaluation model): the tidy frame every aggregator starts from."""

        rows = []
        for rec in self.records():
            cfg = rec["config"]
            for model, acc in rec["accuracy"]["per_model"].items():
                rows.append({
                    "run_id": rec["run_id"], "cell_id": rec["cell_id"], "method": cfg["method"],
                    "label": cfg["label"], "dataset": cfg["dataset"], "ipc": cfg["ipc"], "seed": cfg["seed"],
                    "scale": cfg["scale"], "data_variant": rec.get("data_variant", ""), "model": cfg["model"],
                    "eval_model": model, "accuracy": acc["mean"], "accuracy_std": acc["std"],
                    "test_selected_best": acc.get("test_selected_best_mean"), "n_models": len(acc["last"]),
                    "at_chance": bool(acc.get("at_chance", False)),
                })
        return pd.DataFrame(rows)
