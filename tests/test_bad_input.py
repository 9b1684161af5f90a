"""Bad input and damaged stores: one line on stderr naming the problem, exit 2, nothing written;
a damaged record is moved aside, reported once, and its run is redone."""

from __future__ import annotations

import json
import re

import pytest

from bench.cli.main import main
from bench.run.config import parse_overrides
from bench.run.store import RunStore
from tests.conftest import SHARED_DATA

RUN = ["run", "--method", "dc", "--dataset", "digits", "--ipc", "1", "--scale", "smoke"]
MNIST_RAW = "mnist/MNIST/raw"


def _damaged_copy(root, damage):
    """A data root beside the shared one: every file linked, the ones ``damage`` names rewritten."""
    raw = root / MNIST_RAW
    raw.mkdir(parents=True)
    for src in (SHARED_DATA / MNIST_RAW).iterdir():
        if src.name in damage:
            (raw / src.name).write_bytes(damage[src.name](src.read_bytes()))
        else:
            (raw / src.name).symlink_to(src)
    return root


def _flip_middle_byte(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1:]


@pytest.fixture(scope="module")
def damaged(tmp_path_factory):
    """Damaged copies of the genuine data: a truncated, a header-garbled and a bit-flipped MNIST file,
    and a truncated CIFAR10-JPEG archive."""
    if not (SHARED_DATA / MNIST_RAW / "train-images-idx3-ubyte").exists():
        pytest.skip(f"genuine MNIST not found under {SHARED_DATA} (set BENCH_DATA_ROOT)")
    base = tmp_path_factory.mktemp("damaged")
    roots = {
        "truncated": _damaged_copy(base / "truncated", {"train-images-idx3-ubyte": lambda b: b[:100_000]}),
        "header": _damaged_copy(base / "header", {"t10k-labels-idx1-ubyte": lambda b: b"\x00\x00\x99\x99" + b[4:]}),
        "flipped": _damaged_copy(base / "flipped", {"train-labels-idx1-ubyte": _flip_middle_byte}),
    }
    archive = SHARED_DATA / "cifar10-jpeg" / "cifar10-jpeg.tar.gz"
    if archive.exists():
        (base / "cifar" / "cifar10-jpeg").mkdir(parents=True)
        with open(archive, "rb") as handle:  # the first 3 MB: a gzip stream that ends mid-member
            (base / "cifar" / "cifar10-jpeg" / archive.name).write_bytes(handle.read(3_000_000))
        roots["cifar"] = base / "cifar"
    return roots


def _data(kind, dataset="mnist"):
    return lambda d: ["run", "--method", "random", "--dataset", dataset, "--ipc", "1", "--scale", "smoke",
                      "--data-root", str(d[kind])]


