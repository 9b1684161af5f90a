"""Where a submitted cell stands: the job index under ``<out>/jobs`` (one JSON entry per cell: executor,
job id, log files) read with the results store, ``squeue`` and submitit's job folders, so
``bench status`` says done / queued / running / failed / stale / missing without SLURM accounting."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch
from submitit.core.utils import pickle_load

from bench.core.atomic import atomic_write_text
from bench.run.staleness import StaleIndex
from bench.run.store import RunStore


# ------------------------------------------------------------------------------------ job index
class JobIndex:
    """``<out>/jobs/<run_id>.json``: the latest submission of each run (and the earlier ones)."""

    def __init__(self, out: Path | str):
        self.root = Path(out) / "jobs"

    def path(self, run_id: str) -> Path:
        return self.root / f"{run_id}.json"

    def read(self, run_id: str) -> dict | None:
        try:
            return json.loads(self.path(run_id).read_text())
        except (OSError, json.JSONDecodeError):
            return None

    def write(self, run_id: str, entry: dict) -> None:
        old = self.read(run_id)
        history = []
        if old is not None:
            history = old.get("history", []) + [{k: old.get(k) for k in ("executor", "job_id", "submitted_at")}]
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path(run_id), json.dumps({**entry, "run_id": run_id, "history": history}, indent=1))


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _job_entry(executor: str, job, label: str, extra: dict | None = None) -> dict:
    paths = job.paths
    return {"executor": executor, "job_id": str(job.job_id), "label": label, "folder": str(paths.folder),
            "stdout": str(paths.stdout), "stderr": str(paths.stderr), "result": str(paths.result_pickle),
            "submitted_at": _now(), **(extra or {})}


# ------------------------------------------------------------------------------------ status
STATES = ("done", "queued", "running", "failed", "stale", "missing", "unknown")
_SLURM_QUEUED = {"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD", "SPECIAL_EXIT"}
_SLURM_RUNNING = {"CONFIGURING", "RUNNING", "COMPLETING", "STAGE_OUT", "SIGNALING", "RESIZING", "SUSPENDED",
                  "STOPPED"}


@dataclass
class CellStatus:
    run_id: str
    state: str  # one of STATES
    job_id: str | None = None
    detail: str = ""
    log_tail: list[str] = field(default_factory=list)
    log_file: str | None = None


def squeue_states(job_ids: Iterable[str]) -> dict[str, tuple[str, str]] | None:
    """{job id (``123`` or ``123_4``): (state, reason)} for the given jobs that squeue still lists
    (pending, running, or finished within MinJobAge); None when squeue cannot be asked."""
    bases = sorted({str(j).split("_", 1)[0] for j in job_ids})
    if not bases:
        return {}
    if shutil.which("squeue") is None:
        return None
    try:
        proc = subprocess.run(["squeue", "-h", "-r", "-t", "all", "-o", "%i|%T|%r", "-j", ",".join(bases)],
                              capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        if "Invalid job id" in proc.stderr:  # every one of them has left squeue
            return {}
        return None
    states = {}
    for line in proc.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) >= 2:
            states[parts[0]] = (parts[1], parts[2] if len(parts) > 2 else "")
    return states


def _tail(path: str | None, lines: int) -> list[str]:
    if not path:
        return []
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 16384))
            text = handle.read().decode(errors="replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if line.strip()][-lines:]


def _read_result(path: str | None) -> tuple[str, Any] | None:
    if not path or not Path(path).exists():
        return None
    try:

        return pickle_load(path)
    except Exception:  # noqa: BLE001 - a half-written or foreign pickle tells us nothing
        return None


def _pid_alive(pid: int | str | None, needle: str = "") -> bool:
    try:
        cmdline = Path(f"/proc/{int(pid)}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (OSError, ValueError, TypeError):
        return False
    return needle in cmdline


def _failed(run_id: str, entry: dict, detail: str, lines: int, result: tuple | None = None) -> CellStatus:
    if result is not None and result[0] == "error":
        tail = [line for line in str(result[1]).splitlines() if line.strip()][-lines:]
        log = entry.get("result")
    else:
        log = entry.get("stderr")
        tail = _tail(log, lines)
        if not tail:
            log = entry.get("stdout")
            tail = _tail(log, lines)
    return CellStatus(run_id, "failed", entry.get("job_id"), detail, tail, log)


def _progress(store: RunStore, run_id: str) -> str:
    """A suffix naming the iteration of the run's latest checkpoint, or nothing when it has none."""
    for name in ("checkpoint.pt", "checkpoint.prev.pt"):
        path = store.run_dir(run_id) / name
        if path.exists():
            try:
                return f", checkpoint at iteration {torch.load(path, weights_only=False, map_location='cpu')['iteration']}"
            except Exception:  # noqa: BLE001 - being written or damaged: the run reports it itself
                continue
    return ""


