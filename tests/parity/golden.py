"""What the parity tests share: the summary a golden value is stored as, its comparison, the
seeded MNIST-shaped ConvNet-3 both sides rebuild, and the float32/float64 settings."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from bench.data.spec import DATASETS
from bench.nets.models import build_model

# float32: loss, norms and slices to rtol 1e-5. The plain sum of a gradient (terms of both signs) is
# compared only in float64: in float32 it moves by 5e-4 between CPUs (measured: 27.338 on the
# machine that first recorded it, 27.325 on an AMD EPYC, where the authors' code and ours agree
# bit for bit). float64: weights, inputs and arithmetic in double, everything to rtol 1e-9.
PRECISIONS = {"float32": (torch.float32, 1e-5, False), "float64": (torch.float64, 1e-9, True)}


def precision_settings(name: str, golden: dict):
    """Sets the default dtype (the probes build weights and inputs under it) and one thread (the
    values were recorded with one: sums reorder with more); yields what _close needs."""
    dtype, rtol, with_sum = PRECISIONS[name]
    threads, before = torch.get_num_threads(), torch.get_default_dtype()
    torch.set_num_threads(1)
    torch.set_default_dtype(dtype)
    try:
        yield SimpleNamespace(golden=golden, rtol=rtol, with_sum=with_sum)
    finally:
        torch.set_default_dtype(before)
        torch.set_num_threads(threads)


def stats(t: torch.Tensor) -> dict:
    t = t.detach().double()
    return {"sum": float(t.sum()), "norm": float(t.norm()), "slice": t.flatten()[:6].tolist()}


def close(ours: dict, theirs: dict, p) -> None:
    assert ours["norm"] == pytest.approx(theirs["norm"], rel=p.rtol, abs=p.rtol / 10)
    assert ours["slice"] == pytest.approx(theirs["slice"], rel=p.rtol, abs=p.rtol / 10)
    if p.with_sum:
        assert ours["sum"] == pytest.approx(theirs["sum"], rel=p.rtol, abs=p.rtol * theirs["norm"])


def check_image_step(loss: torch.Tensor, images: torch.Tensor, opt: torch.optim.Optimizer, golden: dict, p) -> None:
    """The recorded loss, then the images' gradient and the images after one optimiser step."""
    assert float(loss.detach()) == pytest.approx(golden["loss"], rel=p.rtol)
    opt.zero_grad()
    loss.backward()
    close(stats(images.grad), golden["grad"], p)
    opt.step()
    close(stats(images), golden["images_after_step"], p)


def seeded_convnet(shapes: dict, classes: int):
    """Ours: ConvNet-3 for 1x28x28 MNIST-shaped inputs after torch.manual_seed(weights_seed)."""
    spec = DATASETS.get("mnist")
    shape = SimpleNamespace(spec=spec, channels=shapes["channels"], size=shapes["size"], num_classes=classes,
                            name="mnist", resnet_branch=spec.resnet_branch)
    torch.manual_seed(shapes["weights_seed"])
    return build_model("convnet3", shape)