# (id, arguments (a list, or a function of the damaged data roots), the one stderr line as a regex)
CASES = [
    ("set-not-int", [*RUN, "--set", "iterations=abc"], r"method 'dc': iterations must be int, got 'abc'"),
    ("set-float-for-int", [*RUN, "--set", "iterations=2.5"], r"method 'dc': iterations must be int, got 2.5"),
    ("set-nan-lower", [*RUN, "--set", "lr_img=nan"], r"method 'dc': lr_img must be float \(finite\), got 'nan'"),
    ("set-nan", [*RUN, "--set", "lr_img=NaN"], r"method 'dc': lr_img must be float \(finite\), got nan"),
    ("set-inf", [*RUN, "--set", "lr_img=Infinity"], r"method 'dc': lr_img must be float \(finite\), got inf"),
    ("set-int-for-bool", [*RUN, "--set", "dsa=1"], r"method 'dc': dsa must be bool, got 1"),
    ("eval-set-float-for-int", [*RUN, "--eval-set", "epochs=1e3"], r"evaluation: epochs must be int, got 1000.0"),
    ("sampler-setting", [*RUN, "--dream", "--set", "sampler.clusters=many"],
     r"sampler 'representative': clusters must be int, got 'many'"),
    ("diagnostics-tuple", [*RUN, "--set", "diagnostics.classes=[0,\"a\"]"],
     r"diagnostics: classes must be tuple\[int, \.\.\.\], got \[0, 'a'\]"),
    ("classes-0", [*RUN, "--classes", "0"], r"--classes must be a positive integer, got 0"),
    ("max-train-0", [*RUN, "--max-train-per-class", "0"], r"--max-train-per-class must be a positive integer, got 0"),
    ("max-test-negative", [*RUN, "--max-test-per-class", "-3"], r"--max-test-per-class must be a positive integer, got -3"),
    ("unknown-set-key", [*RUN, "--set", "foo=1"], r"unknown parameter\(s\) \['foo'\] for method 'dc'; known: .*'iterations'"),
    ("set-without-equals", [*RUN, "--set", "iterations"], r"--set override 'iterations' is not of the form key=value"),
    ("unknown-eval-key", [*RUN, "--eval-set", "foo=1"], r"unknown evaluation setting\(s\) \['foo'\]; known: .*'epochs'"),
    ("unknown-method", ["run", "--method", "dcc", "--dataset", "digits", "--ipc", "1"],
     r"unknown method 'dcc'; known methods: dc, dm, dsa, herding, idc, mtt, random, tesla"),
    ("unknown-dataset", ["run", "--method", "dc", "--dataset", "mnistt", "--ipc", "1"], r"unknown dataset 'mnistt'; known"),
    ("ipc-not-int", [*RUN[:5], "--ipc", "abc"], r"malformed IPC list 'abc'"),
    ("ipc-0", [*RUN[:5], "--ipc", "0"], r"IPC must be a positive integer, got 0"),
    ("ipc-too-large", ["run", "--method", "random", "--dataset", "digits", "--ipc", "5000", "--scale", "smoke"],
     r"IPC 5000 is larger than the smallest class of digits \(122 training images"),
    ("seeds-backwards", [*RUN, "--seeds", "3-1"], r"malformed seeds '3-1'"),
    ("unknown-model", [*RUN, "--model", "resnet99"], r"unknown model 'resnet99'; known models: "),
    ("unknown-eval-model", [*RUN, "--eval-models", "vgg99"], r"unknown model 'vgg99'; known models: "),
    ("unknown-scale", [*RUN[:7], "--scale", "huge"], r"bench run: argument --scale: invalid choice: 'huge'"),
    ("unknown-executor", [*RUN, "--executor", "nope"], r"bench run: argument --executor: invalid choice: 'nope'"),
    ("unknown-sampler", [*RUN, "--sampler", "nearest"], r"unknown sampler 'nearest'; known samplers: "),
    ("unknown-initialiser", [*RUN, "--init", "magic"], r"unknown initialiser 'magic'; known initialisers: "),
    ("cuda-absent", [*RUN, "--device", "cuda"], r"device 'cuda' requested but CUDA is not available"),
    ("unknown-table", ["run", "--table", "99"], r"unknown table '99'; available tables: table1, "),
    ("unknown-figure", ["figures", "--fig", "9z"], r"unknown figure '9z'; available figures: fig1a, "),
    ("unknown-command", ["nope"], r"bench: argument command: invalid choice: 'nope'"),
    ("tables-bad-format", ["tables", "--table", "1", "--format", "bogus"], r"bench tables: argument --format: invalid choice: 'bogus'"),
    ("verify-unknown-check", ["verify", "--only", "nope"], r"unknown check\(s\) \['nope'\]; known: "),
    ("verify-no-expectations", ["verify", "--expected", "nope.toml"], r"expectations file nope.toml not found"),
    ("data-missing", lambda d: [*_data("truncated")(d)[:-1], str(d["truncated"] / "nowhere")],
     r"dataset 'mnist': files not found under .*nowhere/mnist"),
    ("mnist-truncated", _data("truncated"),
     r"dataset 'mnist': train-images-idx3-ubyte is 100000 bytes, expected 47040016 for its 60000x28x28 IDX header"),
    ("mnist-bad-header", _data("header"),
     r"dataset 'mnist': t10k-labels-idx1-ubyte has no IDX header \(first bytes 00009999, 10008 bytes\)"),
    ("mnist-flipped-byte", _data("flipped"),
     r"dataset 'mnist': train-labels-idx1-ubyte has md5 [0-9a-f]{32}, expected a25bea736e30d166cdddb491f175f624"),
    ("cifar-truncated-archive", _data("cifar", "cifar10-jpeg"),
     r"dataset 'cifar10-jpeg': archive .*cifar10-jpeg.tar.gz is corrupt or unreadable"),
]


@pytest.mark.parametrize("args, message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_nothing_left(tmp_path, capsys, monkeypatch, request, args, message):
    if callable(args):
        args = args(request.getfixturevalue("damaged"))
    cache = tmp_path / "cache"
    monkeypatch.setenv("BENCH_CACHE", str(cache))  # a partial extraction would be left here
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "results"
    code = _exit_code([*args, "--out", str(out)] if args[0] in ("run", "figures", "tables", "verify") else args)
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and re.fullmatch(r"error: " + message + r".*\n", err), err
    assert not out.exists(), "a refused run wrote its results folder"
    left = [p for p in tmp_path.rglob("*") if p.name.startswith(".") or ".tmp" in p.name]
    assert not left, f"left behind: {left}"
    extracted = cache / "extracted"
    assert not extracted.exists() or not any(extracted.iterdir()), "a partial extraction stayed in the cache"


def _exit_code(args: list[str]) -> int:
    """The status ``bench`` exits with: returned, or raised by argparse's usage errors."""
    try:
        return main(args)
    except SystemExit as exc:
        return exc.code


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


def test_a_key_given_twice_takes_the_last_value():
    """``--set epochs=100 --set epochs=30`` means 30: the last value wins (sorting the pairs once
    made the larger one win silently)."""
    assert dict(parse_overrides(["epochs=100", "lr=0.1", "epochs=30"], "--eval-set")) == {"epochs": 30, "lr": 0.1}
    assert dict(parse_overrides(["epochs=30", "epochs=100"], "--eval-set")) == {"epochs": 100}
