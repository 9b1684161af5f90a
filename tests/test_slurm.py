"""Executors through submitit (issue 6).

Tests marked ``slurm`` run against a real single-node SLURM (slurm/start-cluster.sh; .ci/run starts
one); without one they skip with the reason, unless BENCH_REQUIRE_SLURM=1 (set by .ci/run), where a
missing cluster is a failure. The others need no cluster: the local executor's concurrency limit,
cluster profiles, array splitting, dead local jobs, and `--executor slurm` without SLURM on PATH.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import submitit
import torch

from bench.cli.common import configs_from_args
from bench.cli.main import build_parser
from bench.core.errors import BenchError
from bench.grid.jobs import JobIndex, cell_statuses
from bench.grid.launch import max_array_size, run_limited, split_array
from bench.grid.profiles import ClusterProfile, load_profile
from bench.run.config import resolve
from tests.conftest import REPO, run_bench

SMOKE = ["--dataset", "digits", "--scale", "smoke"]
PROFILE = ["--executor", "slurm", "--profile", "local"]


# ------------------------------------------------------------------------------------ helpers
def resolved_runs(*selection: str) -> list:
    """The runs a `bench run` selection names, resolved exactly as the CLI does."""
    args = build_parser().parse_args(["status", *selection])
    return list({r.run_id: r for r in (resolve(c) for c in configs_from_args(args))}.values())


def wait_states(runs, out: Path, until: set[str], timeout: float, every: float = 1.0) -> dict:
    """Poll the statuses until every run is in ``until``; {run_id: CellStatus}."""
    deadline = time.monotonic() + timeout
    while True:
        statuses = {s.run_id: s for s in cell_statuses(runs, out)}
        if all(s.state in until for s in statuses.values()):
            return statuses
        if time.monotonic() > deadline:
            raise AssertionError(f"after {timeout:.0f} s: {[(s.run_id, s.state, s.detail) for s in statuses.values()]}")
        time.sleep(every)


def preempt_in_order(job_id: str, log: Path, timeout: float = 30.0) -> None:
    """submitit's preemption (its `SlurmJob._interrupt`): SIGTERM, which the task bypasses, then the
    USR2 that checkpoints and runs `scontrol requeue`. `_interrupt` sends the two back to back and SLURM
    may deliver them out of order; a SIGTERM that lands while the USR2 handler's `scontrol requeue`
    child runs kills that child, and the job ends FAILED, not requeued (seen once in CI, stop 34).
    Waiting for the task to log the bypassed SIGTERM before sending USR2 keeps submitit's order."""
    subprocess.check_call(["scancel", job_id, "--signal", "SIGTERM"])
    deadline = time.monotonic() + timeout
    while "Bypassing signal SIGTERM" not in (log.read_text() if log.exists() else ""):
        assert time.monotonic() < deadline, f"the task did not log the SIGTERM within {timeout:.0f} s"
        time.sleep(0.1)
    subprocess.check_call(["scancel", job_id, "--signal", submitit.slurm.slurm.SlurmJobEnvironment.USR_SIG])


def load_synset(out: Path, run_id: str) -> dict:
    return torch.load(out / "runs" / run_id / "synset.pt")


def assert_same_records(a: Path, b: Path, run_ids) -> None:
    for run_id in run_ids:
        ra = json.loads((a / "runs" / run_id / "record.json").read_text())
        rb = json.loads((b / "runs" / run_id / "record.json").read_text())
        assert ra["config"] == rb["config"]
        assert ra["accuracy"]["per_model"].keys() == rb["accuracy"]["per_model"].keys()
        for model in ra["accuracy"]["per_model"]:
            assert ra["accuracy"]["per_model"][model]["last"] == rb["accuracy"]["per_model"][model]["last"], run_id
        sa, sb = load_synset(a, run_id), load_synset(b, run_id)
        assert sa.keys() == sb.keys()
        for key in sa:
            if torch.is_tensor(sa[key]):
                assert torch.equal(sa[key], sb[key]), (run_id, key)
            else:
                assert sa[key] == sb[key], (run_id, key)


def in_process(selection: list[str], out: Path, threads: int = 1) -> None:
    """The in-process executor with the torch thread count the profile's jobs get (accuracies on
    CPU depend on it; the runner takes it from SLURM_CPUS_PER_TASK)."""
    proc = run_bench("run", *selection, "--out", str(out), "--device", "cpu",
                     env={"SLURM_CPUS_PER_TASK": str(threads)})
    assert proc.returncode == 0, proc.stderr[-3000:]


