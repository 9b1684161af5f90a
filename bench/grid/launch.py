"""Run resolved configs through submitit: ``debug`` (in-process), ``local`` (subprocesses, at most
``--max-parallel`` at once: submitit's local executor has no limit of its own) and ``slurm`` (job
arrays with array parallelism, split at the cluster's MaxArraySize).

Each task is a :class:`RunTask`, a submitit ``Checkpointable`` that calls
:func:`bench.run.runner.run_config`. On preemption or timeout submitit requeues it with the same config;
the requeued run finds the run's distillation checkpoint (``<out>/runs/<run_id>/checkpoint.pt``)
and the method resumes from it. Finished cells (record present) are never submitted, and neither are
cells already queued or running.

Every submitted cell has a small JSON entry in ``<out>/jobs/<run_id>.json`` (executor, job id, log
files); :func:`cell_statuses` reads those, the results store, ``squeue`` and submitit's job folders
to say done / queued / running / failed / missing without SLURM accounting.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections import deque
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Sequence

import submitit
import torch

from bench.core.errors import BenchError
from bench.grid.jobs import JobIndex, _job_entry, _now, cell_statuses
from bench.grid.profiles import ClusterProfile, load_profile
from bench.run.runner import run_config
from bench.run.store import RunStore

EXECUTORS = ("debug", "local", "slurm")
DEFAULT_MAX_ARRAY_SIZE = 1001  # SLURM's default MaxArraySize


# ------------------------------------------------------------------------------------ the task
class RunTask(submitit.helpers.Checkpointable):
    """One run as a submitit job. Preempted or timed out, submitit requeues the same task (the
    default ``checkpoint``); the rerun resumes from the run's checkpoint, which the method wrote."""

    def __init__(self, config, out: str, data_root: str | None = None, device: str = "auto",
                 force: bool = False, threads: int | None = None):
        self.config = config
        self.out = str(out)
        self.data_root = None if data_root is None else str(data_root)
        self.device = device
        self.force = force
        self.threads = threads

    def __call__(self) -> dict:
        if self.threads:

            torch.set_num_threads(self.threads)
        record = run_config(self.config, Path(self.out), None if self.data_root is None else Path(self.data_root),
                            self.device, self.force)
        return {"run_id": record["run_id"], "accuracy": record["accuracy"]["mean"]}

    def checkpoint(self, *args: Any, **kwargs: Any) -> submitit.helpers.DelayedSubmission:
        print("bench: task interrupted (preemption or time limit): requeued; the rerun resumes from the "
              "run's last checkpoint", flush=True)
        return super().checkpoint(*args, **kwargs)

    def __repr__(self) -> str:
        c = self.config
        return f"RunTask({c.method} {c.dataset} ipc={c.ipc} seed={c.seed} scale={c.scale})"


# ------------------------------------------------------------------------------------ launching
def split_array(items: Sequence, max_size: int) -> list[list]:
    """Chunks of at most ``max_size`` (array indices run 0..n-1 and must stay below MaxArraySize)."""
    if max_size < 1:
        raise ValueError("max_size must be positive")
    return [list(items[i:i + max_size]) for i in range(0, len(items), max_size)]


def max_array_size(default: int = DEFAULT_MAX_ARRAY_SIZE) -> int:
    """The cluster's MaxArraySize from ``scontrol show config``; ``default`` when it cannot be read."""
    try:
        proc = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return default
    match = re.search(r"^MaxArraySize\s*=\s*(\d+)", proc.stdout, re.MULTILINE)
    return int(match.group(1)) if match and int(match.group(1)) > 0 else default


def require_slurm() -> None:
    """``--executor slurm`` needs sbatch (and srun, which submitit runs tasks with)."""
    if shutil.which("sbatch") is None:
        raise BenchError("--executor slurm: sbatch was not found on PATH (is SLURM installed here?); "
                         "use --executor local or debug to run on this machine")
    if shutil.which("srun") is None:
        raise BenchError("--executor slurm: srun was not found on PATH although sbatch was; submitit needs both")