def _never_submitted(store: RunStore, stale: StaleIndex, r, running: dict | None) -> CellStatus:
    """A run no executor holds: interrupted (its marker outlived its process), stale or missing."""
    if running is not None:  # its process ended without a record: killed
        return CellStatus(r.run_id, "missing", None, f"interrupted: pid {running['pid']} ended without a record"
                          + _progress(store, r.run_id) + "; rerun to continue")
    old = stale.stale_for(r)
    if old:
        return CellStatus(r.run_id, "stale", None, f"{len(old)} record(s) of an older config: "
                          f"{', '.join(rec['run_id'] for rec in old)}; rerun to replace")
    return CellStatus(r.run_id, "missing")


def cell_statuses(resolved: Sequence, out: Path | str, log_lines: int = 5) -> list[CellStatus]:
    """The state of each resolved run, from the store, the job index, squeue and the job folders."""
    store, index = RunStore(out), JobIndex(out)
    stale = StaleIndex(store.records())
    entries = {r.run_id: index.read(r.run_id) for r in resolved}
    slurm_ids = [e["job_id"] for e in entries.values() if e and e.get("executor") == "slurm" and e.get("job_id")]
    queue = squeue_states(slurm_ids) if slurm_ids else {}
    statuses = []
    for r in resolved:
        run_id, entry = r.run_id, entries[r.run_id]
        job_id = entry.get("job_id") if entry else None
        if store.has_record(run_id):
            statuses.append(CellStatus(run_id, "done", job_id))
            continue
        running = store.running_info(run_id)
        if running is not None and running["alive"] is not False and (entry is None or entry.get("executor") != "slurm"):
            where = "" if running["alive"] else f" on {running['host']} (not checked from here)"
            statuses.append(CellStatus(run_id, "running", job_id, f"pid {running['pid']}{where} since {running['since']}"
                                       + _progress(store, run_id)))
            continue
        if entry is None:
            statuses.append(_never_submitted(store, stale, r, running))
            continue
        executor = entry.get("executor")
        if executor == "local" and job_id is None:  # waiting in a `bench run --executor local` queue
            if _pid_alive(entry.get("launcher_pid"), "bench"):
                statuses.append(CellStatus(run_id, "queued", None, f"waiting in local launcher pid {entry['launcher_pid']}"))
            else:
                statuses.append(CellStatus(run_id, "missing", None, "its local launcher ended before starting it"))
            continue
        if executor == "slurm":
            if queue is None:
                statuses.append(CellStatus(run_id, "unknown", job_id, "squeue failed: cannot tell queued from dead"))
                continue
            if job_id in queue:
                state, reason = queue[job_id]
                if state in _SLURM_QUEUED:
                    statuses.append(CellStatus(run_id, "queued", job_id, state.lower() + (f" ({reason})" if reason and reason != "None" else "")))
                    continue
                if state in _SLURM_RUNNING:
                    statuses.append(CellStatus(run_id, "running", job_id, state.lower()))
                    continue
                result = _read_result(entry.get("result"))
                detail = f"slurm state {state}" + (" (it finished without writing a record)" if state == "COMPLETED" else "")
                statuses.append(_failed(run_id, entry, detail, log_lines, result))
                continue
        elif executor == "local":
            if _pid_alive(job_id, "submitit"):
                statuses.append(CellStatus(run_id, "running", job_id, "local process"))
                continue
        result = _read_result(entry.get("result"))
        if result is not None and result[0] == "error":
            statuses.append(_failed(run_id, entry, "the task raised an error", log_lines, result))
        elif result is not None:
            statuses.append(_failed(run_id, entry, "the task ended without writing a record", log_lines))
        else:
            statuses.append(_failed(run_id, entry, "dead: no longer queued or running, no result, no record", log_lines))
    return statuses
