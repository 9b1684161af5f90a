"""Bad input and damaged stores: one line on stderr naming the problem, exit 2, nothing written;
a damaged record is moved aside, reported once, and its run is redone."""

from __future__ import annotations

import json

import pytest

from bench.cli.main import main
from bench.run.store import RunStore

RUN = ["run", "--method", "dc", "--dataset", "digits", "--ipc", "1", "--scale", "smoke"]


@pytest.mark.parametrize("args, message", [
    (["--set", "iterations=abc"], "method 'dc': iterations must be int, got 'abc'"),
    (["--set", "iterations=2.5"], "method 'dc': iterations must be int, got 2.5"),
    (["--set", "lr_img=nan"], "method 'dc': lr_img must be float (finite), got 'nan'"),
    (["--set", "lr_img=NaN"], "method 'dc': lr_img must be float (finite), got nan"),
    (["--set", "lr_img=Infinity"], "method 'dc': lr_img must be float (finite), got inf"),
    (["--set", "dsa=1"], "method 'dc': dsa must be bool, got 1"),
    (["--eval-set", "epochs=1e3"], "evaluation: epochs must be int, got 1000.0"),
    (["--dream", "--set", "sampler.clusters=many"], "sampler 'representative': clusters must be int, got 'many'"),
    (["--set", "diagnostics.classes=[0,\"a\"]"], "diagnostics: classes must be tuple[int, ...], got [0, 'a']"),
    (["--classes", "0"], "--classes must be a positive integer, got 0"),
    (["--max-train-per-class", "0"], "--max-train-per-class must be a positive integer, got 0"),
    (["--max-test-per-class", "-3"], "--max-test-per-class must be a positive integer, got -3"),
])
def test_bad_values_are_one_line_and_exit_2(tmp_path, capsys, args, message):
    out = tmp_path / "results"
    assert main([*RUN, "--out", str(out), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {message}" and "\n" not in err
    assert not out.exists()


def test_a_table_given_as_a_path_is_that_file(tmp_path, capsys):
    spec = (tmp_path / "table1.toml")
    repo_spec = (__import__("tests.conftest", fromlist=["REPO"]).REPO / "tables" / "table1.toml").read_text()
    spec.write_text(repo_spec.replace('title = "', 'title = "MY COPY of ', 1))
    assert main(["run", "--table", str(spec), "--scale", "smoke", "--dry-run", "--out", str(tmp_path / "r")]) == 0
    assert "MY COPY of" in capsys.readouterr().out
    assert main(["run", "--table", str(tmp_path / "nope" / "table1.toml"), "--dry-run"]) == 2
    assert capsys.readouterr().err.strip() == f"error: table spec file {tmp_path / 'nope' / 'table1.toml'} not found"


def test_a_damaged_record_is_moved_aside_reported_once_and_rerun(tmp_path, capsys):
    out = tmp_path / "results"
    run = ["run", "--method", "random", "--dataset", "digits", "--ipc", "1,2", "--scale", "smoke",
           "--eval-set", "epochs=2", "--out", str(out)]
    assert main(run) == 0
    first = sorted(RunStore(out).records(), key=lambda r: r["config"]["ipc"])[0]
    path = out / "runs" / first["run_id"] / "record.json"
    path.write_text(path.read_text()[:200])  # truncated, as a crash of the disk would leave it
    capsys.readouterr()
    assert main(["results", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.err.count("warning: corrupt record") == 1 and "moved aside" in captured.err
    assert list(path.parent.glob("record.json.corrupt-*")) and not path.exists()
    assert main(run) == 0  # the cell reruns; the other is skipped
    assert "done already" in capsys.readouterr().out
    again = json.loads(path.read_text())
    assert again["run_id"] == first["run_id"] and again["accuracy"]["mean"] == first["accuracy"]["mean"]
