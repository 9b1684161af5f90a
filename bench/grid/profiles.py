"""Cluster profiles: one TOML file per cluster saying what each task asks SLURM for."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.core.errors import BenchError

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
