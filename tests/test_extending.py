"""The extension points of docs/extending.md, each exercised from this file alone (no project file
touched): a matching method composed with DREAM by `--dream`, a generated dataset registered and
run, a table spec loaded from a temporary folder, records of an older default reported as stale,
and the README's notebook example."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from bench.cli.main import main
from bench.data.spec import DATASETS, DatasetSpec, RawSplits
from bench.data.synset import SyntheticSet
from bench.dream.cluster_init import ClusterInitialiser
from bench.run.store import RunStore
from methods.base import METHODS, Method
from tests.conftest import REPO

FAST_EVAL = ["--eval-set", "epochs=3"]


# ------------------------------------------------------------------------------------ a new method
@dataclass(frozen=True)
class ToyParams:
    iterations: int = 3
    batch_real: int = 16
    lr_img: float = 0.1


@METHODS.register("toy-mean-matching")
class ToyMeanMatching(Method):
    """Moves each class's synthetic images toward the mean of a real batch in pixel space: the
    smallest method that draws real batches through ``ctx.sampler`` and starts from ``ctx.initialise``."""

    name = "toy-mean-matching"
    Params = ToyParams
    matches_real = True

    def run(self, ctx) -> SyntheticSet:
        p, data = ctx.params, ctx.dataset
        synset = ctx.initialise(space="normalized")
        images = synset.images.clone().requires_grad_(True)
        optimiser = torch.optim.SGD([images], lr=p.lr_img)
        net = ctx.build_model()  # the sampler embeds the class with the current network
        for step in range(p.iterations):
            loss = 0.0
            for c in range(data.num_classes):
                real = data.normalise(data.train_images[ctx.sampler.sample(c, p.batch_real, net=net, step=step)])
                loss = loss + F.mse_loss(images[synset.labels == c].mean(0), real.mean(0))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            ctx.metrics.setdefault("loss", []).append(float(loss.detach()))
        return SyntheticSet(images.detach(), synset.labels, space="normalized")


def test_a_method_registered_here_composes_with_dream(tmp_path):
    out = tmp_path / "results"
    args = ["run", "--method", "toy-mean-matching", "--dataset", "digits", "--ipc", "2", "--scale", "smoke",
            "--out", str(out), *FAST_EVAL]
    assert main([*args, "--dream", "--set", "sampler.clusters=8", "--set", "sampler.interval=2"]) == 0
    assert main(args) == 0
    records = {r["config"]["label"]: r for r in RunStore(out).records()}
    assert set(records) == {"toy-mean-matching+dream", "toy-mean-matching"}
    dream = records["toy-mean-matching+dream"]
    assert dream["config"]["sampler"] == "representative" and dream["config"]["initialiser"] == "cluster"
    assert dream["config"]["sampler_config"]["clusters"] == 8 and dream["config"]["sampler_config"]["interval"] == 2
    sampler = dream["metrics"]["dream"]["sampler"]
    # 3 steps x 10 classes; re-clustered at steps 0 and 2 (interval 2): 2 rounds of 10 classes
    assert sampler["calls"] == 30 and sampler["reclusterings"] == 20 and sampler["returned_batch"] == 8
    assert dream["metrics"]["dream"]["init"]["k_per_class"] == 2
    plain = records["toy-mean-matching"]
    assert plain["config"]["sampler"] == "random" and "sampler_config" not in plain["config"]
    assert "dream" not in plain["metrics"] and len(plain["metrics"]["loss"]) == 3


def test_dream_settings_belong_to_the_sampler_and_are_checked(tmp_path, capsys):
    out = tmp_path / "results"
    base = ["run", "--method", "toy-mean-matching", "--dataset", "digits", "--ipc", "1", "--scale", "smoke",
            "--out", str(out), "--dry-run"]
    assert main([*base, "--set", "sampler.clusters=8"]) == 2  # the random sampler has no settings
    assert "unknown parameter(s) ['clusters'] for sampler 'random'" in capsys.readouterr().err
    assert main([*base, "--dream", "--set", "sampler.bogus=1"]) == 2
    assert "for sampler 'representative'" in capsys.readouterr().err
    assert main([*base, "--dream", "--set", "dream.clusters=8"]) == 2
    assert "unknown setting group in 'dream.clusters'" in capsys.readouterr().err
    assert not out.exists()


# ------------------------------------------------------------------------------------ a new dataset
def _generated_blobs(spec: DatasetSpec, root: Path, _: bool) -> RawSplits:
    """Three classes of 8x8 grey images, each a bright square in its own corner plus noise."""
    gen = np.random.default_rng(0)

    def split(per_class: int):
        images, labels = [], []
        for c in range(3):
            x = gen.integers(0, 60, size=(per_class, 1, 8, 8))
            x[:, :, (c % 2) * 4:(c % 2) * 4 + 4, (c // 2) * 4:(c // 2) * 4 + 4] += 180
            images.append(x)
            labels += [c] * per_class
        return torch.tensor(np.concatenate(images), dtype=torch.uint8), torch.tensor(labels)

    (tx, ty), (vx, vy) = split(40), split(20)
    return RawSplits(tx, ty, vx, vy, ["top-left", "bottom-left", "top-right"])


DATASETS.register("generated-blobs")(DatasetSpec(
    "generated-blobs", channels=1, size=8, num_classes=3, mean=(0.3,), std=(0.3,), idc_mean=None, idc_std=None,
    folder="generated-blobs", expected_files=(), loader=_generated_blobs, downloadable=False,
    dsa_strategy="color_crop_cutout_scale_rotate", display="Blobs"))


def test_a_dataset_registered_here_runs_end_to_end(tmp_path, capsys):
    out = tmp_path / "results"
    assert main(["run", "--method", "random,toy-mean-matching", "--dataset", "generated-blobs", "--ipc", "2",
                 "--scale", "smoke", "--out", str(out), "--eval-set", "epochs=20"]) == 0
    records = RunStore(out).records()
    assert len(records) == 2 and {r["config"]["dataset"] for r in records} == {"generated-blobs"}
    for r in records:
        assert r["accuracy"]["mean"] > 60  # three separable classes: well above chance (33 %)
        assert r["config"]["protocol"]["name"] == "dsa"
    capsys.readouterr()
    assert main(["list", "datasets"]) == 0
    assert "generated-blobs" in capsys.readouterr().out


# ------------------------------------------------------------------------------------ a new table
TABLE = '''
kind = "table"
title = "Table 9: a table added from a folder"
caption = "Random and Herding on the built-in digits."
tolerance = 2.0

[grid]
datasets = ["digits"]
ipcs = [1]
seeds = "0-1"

[[grid.methods]]
key = "Random"
method = "random"

[[grid.methods]]
key = "Herding"
method = "herding"

[layout]
rows = ["dataset", "ipc"]
columns = ["method"]

[paper."digits|1"]
Random = "50.0±5.0"
'''


def test_a_table_spec_added_from_a_folder(tmp_path, monkeypatch, capsys):
    for kind in ("tables", "figures"):
        (tmp_path / "specs" / kind).mkdir(parents=True)
    (tmp_path / "specs" / "tables" / "table9.toml").write_text(TABLE)
    monkeypatch.setenv("BENCH_SPECS", str(tmp_path / "specs"))
    assert main(["tables", "--list"]) == 0
    assert "table9: Table 9: a table added from a folder" in capsys.readouterr().out
    out = tmp_path / "results"
    assert main(["run", "--table", "9", "--scale", "smoke", "--out", str(out), "--seeds", "0",
                 "--method", "Random", *FAST_EVAL]) == 0
    capsys.readouterr()
    assert main(["tables", "--table", "9", "--out", str(out), "--scale", "smoke", "--eval-set", "epochs=3"]) == 0
    text = capsys.readouterr().out
    (rec,) = RunStore(out).records()
    assert f"{rec['accuracy']['mean']:.2f}" in text and "50.0±5.0" in text


# ------------------------------------------------------------------------------------ stale records
STALE_TABLE = TABLE.replace("Table 9: a table added from a folder", "Table 8: DREAM's coreset").replace(
    'key = "Herding"\nmethod = "herding"', 'key = "Random+DREAM"\nmethod = "random"\ndream = true')


def test_records_of_an_older_default_are_reported_stale(tmp_path, monkeypatch, capsys):
    out = tmp_path / "results"
    run = ["run", "--method", "random", "--dream", "--dataset", "digits", "--ipc", "1", "--scale", "smoke",
           "--seeds", "0", "--out", str(out), *FAST_EVAL]
    with monkeypatch.context() as m:  # the same request made while the initialiser's default differed
        m.setattr(ClusterInitialiser, "defaults", classmethod(lambda cls, method, spec, scale: {"dedupe": False}))
        assert main(run) == 0
    (old,) = RunStore(out).records()
    assert old["config"]["initialiser_config"] == {"dedupe": False}
    for kind in ("tables", "figures"):
        (tmp_path / "specs" / kind).mkdir(parents=True)
    (tmp_path / "specs" / "tables" / "table8.toml").write_text(STALE_TABLE)
    monkeypatch.setenv("BENCH_SPECS", str(tmp_path / "specs"))
    capsys.readouterr()
    assert main(["tables", "--table", "8", "--out", str(out), "--scale", "smoke", *FAST_EVAL]) == 0
    table = capsys.readouterr().out
    assert "| stale" in table and "Stale cells (records of an older config; not shown): Random+DREAM: stale" in table
    capsys.readouterr()
    assert main(["status", *run[1:]]) == 0
    status = capsys.readouterr().out
    assert "stale" in status and old["run_id"] in status and "0 done" in status
    assert main(["run", *run[1:], "--dry-run"]) == 0
    capsys.readouterr()
    assert main(run) == 0  # rerunning makes the current record; the stale one stays on disk
    assert len(RunStore(out).records()) == 2
    assert main(["status", *run[1:]]) == 0
    assert "1 done" in capsys.readouterr().out


# ------------------------------------------------------------------------------------ the README example
def test_readme_python_example_runs():
    text = (REPO / "README.md").read_text()
    block = re.search(r"## Python API.*?```python\n(.*?)```", text, re.S)
    assert block, "README: no ```python block under '## Python API'"
    namespace: dict = {}
    exec(compile(block.group(1), "README.md", "exec"), namespace)
    scores, frame = namespace["scores"], namespace["frame"]
    assert 0 <= scores["mean"] <= 100 and len(scores["per_model"]["convnet3"]) == 2
    assert list(frame["label"]) == ["dm"] and json.loads(json.dumps(scores))  # plain data, printable


# ------------------------------------------------------------------------------------ continual cells
def test_continual_learning_cells_run_through_the_ordinary_launcher(tmp_path, capsys):
    out = tmp_path / "results"
    grid = ["--fig", "4d", "--scale", "smoke", "--datasets", "digits", "--method", "Random", "--seeds", "0",
            "--eval-set", "epochs=2", "--out", str(out)]
    assert main(["status", *grid]) == 0
    assert "1 missing" in capsys.readouterr().out
    assert main(["run", *grid, "--executor", "local", "--max-parallel", "1"]) == 0
    (record,) = RunStore(out).records()
    assert record["kind"] == "continual" and record["config"]["task_options"]["steps"] == 5
    assert [s["classes_seen"] for s in record["steps"]] == [2, 4, 6, 8, 10]
    assert record["accuracy"]["mean"] == record["steps"][-1]["accuracy"]
    assert (out / "jobs" / f"{record['run_id']}.json").exists()  # launched as a submitit job
    assert sorted(p.name for p in (out / "runs" / record["run_id"]).glob("step*.pt")) == [f"step{t}.pt" for t in range(5)]
    capsys.readouterr()
    assert main(["status", *grid]) == 0
    assert "1 done" in capsys.readouterr().out
