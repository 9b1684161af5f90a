"""DSA's augmentation ops against the authors' (VICO-UoE/DatasetCondensation utils.py rand_*), one
op at a time under the same parameters: the images and the uniforms that reproduce each of their
draws are in tests/parity/dsa.json (experiments/parity/dsa_probe.py, with provenance)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from bench.nets.augment import DiffAugment

GOLDEN = json.loads((Path(__file__).parent / "dsa.json").read_text())


def _images() -> torch.Tensor:
    torch.manual_seed(3)
    return torch.rand(4, 3, 32, 32)


@pytest.mark.parametrize("op", list(GOLDEN["ops"]))
def test_each_op_equals_the_authors_under_the_same_draw(op):
    golden = GOLDEN["ops"][op]
    augment = DiffAugment("color" if op in ("brightness", "saturation", "contrast") else op, "dsa")
    out = getattr(augment, f"_{op}")(_images(), torch.tensor(golden["u"]))
    ours, theirs = out.double(), golden["out"]
    assert float(ours.norm()) == pytest.approx(theirs["norm"], rel=1e-5)
    assert float(ours.sum()) == pytest.approx(theirs["sum"], rel=1e-5, abs=1e-5 * theirs["norm"])
    assert ours.flatten()[:6].tolist() == pytest.approx(theirs["slice"], rel=1e-5, abs=1e-6)


CALLS = GOLDEN["calls"]


@pytest.mark.parametrize("seed", sorted(CALLS["by_seed"]))
def test_a_whole_call_chooses_the_authors_category_and_gives_their_images(seed):
    """A per-sample call as their evaluation makes it (``DiffAugment(x, strategy, seed=-1)`` after
    ``manual_seed(seed)``): our ``dsa`` compose draws the same category from the same stream (one of
    the strategy's ops, ``color`` counting as one), and applying that category's ops (colour:
    brightness, saturation, contrast in turn) with the replayed per-sample draws gives their images."""
    golden = CALLS["by_seed"][seed]
    augment = DiffAugment(CALLS["strategy"], "dsa")
    draw = augment.draw(4, generator=torch.Generator().manual_seed(int(seed)))  # ours: category, then its ops
    assert set(draw.ops) == set(golden["u"]), (draw.ops, golden["category"])
    draw.uniforms = {op: torch.tensor(golden["u"][op]) for op in draw.ops}  # their per-sample numbers
    ours, theirs = augment.apply(_images(), draw).double(), golden["out"]
    assert float(ours.norm()) == pytest.approx(theirs["norm"], rel=1e-5)
    assert float(ours.sum()) == pytest.approx(theirs["sum"], rel=1e-5, abs=1e-5 * theirs["norm"])
    assert ours.flatten()[:6].tolist() == pytest.approx(theirs["slice"], rel=1e-5, abs=1e-6)