def run_limited(executor, tasks: Sequence, limit: int, on_start: Callable | None = None,
                on_end: Callable | None = None, poll_s: float = 0.5) -> list[tuple[Any, Any, BaseException | None]]:
    """Submit ``tasks`` to a submitit executor, at most ``limit`` alive at once. Returns
    (task, result, error) in completion order. On KeyboardInterrupt it cancels what runs."""
    if limit < 1:
        raise BenchError(f"--max-parallel must be at least 1, got {limit}")
    pending, running, finished = deque(tasks), [], []
    try:
        while pending or running:
            while pending and len(running) < limit:
                task = pending.popleft()
                job = executor.submit(task)
                running.append((task, job))
                if on_start:
                    on_start(task, job)
            still = []
            for task, job in running:
                if not job.done():
                    still.append((task, job))
                    continue
                try:
                    result, error = job.result(), None
                except Exception as exc:  # noqa: BLE001 - a failed task must not stop the others
                    result, error = None, exc
                finished.append((task, result, error))
                if on_end:
                    on_end(task, job, result, error)
            if len(still) == len(running) and (not pending or len(running) >= limit):
                time.sleep(poll_s)
            running = still
    except KeyboardInterrupt:
        for _, job in running:
            job.cancel(check=False)
        raise
    return finished


def _invocation_folder(out: Path, executor: str) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return out.resolve() / "jobs" / executor / f"{stamp}-{os.getpid()}"


def _describe(r) -> str:
    c = r.config
    return f"{r.label} {c.dataset} ipc={c.ipc} seed={c.seed} scale={c.scale} ({r.run_id})"


def launch(resolved: Sequence, out: Path, data_root: Path | None, device: str, force: bool, executor: str,
           profile: str | None = None, max_parallel: int | None = None) -> tuple[int, list[dict]]:
    """Submit the runs that are missing or failed (or all but queued/running ones with ``force``).
    Returns (exit status, records of the runs finished here). ``slurm`` returns once submitted."""
    if executor not in EXECUTORS:
        raise BenchError(f"unknown executor {executor!r}; known: {', '.join(EXECUTORS)}")
    if executor == "slurm":
        require_slurm()
    prof = load_profile(profile) if profile else ClusterProfile()
    if max_parallel is not None and max_parallel < 1:
        raise BenchError(f"--max-parallel must be at least 1, got {max_parallel}")
    out = Path(out).resolve()
    data_root = Path(data_root).resolve() if data_root is not None else None

    unique = list({r.run_id: r for r in resolved}.values())
    statuses = {s.run_id: s for s in cell_statuses(unique, out)}
    todo, skipped = [], {"done": 0, "queued": 0, "running": 0, "unknown": 0}
    for r in unique:
        state = statuses[r.run_id].state
        if state in ("missing", "stale", "failed") or (state == "done" and force):
            todo.append(r)
        else:
            skipped[state] += 1
    skip_text = ", ".join(f"{n} {s}" for s, n in skipped.items() if n)
    if skipped["unknown"]:
        print(f"warning: {skipped['unknown']} cell(s) have a SLURM job whose state squeue could not tell; "
              f"not resubmitted", file=sys.stderr)
    if not todo:
        print(f"nothing to run: {skip_text or 'no cells'}", flush=True)
        return 0, [RunStore(out).read_record(r.run_id) for r in unique if RunStore(out).has_record(r.run_id)]
    print(f"{len(todo)} cell(s) to run" + (f"; skipped: {skip_text}" if skip_text else ""), flush=True)

    if executor == "debug":
        return _launch_debug(todo, out, data_root, device, force)
    if executor == "local":
        return _launch_local(todo, out, data_root, device, force, prof, max_parallel)
    return _launch_slurm(todo, out, data_root, device, force, prof, max_parallel), []


def _launch_debug(todo, out, data_root, device, force) -> tuple[int, list[dict]]:
    ex = submitit.DebugExecutor(_invocation_folder(out, "debug"))
    records = []
    for i, r in enumerate(todo, 1):
        print(f"[{i}/{len(todo)}] {_describe(r)}", flush=True)
        job = ex.submit(RunTask(r.config, str(out), data_root, device, force))
        job.submission().result()  # in this process; errors propagate as they would in-process
        records.append(RunStore(out).read_record(r.run_id))
    return 0, records