def job_pids(job_id: str) -> list[int]:
    """PIDs of the submitit task (python) of a running SLURM job, from `scontrol listpids`."""
    raw = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%A"], capture_output=True, text=True).stdout.split()
    if not raw:
        return []
    out = subprocess.run(["scontrol", "listpids", raw[0]], capture_output=True, text=True).stdout
    pids = []
    for line in out.splitlines()[1:]:
        pid = line.split()[0]
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "submitit.core._submit" in cmd and not cmd.startswith("srun"):
            pids.append(int(pid))
    return pids


def _cancel_jobs(out: Path) -> None:
    ids = set()
    for path in (out / "jobs").glob("*.json"):
        entry = json.loads(path.read_text())
        if entry.get("executor") == "slurm" and entry.get("job_id"):
            ids.add(entry["job_id"])
    if ids and shutil.which("scancel"):
        subprocess.run(["scancel", *sorted(ids)], capture_output=True)


def _slurm_problem() -> str | None:
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return "no SLURM here: sinfo/sbatch not on PATH (start one with: sudo slurm/start-cluster.sh)"
    try:
        proc = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=15)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"sinfo does not respond ({exc})"
    if proc.returncode != 0:
        return f"sinfo fails: {proc.stderr.strip()[:200]} (start a cluster with: sudo slurm/start-cluster.sh)"
    if not any(s.strip("*~#") in ("idle", "mixed", "allocated", "completing") for s in proc.stdout.split()):
        return f"no usable SLURM node (sinfo: {proc.stdout.split()})"
    return None


@pytest.fixture(scope="session")
def slurm_cluster():
    problem = _slurm_problem()
    if problem:
        if os.environ.get("BENCH_REQUIRE_SLURM") == "1":
            pytest.fail(f"BENCH_REQUIRE_SLURM=1 but {problem}")
        pytest.skip(problem)
    return True


@pytest.fixture
def slurm_out(tmp_path, slurm_cluster):
    out = tmp_path / "out"
    yield out
    _cancel_jobs(out)  # nothing of a failed test keeps running on the cluster


# ------------------------------------------------------------------------------------ SLURM
@pytest.mark.slow
@pytest.mark.slurm
def test_grid_as_one_job_array_equals_in_process(slurm_out, tmp_path):
    """6 cells (random and herding x IPC 1, 5, 10 on digits, smoke) submitted as ONE job array
    complete, and their records (accuracies, synthetic sets) equal the in-process executor's."""
    grid = ["--method", "random,herding", "--ipc", "1,5,10", *SMOKE]
    runs = resolved_runs(*grid)
    assert len(runs) == 6
    baseline = tmp_path / "in-process"
    in_process(grid, baseline)  # first: it also fills the cache of Herding's feature net

    proc = run_bench("run", *grid, "--out", str(slurm_out), *PROFILE)
    assert proc.returncode == 0, proc.stderr
    assert "submitted 6 cell(s) as job array" in proc.stdout, proc.stdout
    entries = [JobIndex(slurm_out).read(r.run_id) for r in runs]
    arrays = {e["job_id"].split("_")[0] for e in entries}
    assert len(arrays) == 1 and sorted(int(e["job_id"].split("_")[1]) for e in entries) == list(range(6))
    script = Path(entries[0]["folder"]) / f"{arrays.pop()}_submission.sh"
    assert "#SBATCH --array=0-5%2" in script.read_text()  # slurm/profiles/local.toml: array_parallelism 2

    statuses = wait_states(runs, slurm_out, {"done", "failed"}, timeout=300)
    assert all(s.state == "done" for s in statuses.values()), [(s.detail, s.log_tail) for s in statuses.values()]
    assert_same_records(slurm_out, baseline, [r.run_id for r in runs])
    for r in runs:
        record = json.loads((slurm_out / "runs" / r.run_id / "record.json").read_text())
        assert record["device"]["torch_threads"] == 1  # SLURM_CPUS_PER_TASK of the profile

    again = run_bench("run", *grid, "--out", str(slurm_out), *PROFILE)  # finished cells are never submitted
    assert again.returncode == 0 and "nothing to run: 6 done" in again.stdout, again.stdout + again.stderr


