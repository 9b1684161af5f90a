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

import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import submitit

from bench.core.errors import BenchError
from bench.core.atomic import atomic_write_text
from bench.run.staleness import StaleIndex
from bench.run.store import RunStore
from bench.run.runner import run_config

EXECUTORS = ("debug", "local", "slurm")
DEFAULT_MAX_ARRAY_SIZE = 1001  # SLURM's default MaxArraySize
REPO_PROFILES = Path(__file__).resolve().parents[2] / "slurm" / "profiles"
USER_PROFILES = Path("~/.config/dream-bench/profiles").expanduser()


# ------------------------------------------------------------------------------------ profiles
@dataclass(frozen=True)
class ClusterProfile:
    """What each task asks SLURM for. One TOML file per cluster; every key is optional."""

    name: str = "default"
    partition: str | None = None  # None: the cluster's default partition
    gpus_per_task: int = 0
    cpus_per_task: int = 1  # torch uses this many threads in the job (SLURM_CPUS_PER_TASK)
    mem_gb: float | None = None  # None: the cluster's default (DefMemPerCPU...)
    time_min: int = 60  # wall-time limit per task; on timeout the task is requeued and resumes
    array_parallelism: int = 256  # tasks of one array running at once (sbatch --array=...%P)
    setup: tuple[str, ...] = ()  # shell lines run before the task (module load, conda activate...)
    sbatch: tuple[tuple[str, str], ...] = ()  # extra sbatch options, e.g. account, qos, constraint
    signal_delay_s: int = 120  # seconds before the time limit at which the task is signalled
    max_requeues: int = 3  # requeues after timeouts (submitit's max_num_timeout)
    source: str = ""  # the file it was read from

    def submitit_parameters(self, array_parallelism: int | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {
            "job_name": "bench",
            "time": int(self.time_min),
            "cpus_per_task": int(self.cpus_per_task),
            "array_parallelism": int(array_parallelism or self.array_parallelism),
            "signal_delay_s": int(self.signal_delay_s),
        }
        if self.partition:
            params["partition"] = self.partition
        if self.gpus_per_task:
            params["gpus_per_task"] = int(self.gpus_per_task)
            params["ntasks_per_node"] = 1  # --gpus-per-task needs an explicit task count
        if self.mem_gb:
            params["mem"] = f"{int(self.mem_gb)}GB" if float(self.mem_gb).is_integer() else f"{int(self.mem_gb * 1024)}MB"
        if self.setup:
            params["setup"] = list(self.setup)
        if self.sbatch:
            params["additional_parameters"] = dict(self.sbatch)
        return params


_PROFILE_TYPES: dict[str, tuple[type, ...]] = {
    "partition": (str,), "gpus_per_task": (int,), "cpus_per_task": (int,), "mem_gb": (int, float),
    "time_min": (int,), "array_parallelism": (int,), "setup": (list,), "sbatch": (dict,),
    "signal_delay_s": (int,), "max_requeues": (int,),
}


_POSITIVE = ("cpus_per_task", "time_min", "array_parallelism")


def profile_dirs() -> list[Path]:
    """Where ``--profile NAME`` looks, first match wins: $BENCH_PROFILES (folders separated by
    ``os.pathsep``), ~/.config/dream-bench/profiles, then the repository's slurm/profiles."""
    dirs = [Path(p).expanduser() for p in os.environ.get("BENCH_PROFILES", "").split(os.pathsep) if p]
    return [*dirs, USER_PROFILES, REPO_PROFILES]


def find_profile(name: str) -> Path:
    path = Path(name).expanduser()
    if path.suffix == ".toml" or os.sep in name:
        if not path.is_file():
            raise BenchError(f"profile file {path} not found")
        return path
    for folder in profile_dirs():
        candidate = folder / f"{name}.toml"
        if candidate.is_file():
            return candidate
    known = sorted({p.stem for d in profile_dirs() if d.is_dir() for p in d.glob("*.toml")})
    raise BenchError(f"unknown profile {name!r}; known: {', '.join(known) or 'none'} "
                     f"(looked in {', '.join(str(d) for d in profile_dirs())})")


def load_profile(name_or_path: str | Path) -> ClusterProfile:
    """A profile from its name (see :func:`profile_dirs`) or a path to a TOML file."""
    path = find_profile(str(name_or_path))
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise BenchError(f"profile {path}: not valid TOML ({exc})") from None
    except OSError as exc:
        raise BenchError(f"profile {path}: cannot be read ({exc.strerror or exc})") from None
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key not in _PROFILE_TYPES:
            raise BenchError(f"profile {path}: unknown key {key!r}; known keys: {', '.join(sorted(_PROFILE_TYPES))}")
        types = _PROFILE_TYPES[key]
        if isinstance(value, bool) or not isinstance(value, types):
            want = {"str": "string", "int": "integer", "float": "number", "list": "list of strings",
                    "dict": "table"}[types[-1].__name__]
            raise BenchError(f"profile {path}: key {key!r} must be a {want}, got {value!r}")
        if key == "setup":
            if not all(isinstance(line, str) for line in value):
                raise BenchError(f"profile {path}: key 'setup' must be a list of strings")
            value = tuple(value)
        elif key == "sbatch":
            for k, v in value.items():
                if isinstance(v, (dict, list)):
                    raise BenchError(f"profile {path}: sbatch option {k!r} must be a string, number or true")
            value = tuple(sorted((str(k), v if v is True else str(v)) for k, v in value.items()))
        elif (key == "gpus_per_task" and value < 0) or (key in _POSITIVE and value < 1) or (key == "mem_gb" and value <= 0):
            raise BenchError(f"profile {path}: key {key!r} is out of range ({value})")
        values[key] = value
    return ClusterProfile(name=path.stem, source=str(path), **values)


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
            import torch

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
        from submitit.core.utils import pickle_load

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
        if entry is None:
            old = stale.stale_for(r)
            statuses.append(CellStatus(run_id, "stale", None, f"{len(old)} record(s) of an older config: "
                                       f"{', '.join(rec['run_id'] for rec in old)}; rerun to replace")
                            if old else CellStatus(run_id, "missing"))
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
