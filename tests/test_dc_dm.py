"""DC, DSA and DM: losses, loop table, resume, divergence (the genuine-MNIST check is in tests/repro)."""

from __future__ import annotations

import pytest
import torch

from bench.core.errors import BenchError
from bench.core.seeding import seed_everything
from bench.data.datasets import load_dataset
from bench.nets.models import ConvNet
from bench.run.config import RunConfig, resolve
from bench.run.context import DivergenceError, RunContext
from bench.run.store import RunStore
from methods.dm import dm_loss
from tests.conftest import run_bench


def test_dm_loss_zero_when_synthetic_embeddings_equal_real_mean():
    torch.manual_seed(0)
    real = torch.randn(3, 6, 1, 28, 28)
    # a linear embedding (flatten): the mean image has exactly the mean embedding
    syn = real.mean(1, keepdim=True)
    assert float(dm_loss(torch.nn.Flatten(), real, syn)) == pytest.approx(0.0, abs=1e-10)
    # a random ConvNet: the real batch itself as the synthetic set has the same mean embedding
    net = ConvNet(1, 3, 28, width=16)
    with torch.no_grad():
        assert float(dm_loss(net.embed, real, real.clone())) == pytest.approx(0.0, abs=1e-8)
        assert float(dm_loss(net.embed, real, real[:, :2])) > 0


def test_dm_batched_equals_per_class_loop():
    torch.manual_seed(0)
    net = ConvNet(3, 4, 32, width=16).double()
    real, syn = torch.randn(4, 5, 3, 32, 32).double(), torch.randn(4, 2, 3, 32, 32).double()
    a = syn.clone().requires_grad_(True)
    b = syn.clone().requires_grad_(True)
    la, lb = dm_loss(net.embed, real, a, True), dm_loss(net.embed, real, b, False)
    ga, = torch.autograd.grad(la, a)
    gb, = torch.autograd.grad(lb, b)
    assert torch.allclose(la, lb, rtol=1e-10) and torch.allclose(ga, gb, rtol=1e-8, atol=1e-14)


def test_ipc_outside_the_loop_table_needs_explicit_loops():
    with pytest.raises(BenchError, match="IPC 7 is not in the authors' loop table"):
        resolve(RunConfig("dc", "digits", 7, scale="smoke"))
    params = resolve(RunConfig("dc", "digits", 7, scale="smoke",
                               params=(("inner_loop", 5), ("outer_loop", 3)))).params
    assert (params.outer_loop, params.inner_loop) == (3, 5)
    assert (resolve(RunConfig("dsa", "digits", 10)).params.outer_loop,
            resolve(RunConfig("dsa", "digits", 10)).params.inner_loop) == (10, 50)
    assert resolve(RunConfig("dc", "digits", 1)).initialiser == "noise"
    assert resolve(RunConfig("dsa", "digits", 1)).initialiser == "real"


class _Interrupt(Exception):
    pass


class _StopAfter(RunContext):
    """A context that stops the run (as a kill would) right after iteration ``stop`` finished."""

    stop = 0

    def maybe_checkpoint(self, iteration, state_fn):
        super().maybe_checkpoint(iteration, state_fn)
        if iteration == self.stop:
            raise _Interrupt(iteration)


def _run(resolved, dataset, run_dir, ctx_cls=RunContext, **kw):
    seed_everything(resolved.config.seed)  # what the runner does before every run
    ctx = ctx_cls(resolved, dataset, torch.device("cpu"), run_dir, checkpoint_every=2)
    for key, value in kw.items():
        setattr(ctx, key, value)
    return resolved.method_cls().run(ctx), ctx


@pytest.mark.parametrize("method,params", [
    ("dsa", (("batch_real", 4), ("inner_loop", 1), ("iterations", 4), ("outer_loop", 2))),
    ("dm", (("batch_real", 8), ("iterations", 4))),
    # trajectory matching: the learnable lr and its optimiser resume too (lr_lr > 0 so it moves)
    *[(m, (("iterations", 4), ("num_experts", 2), ("expert_train_epochs", 2), ("max_start_epoch", 1),
           ("expert_epochs", 1), ("syn_steps", 2), ("lr_lr", 1e-7))) for m in ("mtt", "tesla")],
])
def test_resume_is_bit_identical(tmp_path, method, params):
    resolved = resolve(RunConfig(method, "digits", 2, seed=3, scale="smoke", params=params))
    dataset = load_dataset("digits", None, resolved.data)
    # one store: MTT/TESLA's full run trains the experts, the cut run finds them stored (which must
    # not change its random stream: expert training once reseeded the run's RNG)
    full, _ = _run(resolved, dataset, tmp_path / "full", store_root=tmp_path)
    with pytest.raises(_Interrupt):
        _run(resolved, dataset, tmp_path / "cut", _StopAfter, stop=3, store_root=tmp_path)  # checkpoint at 2, dies after 3
    assert (tmp_path / "cut" / "checkpoint.pt").exists()
    resumed, ctx = _run(resolved, dataset, tmp_path / "cut", store_root=tmp_path)
    assert ctx.metrics["resumed_at"] == [2]
    assert torch.equal(resumed.images, full.images)
    assert resumed.lr == full.lr
    assert len(ctx.metrics["loss"]) == 4


