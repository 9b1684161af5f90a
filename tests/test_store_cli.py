"""The results store and `bench run`: records are complete or absent, reruns skip finished runs,
the same seed repeats exactly on CPU, and bad input is one line, exit 2, nothing written."""

import json
import signal
import subprocess
import sys
import time

import pytest
import torch

from bench.cli.main import main
from bench.dream.initialisers import herding_order
from bench.run.config import RunConfig, resolve
from bench.run.runner import execute
from bench.run.store import git_state
from tests.conftest import REPO, run_bench

SMOKE = ["--dataset", "digits", "--scale", "smoke"]


def test_same_seed_twice_gives_identical_accuracies_and_synsets(tmp_path):
    cfg = resolve(RunConfig("random", "digits", 5, seed=3, scale="smoke"))
    first, ran1 = execute(cfg, tmp_path / "a", device="cpu")
    second, ran2 = execute(cfg, tmp_path / "b", device="cpu")
    assert ran1 and ran2
    assert first["accuracy"]["per_model"] == second["accuracy"]["per_model"] or (
        first["accuracy"]["per_model"]["convnet3"]["last"] == second["accuracy"]["per_model"]["convnet3"]["last"])
    a = torch.load(tmp_path / "a" / "runs" / cfg.run_id / "synset.pt")
    b = torch.load(tmp_path / "b" / "runs" / cfg.run_id / "synset.pt")
    assert torch.equal(a["images"], b["images"])
    other, _ = execute(resolve(RunConfig("random", "digits", 5, seed=4, scale="smoke")), tmp_path / "a", device="cpu")
    assert other["accuracy"]["mean"] != first["accuracy"]["mean"]


def test_record_holds_everything_needed_to_reproduce(tmp_path):
    cfg = resolve(RunConfig("herding", "digits", 2, seed=1, scale="smoke", eval_models=("convnet3", "convnet3-bn")))
    record, _ = execute(cfg, tmp_path, device="cpu")
    on_disk = json.loads((tmp_path / "runs" / cfg.run_id / "record.json").read_text())
    assert on_disk["run_id"] == cfg.run_id == resolve(RunConfig(**{**cfg.config.__dict__})).run_id
    assert on_disk["config"]["initialiser_config"]["feature_min_steps"] == 300 and on_disk["config"]["protocol"]["epochs"] == 40
    assert set(on_disk["accuracy"]["per_model"]) == {"convnet3", "convnet3-bn"}
    accs = on_disk["accuracy"]["per_model"]["convnet3"]["last"]
    assert on_disk["accuracy"]["mean"] == pytest.approx(sum(accs) / len(accs))
    assert on_disk["packages"]["torch"] == torch.__version__.split("+")[0] or on_disk["packages"]["torch"].startswith(torch.__version__.split("+")[0])
    assert len(on_disk["code_version"]["git"] or "") in (0, 40)
    assert on_disk["device"]["device"] == "cpu" and on_disk["timings"]["total_s"] > 0
    assert on_disk["metrics"]["feature_net"]["test_accuracy"] > 50
    synset = torch.load(tmp_path / "runs" / cfg.run_id / "synset.pt")
    assert synset["images"].shape == (20, 1, 8, 8) and synset["labels"].tolist() == sorted([c for c in range(10)] * 2)


def test_herding_order_is_greedy_mean_matching():
    torch.manual_seed(0)
    feats = torch.randn(30, 5)
    order = herding_order(feats, 4).tolist()
    mu, running, chosen = feats.mean(0), torch.zeros(5), []
    for k in range(1, 5):  # brute force the definition
        best = min((i for i in range(30) if i not in chosen),
                   key=lambda i: float(torch.linalg.vector_norm(k * mu - running - feats[i])))
        chosen.append(best)
        running += feats[best]
    assert order == chosen and len(set(order)) == 4


def test_rerun_skips_finished_runs_and_force_reruns(tmp_path, capsys):
    args = ["run", "--method", "random", "--ipc", "1", "--seeds", "0-1", "--out", str(tmp_path), *SMOKE]
    assert main(args) == 0
    capsys.readouterr()
    assert main(args) == 0
    assert capsys.readouterr().out.count("done already") == 2
    assert main(args + ["--force", "--seeds", "0"]) == 0
    assert capsys.readouterr().out.count("done already") == 0