def _launch_local(todo, out, data_root, device, force, prof: ClusterProfile, max_parallel) -> tuple[int, list[dict]]:
    limit = max_parallel or max(1, (os.cpu_count() or 1) // max(1, prof.cpus_per_task))
    threads = max(1, (os.cpu_count() or 1) // limit)
    folder = _invocation_folder(out, "local")
    ex = submitit.LocalExecutor(folder, max_num_timeout=prof.max_requeues)
    ex.update_parameters(timeout_min=prof.time_min if prof.source else 7 * 24 * 60, signal_delay_s=prof.signal_delay_s,
                         **({"setup": list(prof.setup)} if prof.setup else {}))
    index, store = JobIndex(out), RunStore(out)
    for r in todo:
        index.write(r.run_id, {"executor": "local", "job_id": None, "label": r.label, "launcher_pid": os.getpid(),
                               "submitted_at": _now()})
    pairs = [(r, RunTask(r.config, str(out), data_root, device, force, threads)) for r in todo]
    by_task = {id(t): r for r, t in pairs}
    print(f"running {len(pairs)} cell(s) in subprocesses, at most {limit} at once ({threads} torch thread(s) each); "
          f"logs in {folder}", flush=True)
    failed: list[str] = []
    done_count = [0]

    def on_start(task, job):
        r = by_task[id(task)]
        index.write(r.run_id, _job_entry("local", job, r.label, {"launcher_pid": os.getpid()}))

    def on_end(task, job, result, error):
        r = by_task[id(task)]
        done_count[0] += 1
        if error is None:
            print(f"[{done_count[0]}/{len(pairs)}] done   {_describe(r)}: {result['accuracy']:.2f} %", flush=True)
        else:
            last = [line for line in str(error).splitlines() if line.strip()][-1:] or ["(no message)"]
            print(f"[{done_count[0]}/{len(pairs)}] FAILED {_describe(r)}: {last[0]} (log: {job.paths.stderr})", flush=True)
            failed.append(r.run_id)

    run_limited(ex, [t for _, t in pairs], limit, on_start, on_end)
    records = [store.read_record(r.run_id) for r, _ in pairs if store.has_record(r.run_id)]
    if failed:
        print(f"{len(failed)} cell(s) failed; `bench status` shows their logs; `bench run` again reruns them",
              file=sys.stderr)
        return 1, records
    return 0, records


def _launch_slurm(todo, out, data_root, device, force, prof: ClusterProfile, max_parallel) -> int:
    folder = _invocation_folder(out, "slurm")
    params = prof.submitit_parameters(max_parallel)
    max_size = max_array_size()
    index = JobIndex(out)
    try:
        ex = submitit.SlurmExecutor(folder, max_num_timeout=prof.max_requeues)
        ex.update_parameters(**params)
    except (ValueError, RuntimeError) as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise BenchError(f"profile {prof.source or prof.name}: {str(exc).splitlines()[0]}") from None
    chunks = split_array(todo, max_size)
    for k, chunk in enumerate(chunks, 1):
        try:
            with ex.batch():
                jobs = [ex.submit(RunTask(r.config, str(out), data_root, device, force)) for r in chunk]
        except (subprocess.CalledProcessError, submitit.core.utils.FailedSubmissionError, OSError) as exc:
            message = getattr(exc, "stderr", None) or getattr(exc, "output", None) or str(exc)
            if isinstance(message, bytes):
                message = message.decode(errors="replace")
            first = next((line.strip() for line in str(message).splitlines() if line.strip()), str(exc))
            if k == 1:
                shutil.rmtree(folder, ignore_errors=True)
            raise BenchError(f"sbatch failed: {first}") from None
        for r, job in zip(chunk, jobs):
            index.write(r.run_id, _job_entry("slurm", job, r.label, {"profile": prof.source or prof.name}))
        array_id = str(jobs[0].job_id).split("_", 1)[0]
        what = f"job array {array_id} ({len(chunk)} tasks, at most {params['array_parallelism']} at once)" \
            if len(chunk) > 1 else f"job {jobs[0].job_id}"
        split = f" [part {k}/{len(chunks)}: MaxArraySize {max_size}]" if len(chunks) > 1 else ""
        print(f"submitted {len(chunk)} cell(s) as {what}{split}", flush=True)
    print(f"profile: {prof.source or 'built-in defaults'}; logs in {folder}; `bench status` with the same "
          f"selection shows progress", flush=True)
    return 0