@pytest.mark.slow
@pytest.mark.slurm
def test_killed_task_is_reported_failed_and_only_it_reruns(slurm_out):
    """SIGKILL one task mid-run (as the OOM killer would): `bench status` says failed within a
    minute, with the end of its log; `bench run` again resubmits that cell and no other."""
    grid = ["--method", "random", "--ipc", "1,2,120", *SMOKE, "--eval-set", "epochs=300"]
    runs = resolved_runs(*grid)
    (run,) = [r for r in runs if r.config.ipc == 120]  # 1200 images x 300 epochs: the long one
    others = [r for r in runs if r is not run]
    proc = run_bench("run", *grid, "--out", str(slurm_out), *PROFILE)
    assert proc.returncode == 0, proc.stderr

    entry = JobIndex(slurm_out).read(run.run_id)
    deadline = time.monotonic() + 180
    while not (Path(entry["stdout"]).exists() and "Starting with" in Path(entry["stdout"]).read_text()
               and job_pids(entry["job_id"])):
        assert time.monotonic() < deadline, "the task did not start within 3 minutes"
        time.sleep(0.5)
    time.sleep(3)  # well into the run: loading data, evaluating
    pids = job_pids(entry["job_id"])
    assert pids, "the task ended before it could be killed"
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    killed_at = time.monotonic()

    while True:  # the CLI, as a user would ask
        status = run_bench("status", *grid, "--out", str(slurm_out))
        assert status.returncode == 0, status.stderr
        line = next(line for line in status.stdout.splitlines() if line.endswith(run.run_id))
        if " failed " in line:
            break
        assert time.monotonic() - killed_at < 60, status.stdout
        time.sleep(1)
    print(f"bench status reported the killed task failed {time.monotonic() - killed_at:.1f} s after the kill:")
    print(status.stdout)
    assert f"--- failed: random digits ipc=120 seed=0 ({run.run_id}), job {entry['job_id']}" in status.stdout
    assert "    | " in status.stdout  # the last lines of its log
    assert not (slurm_out / "runs" / run.run_id / "record.json").exists()

    statuses = wait_states(others, slurm_out, {"done", "failed"}, timeout=240)
    assert all(s.state == "done" for s in statuses.values())
    rerun = run_bench("run", *grid, "--out", str(slurm_out), *PROFILE)
    assert rerun.returncode == 0, rerun.stderr
    assert "1 cell(s) to run; skipped: 2 done" in rerun.stdout and "submitted 1 cell(s)" in rerun.stdout, rerun.stdout
    new = JobIndex(slurm_out).read(run.run_id)
    assert new["job_id"] != entry["job_id"] and new["history"][-1]["job_id"] == entry["job_id"]
    for r in others:
        assert JobIndex(slurm_out).read(r.run_id)["history"] == []  # never resubmitted
    # the cell is back on the cluster; seeing it start is enough (the fixture cancels it afterwards)
    wait_states([run], slurm_out, {"running", "done"}, timeout=120)


def _checkpointing_method() -> str | None:
    """A synthesis method that checkpoints and resumes (issue 3): idc, dc, dm or dsa, whichever exists."""
    from methods import METHODS

    for name in ("idc", "dc", "dm", "dsa"):
        if name in METHODS.names():
            return name
    return None


