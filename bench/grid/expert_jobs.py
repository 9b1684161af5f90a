"""Expert trajectories as jobs: one submitit task per missing expert, so ``bench experts
--executor slurm`` is one job array (one expert a task) and ``--executor local`` trains several at
once in subprocesses. Each task writes its expert atomically (bench/run/experts.py); a task whose
expert already exists returns at once, so a requeued or repeated array redoes nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Sequence

import submitit
import torch

from bench.core.errors import BenchError
from bench.data.datasets import DataOptions, load_dataset
from bench.grid.launch import _invocation_folder, max_array_size, require_slurm, run_limited, split_array
from bench.grid.profiles import ClusterProfile, load_profile
from bench.run.experts import ExpertSpec, ExpertStore, train_expert
from bench.run.runner import pick_device


class ExpertTask(submitit.helpers.Checkpointable):
    """Train expert ``index`` of ``spec`` unless it is stored already. Requeued on preemption."""

    def __init__(self, spec: ExpertSpec, index: int, data: DataOptions, out: str, data_root: str | None,
                 device: str = "auto", threads: int | None = None):
        self.spec, self.index, self.data, self.out = spec, index, data, str(out)
        self.data_root, self.device, self.threads = data_root, device, threads

    def __call__(self) -> dict:
        if self.threads:
            torch.set_num_threads(self.threads)
        store = ExpertStore(self.out, self.spec)
        if store.path(self.index).exists():
            return {"index": self.index, "skipped": True}
        device = pick_device(self.device)
        dataset = load_dataset(self.spec.dataset, None if self.data_root is None else Path(self.data_root),
                               self.data).to(device)
        return train_expert(store, self.index, dataset, device)

    def __repr__(self) -> str:
        return f"ExpertTask({self.spec.key} #{self.index})"


def launch_experts(tasks: Sequence[ExpertTask], out: Path, executor: str, profile: str | None,
                   max_parallel: int | None) -> int:
    """Run (debug, local) or submit (slurm) the tasks; returns the exit status."""
    prof = load_profile(profile) if profile else ClusterProfile()
    if executor == "debug":
        for task in tasks:
            info = task()
            print(f"expert {task.index} of {task.spec.key}: test {info.get('test_accuracy', float('nan')):.2f} %",
                  flush=True)
        return 0
    if executor == "local":
        limit = max_parallel or max(1, (os.cpu_count() or 1) // max(1, prof.cpus_per_task))
        for task in tasks:
            task.threads = max(1, (os.cpu_count() or 1) // limit)
        folder = _invocation_folder(out, "local")
        ex = submitit.LocalExecutor(folder, max_num_timeout=prof.max_requeues)
        ex.update_parameters(timeout_min=prof.time_min if prof.source else 7 * 24 * 60)
        print(f"training {len(tasks)} expert(s) in subprocesses, at most {limit} at once; logs in {folder}", flush=True)
        failed = 0
        for task, result, error in run_limited(ex, list(tasks), limit):
            if error is None:
                print(f"expert {task.index} of {task.spec.key}: test {result.get('test_accuracy', float('nan')):.2f} %",
                      flush=True)
            else:
                failed += 1
                print(f"FAILED expert {task.index} of {task.spec.key}: {str(error).splitlines()[-1:]}", flush=True)
        return 1 if failed else 0
    require_slurm()
    folder = _invocation_folder(out, "slurm")
    try:
        ex = submitit.SlurmExecutor(folder, max_num_timeout=prof.max_requeues)
        ex.update_parameters(**prof.submitit_parameters(max_parallel))
    except (ValueError, RuntimeError) as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise BenchError(f"profile {prof.source or prof.name}: {str(exc).splitlines()[0]}") from None
    for chunk in split_array(list(tasks), max_array_size()):
        try:
            with ex.batch():
                jobs = [ex.submit(task) for task in chunk]
        except (subprocess.CalledProcessError, submitit.core.utils.FailedSubmissionError, OSError) as exc:
            raise BenchError(f"sbatch failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
        array = str(jobs[0].job_id).split("_", 1)[0]
        print(f"submitted {len(chunk)} expert(s) as job array {array}; logs in {folder}", flush=True)
    return 0
