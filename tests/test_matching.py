"""Gradient-matching distances and the class-batched matching loss (bench/nets/matching.py)."""

from __future__ import annotations

import math

import pytest
import torch

from bench.nets.augment import DiffAugment
from bench.nets.matching import (
    batched_match_loss,
    batched_matching_loss,
    distance_wb,
    match_loss,
    per_class_matching_loss,
    siamese_per_class,
)
from bench.nets.models import ConvNet


def _hand_ours(rows_r, rows_s):
    total = 0.0
    for r, s in zip(rows_r, rows_s):
        dot = sum(a * b for a, b in zip(r, s))
        nr = math.sqrt(sum(a * a for a in r))
        ns = math.sqrt(sum(b * b for b in s))
        total += 1 - dot / (nr * ns + 0.000001)
    return total


def test_ours_distance_matches_hand_computation():
    # conv weight (out=2, in=1, h=1, w=2): rows are the output channels, flattened over in*h*w
    gr = torch.tensor([[[[1.0, 2.0]]], [[[0.0, -1.0]]]])
    gs = torch.tensor([[[[2.0, 1.0]]], [[[3.0, 4.0]]]])
    expected = _hand_ours([[1, 2], [0, -1]], [[2, 1], [3, 4]])  # 1-4/5 + 1+4/5 = 2.0 (minus eps terms)
    assert float(distance_wb(gr, gs)) == pytest.approx(expected, rel=1e-6)
    assert expected == pytest.approx(2.0, abs=1e-5)
    # linear weight kept as (out, in)
    lr, ls = torch.tensor([[3.0, 4.0], [1.0, 0.0]]), torch.tensor([[3.0, 4.0], [0.0, 1.0]])
    assert float(distance_wb(lr, ls)) == pytest.approx(_hand_ours([[3, 4], [1, 0]], [[3, 4], [0, 1]]), rel=1e-6)
    # 1-D tensors (biases, norm affine) contribute 0
    assert float(distance_wb(torch.tensor([1.0, 2.0]), torch.tensor([-5.0, 3.0]))) == 0.0
    # match_loss sums over tensors
    total = match_loss([gs, ls, torch.ones(2)], [gr, lr, torch.zeros(2)], "ours")
    assert float(total) == pytest.approx(float(distance_wb(gr, gs) + distance_wb(lr, ls)), rel=1e-6)


def test_mse_and_cos_variants_concatenate_all_gradients():
    gr = [torch.tensor([[1.0, 2.0]]), torch.tensor([3.0])]
    gs = [torch.tensor([[0.0, 2.0]]), torch.tensor([1.0])]
    assert float(match_loss(gs, gr, "mse")) == pytest.approx(1.0 + 0.0 + 4.0)
    r, s = [1, 2, 3], [0, 2, 1]
    cos = sum(a * b for a, b in zip(r, s)) / (math.sqrt(14) * math.sqrt(5) + 1e-6)
    assert float(match_loss(gs, gr, "cos")) == pytest.approx(1 - cos, rel=1e-6)
    with pytest.raises(ValueError):
        match_loss(gs, gr, "l7")


@pytest.mark.parametrize("metric", ["ours", "mse", "cos"])
def test_batched_match_loss_is_sum_of_per_class(metric):
    g = torch.Generator().manual_seed(0)
    shapes = [(4, 2, 3, 3), (4,), (3, 8), (3,)]
    real = [torch.randn(5, *s, generator=g) for s in shapes]
    syn = [torch.randn(5, *s, generator=g) for s in shapes]
    per_class = sum(match_loss([t[c] for t in syn], [t[c] for t in real], metric) for c in range(5))
    assert float(batched_match_loss(syn, real, metric)) == pytest.approx(float(per_class), rel=1e-5)


def test_siamese_dsa_inside_matching_shares_each_class_draw():
    """Class c's real and synthetic batches get exactly class c's one draw; an image present in
    both batches comes out identical (the Siamese property), and classes differ in their draws."""
    torch.manual_seed(0)
    aug = DiffAugment("color_crop_cutout_flip_scale_rotate", "dsa")
    real = torch.randn(6, 4, 3, 16, 16)
    syn = real[:, :2].clone()  # the synthetic images are copies of the first two real ones
    draws = [aug.draw(1, shared=True) for _ in range(6)]
    out_real, out_syn = siamese_per_class(aug, real, syn, draws)
    for c in range(6):
        assert torch.allclose(out_real[c], aug.apply(real[c], draws[c]), atol=1e-6)
        assert torch.allclose(out_syn[c], aug.apply(syn[c], draws[c]), atol=1e-6)
        assert torch.allclose(out_syn[c], out_real[c, :2], atol=1e-6)
    assert not torch.equal(out_real, real)


def _setup(channels, size, k=3, n=3, ipc=2, dtype=torch.float64, width=8):
    torch.manual_seed(1)
    net = ConvNet(channels, k, size, width=width).to(dtype)
    real = torch.randn(k, n, channels, size, size, dtype=dtype)
    syn = torch.randn(k, ipc, channels, size, size, dtype=dtype)
    strategy = "color_crop_cutout_scale_rotate" if channels == 1 else "color_crop_cutout_flip_scale_rotate"
    aug = DiffAugment(strategy, "dsa")
    draws = [aug.draw(1, shared=True) for _ in range(k)]
    return net, real, syn, aug, draws


def _loss_and_grad(fn, net, real, syn0, aug, draws, metric):
    syn = syn0.clone().requires_grad_(True)
    loss = fn(net, real, syn, aug, draws, metric)
    (grad,) = torch.autograd.grad(loss, syn)
    return loss.detach(), grad


@pytest.mark.parametrize("channels,size", [(1, 28), (3, 32)])
@pytest.mark.parametrize("metric", ["ours", "mse", "cos"])
def test_batched_equals_per_class_loop_float64(channels, size, metric):
    """Same loss and same image gradients as the authors' per-class loop, to float64 precision."""
    net, real, syn, aug, draws = _setup(channels, size)
    l_loop, g_loop = _loss_and_grad(per_class_matching_loss, net, real, syn, aug, draws, metric)
    l_bat, g_bat = _loss_and_grad(batched_matching_loss, net, real, syn, aug, draws, metric)
    assert torch.allclose(l_bat, l_loop, rtol=1e-10, atol=1e-10)
    assert torch.allclose(g_bat, g_loop, rtol=1e-8, atol=1e-10 * float(g_loop.abs().max()))


def test_batched_equals_per_class_loop_float32_full_width():
    """The real ConvNet-3 (width 128) in float32, without augmentation: equal to float tolerance."""
    net, real, syn, _, _ = _setup(1, 28, k=2, n=4, ipc=1, dtype=torch.float32, width=128)
    l_loop, g_loop = _loss_and_grad(per_class_matching_loss, net, real, syn, None, None, "ours")
    l_bat, g_bat = _loss_and_grad(batched_matching_loss, net, real, syn, None, None, "ours")
    assert torch.allclose(l_bat, l_loop, rtol=1e-5)
    assert float((g_bat - g_loop).abs().max()) <= 2e-2 * float(g_loop.abs().max())