@pytest.mark.slow
@pytest.mark.slurm
def test_preempted_distillation_is_requeued_and_resumes_to_the_same_synset(slurm_out, tmp_path):
    method = _checkpointing_method()
    if method is None:
        pytest.skip("no checkpointing synthesis method (idc, dc, dm, dsa) is registered yet")
    budget = {"idc": ["--set", "iterations=6", "--set", "inner_loop=1"],
              "dc": ["--set", "iterations=6"], "dsa": ["--set", "iterations=6"],
              "dm": ["--set", "iterations=40"]}[method]
    grid = ["--method", method, "--ipc", "1", *SMOKE, *budget, "--set", "checkpoint_every=1",
            "--set", "curve_points=0", "--eval-set", "epochs=5"]
    (run,) = resolved_runs(*grid)
    # a profile written by a user, outside the repository, asking for a GPU (the test node declares one)
    profile = tmp_path / "gpu-test.toml"
    profile.write_text('partition = "debug"\ngpus_per_task = 1\ncpus_per_task = 1\nmem_gb = 2\n'
                       'time_min = 30\nsignal_delay_s = 30\n')
    proc = run_bench("run", *grid, "--out", str(slurm_out), "--executor", "slurm", "--profile", str(profile))
    assert proc.returncode == 0, proc.stderr
    entry = JobIndex(slurm_out).read(run.run_id)
    assert "#SBATCH --gpus-per-task=1" in (Path(entry["folder"]) / f"{entry['job_id']}_submission.sh").read_text()

    ckpt = slurm_out / "runs" / run.run_id / "checkpoint.pt"
    deadline = time.monotonic() + 180
    while True:  # wait for a checkpoint past iteration 2, then preempt
        assert time.monotonic() < deadline, "no checkpoint past iteration 2 within 3 minutes"
        if ckpt.exists():
            try:
                if torch.load(ckpt, weights_only=False)["iteration"] >= 2:
                    break
            except Exception:  # noqa: BLE001 - replaced while we read it
                pass
        time.sleep(0.5)
    assert not (slurm_out / "runs" / run.run_id / "record.json").exists()
    preempt_in_order(entry["job_id"], Path(entry["stdout"]))
    preempted_at = time.monotonic()
    seen = set()
    while True:
        (s,) = cell_statuses([run], slurm_out)
        seen.add(s.state)
        if s.state in ("done", "failed"):
            break
        assert time.monotonic() - preempted_at < 240, (seen, s)
        time.sleep(0.5)
    print(f"preempted task finished {time.monotonic() - preempted_at:.1f} s after the interrupt; states seen: {seen}")
    assert s.state == "done", (s.detail, s.log_tail)
    log = Path(entry["stdout"]).read_text()
    assert "Requeued job" in log and "this job is" in log, log[-2000:]  # submitit caught the signal, requeued
    assert f"resuming run {run.run_id} at iteration " in log, log[-2000:]
    resumed_at = int(log.split(f"resuming run {run.run_id} at iteration ")[1].split()[0])
    assert resumed_at >= 2
    record = json.loads((slurm_out / "runs" / run.run_id / "record.json").read_text())
    assert record["metrics"]["resumed_at"] == [resumed_at]

    baseline = tmp_path / "uninterrupted"
    in_process(grid, baseline)
    assert_same_records(slurm_out, baseline, [run.run_id])


# ------------------------------------------------------------------------------------ no cluster needed
def test_executor_slurm_without_slurm_fails_in_one_line_and_writes_nothing(tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "bench.cli", "run", "--method", "random", "--ipc", "1", *SMOKE,
                           "--out", str(out), "--executor", "slurm", "--profile", "local"],
                          cwd=REPO, env={**os.environ, "PATH": str(empty)}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "sbatch was not found" in lines[0], proc.stderr
    assert not out.exists()


def test_local_executor_never_runs_more_than_max_parallel(tmp_path):
    """submitit's own local executor starts everything at once; run_limited keeps at most N alive."""
    marks = tmp_path / "marks"
    marks.mkdir()
    tasks = [submitit.helpers.CommandFunction(
        ["sh", "-c", f"date +%s.%N > {marks}/{k}.start; sleep 1.5; date +%s.%N > {marks}/{k}.end"]) for k in range(5)]
    ex = submitit.LocalExecutor(tmp_path / "jobs")
    ex.update_parameters(timeout_min=5)
    started = []
    finished = run_limited(ex, tasks, 2, on_start=lambda task, job: started.append(job.job_id), poll_s=0.1)
    assert len(finished) == 5 and all(error is None for _, _, error in finished)
    spans = [(float((marks / f"{k}.start").read_text()), float((marks / f"{k}.end").read_text())) for k in range(5)]
    most = max(sum(a <= t < b for a, b in spans) for t, _ in spans)
    assert most == 2  # the limit was reached, never passed


def test_local_executor_runs_bench_cells_and_status_sees_them(tmp_path):
    out = tmp_path / "out"
    grid = ["--method", "random", "--ipc", "1,2", *SMOKE]
    proc = run_bench("run", *grid, "--out", str(out), "--executor", "local", "--max-parallel", "2")
    assert proc.returncode == 0, proc.stderr
    assert "at most 2 at once" in proc.stdout
    runs = resolved_runs(*grid)
    assert all((out / "runs" / r.run_id / "record.json").exists() for r in runs)
    wider = resolved_runs("--method", "random", "--ipc", "1,2,3", *SMOKE)
    assert [s.state for s in cell_statuses(wider, out)] == ["done", "done", "missing"]
    assert all(JobIndex(out).read(r.run_id)["executor"] == "local" for r in runs)