def test_results_command_prints_and_exports_csv(tmp_path, capsys):
    assert main(["run", "--method", "random,herding", "--ipc", "1", "--seeds", "0-1", "--out", str(tmp_path), *SMOKE]) == 0
    capsys.readouterr()
    assert main(["results", "--out", str(tmp_path), "--csv", str(tmp_path / "s.csv")]) == 0
    out = capsys.readouterr().out
    import pandas as pd

    table = pd.read_csv(tmp_path / "s.csv")
    assert sorted(table["label"]) == ["herding", "random"] and set(table["seeds"]) == {2}
    recs = [json.loads(p.read_text()) for p in tmp_path.glob("runs/*/record.json")]
    rand = [r["accuracy"]["mean"] for r in recs if r["config"]["method"] == "random"]
    row = table[table["label"] == "random"].iloc[0]
    assert row["mean"] == pytest.approx(sum(rand) / 2)
    assert f"{row['mean']:.2f} ± {row['std']:.2f}" in out


def test_print_config_resolves_without_running(tmp_path, capsys):
    assert main(["run", "--method", "herding", "--ipc", "3", "--out", str(tmp_path / "o"), *SMOKE, "--print-config"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed[0]["initialiser_config"]["feature_epochs"] == 1 and len(printed[0]["run_id"]) == 16
    assert not (tmp_path / "o").exists()


def test_unwritable_output_folder(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["run", "--method", "random", "--ipc", "1", *SMOKE, "--out", str(blocker / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: output folder") and err.count("\n") == 1
    assert blocker.read_text() == "x"


def test_console_script_exit_code_and_single_line():
    proc = run_bench("run", "--method", "random", "--dataset", "nope", "--ipc", "1")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and "known datasets" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_sigkill_mid_run_leaves_no_partial_record_and_rerun_completes_only_missing(tmp_path):
    out = tmp_path / "store"
    args = [sys.executable, "-m", "bench.cli", "run", "--method", "random", "--ipc", "10", "--seeds", "0-3",
            "--out", str(out), *SMOKE, "--eval-set", "epochs=60"]
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 600
    while time.time() < deadline and not list(out.glob("runs/*/record.json")):
        time.sleep(0.02)
    time.sleep(0.5)  # land somewhere inside the next run
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    records = list(out.glob("runs/*/record.json"))
    assert 1 <= len(records) < 4, "the kill should land mid-grid"
    for path in records:  # every record present is complete and names its own folder
        rec = json.loads(path.read_text())
        assert rec["run_id"] == path.parent.name and "accuracy" in rec
        assert (path.parent / "synset.pt").exists()
    finished = {p.parent.name for p in records}
    rerun = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert rerun.stdout.count("done already") == len(finished)
    assert len(list(out.glob("runs/*/record.json"))) == 4
    for path in records:  # finished records were not rewritten
        assert path.parent.name in finished


def test_a_method_list_can_name_dream_variants_and_the_plan_line_estimates_cost(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", "--method", "random,dm+dream", "--ipc", "1", *SMOKE, "--dry-run", "--out", str(out)]) == 0
    listed = capsys.readouterr().out
    assert " random " in listed and " dm+dream " in listed
    run = ["run", "--method", "random", "--ipc", "1", *SMOKE, "--eval-set", "epochs=2", "--out", str(out)]
    assert main([*run, "--seeds", "0"]) == 0
    first = capsys.readouterr().out
    assert first.startswith("1 run(s) at scale smoke: 1 to run, 0 done (evaluation 2 epochs x 1 network(s))")
    assert "estimated" not in first  # nothing measured yet to estimate from
    assert main([*run, "--seeds", "0-2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "3 run(s) at scale smoke: 2 to run, 1 done (evaluation 2 epochs x 1 network(s))"
    assert lines[1].startswith("estimated ") and lines[1].endswith(f"from 2 of them measured in {out} before")


def test_code_version_names_the_modified_files(tmp_path):
    """A record's "dirty" must say what differed from HEAD: a run log appended to beside a run
    is not a code change, and a reader of the record can only tell from the paths."""
    git = lambda *a: subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *a], cwd=tmp_path,
                                    check=True, capture_output=True)
    git("init", "-q")
    (tmp_path / "code.py").write_text("x = 1\n")
    (tmp_path / "runs.jsonl").write_text("")
    git("add", "."); git("commit", "-qm", "first")
    clean = git_state(tmp_path)
    assert len(clean["git"]) == 40 and clean["dirty"] is False and clean["modified"] == []
    (tmp_path / "runs.jsonl").write_text('{"run": 0}\n')
    (tmp_path / "untracked.txt").write_text("not a tracked file\n")
    assert git_state(tmp_path) == {"git": clean["git"], "dirty": True, "modified": ["runs.jsonl"]}