def test_a_damaged_checkpoint_is_set_aside_and_the_run_resumes_from_the_one_before(tmp_path, capsys):
    """Two generations are kept; a truncated latest one is moved aside with one warning line and the
    run resumes from the previous one (then from the start when neither loads), to the same bytes."""
    resolved = resolve(RunConfig("dm", "digits", 2, seed=3, scale="smoke", params=(("batch_real", 8), ("iterations", 6))))
    dataset = load_dataset("digits", None, resolved.data)
    full, _ = _run(resolved, dataset, tmp_path / "full")
    for damage, resumed_at in ((("checkpoint.pt",), [2]), (("checkpoint.pt", "checkpoint.prev.pt"), None)):
        cut = tmp_path / f"cut{len(damage)}"
        with pytest.raises(_Interrupt):
            _run(resolved, dataset, cut, _StopAfter, stop=5)  # checkpoints at 2 and 4, dies after 5
        assert (cut / "checkpoint.pt").exists() and (cut / "checkpoint.prev.pt").exists()
        for name in damage:
            data = (cut / name).read_bytes()
            (cut / name).write_bytes(data[: len(data) // 3])  # as a full disk or a crash would leave it
        capsys.readouterr()
        resumed, ctx = _run(resolved, dataset, cut)
        warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning: damaged checkpoint")]
        assert len(warnings) == len(damage), warnings
        assert len(list(cut.glob("checkpoint*.corrupt-*"))) == len(damage)
        assert ctx.metrics.get("resumed_at") == resumed_at
        assert torch.equal(resumed.images, full.images)


def test_divergence_stops_with_one_line_and_no_record(tmp_path):
    out = tmp_path / "results"
    proc = run_bench("run", "--method", "dc", "--dataset", "digits", "--ipc", "1", "--scale", "smoke",
                     "--set", "lr_img=1e38", "--set", "iterations=3", "--set", "batch_real=8",
                     "--out", str(out), timeout=300)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "non-finite at iteration 1" in lines[0]
    assert not list(out.glob("runs/*/record.json"))


def test_check_finite_names_iteration(tmp_path):
    resolved = resolve(RunConfig("dm", "digits", 1, scale="smoke"))
    ctx = RunContext(resolved, load_dataset("digits", None, resolved.data), torch.device("cpu"), tmp_path)
    with pytest.raises(DivergenceError, match="synthetic images became non-finite at iteration 7"):
        ctx.check_finite(7, 1.0, torch.tensor([0.0, float("inf")]))


# --------------------------------------------------------------------------------- genuine MNIST
# DC and DM beating Random on genuine MNIST (IPC 1, 2 seeds; by 10 and 5 points) is checked by the
# reproduction suite, tests/repro/expected.toml ("DC beats Random by 10", "DM beats Random by 5"),
# with the same budgets this file used to run: batch_real 32, 10 DC / 40 DM iterations, DC from real
# images, 300-epoch DSA evaluation, 300 training / 100 test images per class.


@pytest.mark.parametrize("method", ["dm", "dc"])
def test_the_matching_loop_reads_nothing_back_per_step(tmp_path, monkeypatch, method):
    """No host synchronisation per step: the loop never turns a tensor into a Python number
    (.item(), float(), bool()); losses and finiteness are read in one go every 25 iterations."""
    resolved = resolve(RunConfig(method, "digits", 1, seed=0, scale="smoke",
                                 params=(("batch_real", 8), ("iterations", 30))))
    dataset = load_dataset("digits", None, resolved.data)
    reads = []
    for name in ("item", "__float__", "__bool__"):
        real = getattr(torch.Tensor, name)
        monkeypatch.setattr(torch.Tensor, name, lambda self, *a, _real=real, _n=name: reads.append(_n) or _real(self, *a))
    _, ctx = _run(resolved, dataset, tmp_path, checkpoint_every=0)
    monkeypatch.undo()
    assert reads == [] and len(ctx.metrics["loss"]) == 30


def test_amp_bf16_distils_under_autocast_in_its_own_run_and_keeps_float32_images(tmp_path):
    """``--amp bf16``: the matching loss is computed in bfloat16 (the first iteration's loss, same seed,
    network and images, moves by bfloat16's rounding, ~1e-3 relative, not float32's ~1e-7), the
    images stay float32, the run has its own id (so it never stands in for a float32 record) and
    its record says so; without the switch the config carries no ``amp``."""
    common = ["run", "--method", "dm", "--dataset", "digits", "--ipc", "1", "--scale", "smoke", "--set", "iterations=6",
              "--eval-set", "epochs=20", "--eval-set", "num_models=1", "--out", str(tmp_path)]
    assert run_bench(*common, "--amp", "bf16").returncode == 0
    assert run_bench(*common).returncode == 0
    store = RunStore(tmp_path)
    records = {rec["config"].get("amp", "off"): rec for rec in store.records()}
    assert set(records) == {"bf16", "off"} and records["bf16"]["run_id"] != records["off"]["run_id"]
    first = {amp: rec["metrics"]["loss"][0] for amp, rec in records.items()}
    assert 1e-4 < abs(first["bf16"] - first["off"]) / first["off"] < 2e-2, first
    for rec in records.values():
        images = torch.load(tmp_path / "runs" / rec["run_id"] / "synset.pt", weights_only=False)["images"]
        assert images.dtype == torch.float32 and rec["accuracy"]["mean"] > 20.0