def test_dead_local_job_is_failed_with_its_log(tmp_path):
    (run,) = resolved_runs("--method", "random", "--ipc", "1", *SMOKE)
    dead = subprocess.Popen(["true"])
    dead.wait()
    log = tmp_path / "task.err"
    log.write_text("Traceback (most recent call last):\nRuntimeError: out of memory\n")
    JobIndex(tmp_path).write(run.run_id, {"executor": "local", "job_id": str(dead.pid), "stderr": str(log),
                                          "stdout": str(tmp_path / "none"), "result": str(tmp_path / "none")})
    (s,) = cell_statuses([run], tmp_path)
    assert s.state == "failed" and s.detail.startswith("dead") and s.log_tail[-1] == "RuntimeError: out of memory"
    JobIndex(tmp_path).write(run.run_id, {"executor": "local", "job_id": None, "launcher_pid": dead.pid})
    assert cell_statuses([run], tmp_path)[0].state == "missing"  # its launcher ended before starting it


def test_profiles_parse_into_frozen_dataclasses(tmp_path, monkeypatch):
    for name in ("local", "a100"):
        assert load_profile(name).name == name
    a100 = load_profile("a100")
    params = a100.submitit_parameters()
    assert params["gpus_per_task"] == 1 and params["ntasks_per_node"] == 1 and params["mem"] == "64GB"
    assert params["additional_parameters"] == {"constraint": "a100"} and params["setup"][0].startswith("module")
    assert a100.submitit_parameters(array_parallelism=3)["array_parallelism"] == 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        a100.partition = "other"

    mine = tmp_path / "profiles"
    mine.mkdir()
    (mine / "small.toml").write_text('partition = "cpu"\nmem_gb = 1.5\nsetup = ["echo hi"]\n[sbatch]\nqos = "low"\n'
                                     'exclusive = true\n')
    monkeypatch.setenv("BENCH_PROFILES", str(mine))
    small = load_profile("small")
    assert small == ClusterProfile(name="small", partition="cpu", mem_gb=1.5, setup=("echo hi",),
                                   sbatch=(("exclusive", True), ("qos", "low")), source=str(mine / "small.toml"))
    assert small.submitit_parameters()["mem"] == "1536MB"
    assert load_profile(str(mine / "small.toml")) == small

    (mine / "typo.toml").write_text('partition = "cpu"\ngpus_per_tsak = 1\n')
    with pytest.raises(BenchError) as err:
        load_profile("typo")
    message = str(err.value)
    assert "\n" not in message and str(mine / "typo.toml") in message and "'gpus_per_tsak'" in message
    (mine / "badtype.toml").write_text('cpus_per_task = "four"\n')
    with pytest.raises(BenchError, match="cpus_per_task.*integer"):
        load_profile("badtype")
    (mine / "broken.toml").write_text('partition = \n')
    with pytest.raises(BenchError, match="not valid TOML"):
        load_profile("broken")
    with pytest.raises(BenchError, match="unknown profile 'nope'"):
        load_profile("nope")


def test_profile_errors_are_one_line_on_the_cli(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("colour = 'blue'\n")
    proc = run_bench("run", "--method", "random", "--ipc", "1", *SMOKE, "--out", str(tmp_path / "out"),
                     "--executor", "local", "--profile", str(bad))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: profile {bad}: unknown key 'colour'; known keys: "
                                                "array_parallelism, cpus_per_task, gpus_per_task, max_requeues, "
                                                "mem_gb, partition, sbatch, setup, signal_delay_s, time_min"]


def test_arrays_are_split_at_max_array_size():
    assert [len(c) for c in split_array(list(range(2500)), 1001)] == [1001, 1001, 498]
    assert split_array(list(range(3)), 1001) == [[0, 1, 2]]
    assert [len(c) for c in split_array(list(range(7)), 3)] == [3, 3, 1]
    assert max_array_size(default=77) >= 1  # scontrol's value, or the default without SLURM
