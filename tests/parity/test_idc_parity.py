"""Golden step values from the authors' IDC code (snu-mllab/Efficient-Dataset-Condensation),
recorded by experiments/parity/idc_probe.py on inputs both sides rebuild from seeds
(tests/parity/idc.json: values and provenance). Ours is computed here from the same inputs, in
float32 (rtol 1e-5 on losses, norms and slices) and float64 (everything, sums included, rtol 1e-9)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from bench.data.synset import decode_multi_formation
from bench.evaluation.train import cutmix_cross_entropy
from bench.nets.augment import CutMixDraw, DiffAugment
from methods.idc import match_loss
from tests.parity.golden import PRECISIONS, close, precision_settings, seeded_convnet, stats

GOLDEN = json.loads((Path(__file__).parent / "idc.json").read_text())
S = GOLDEN["shapes"]
K, C, H, IPC, B, FACTOR, CLS = S["classes"], S["channels"], S["size"], S["ipc"], S["batch_real"], S["factor"], S["class"]


@pytest.fixture(params=list(PRECISIONS))
def precision(request):
    yield from precision_settings(request.param, GOLDEN[request.param])


def _theirs(name: str) -> str:
    """The authors' parameter name of one of ours: their ConvNet keeps convs and norms in two lists
    (layers.conv.d, layers.norm.d); ours interleaves them (features.4d, features.4d+1)."""
    if name.startswith("features."):
        index, leaf = name.split(".")[1:]
        depth, offset = divmod(int(index), 4)
        return f"layers.{'conv' if offset == 0 else 'norm'}.{depth}.{leaf}"
    return name


def _net():
    return seeded_convnet(S, K)


def _inputs():
    torch.manual_seed(S["real_seed"])
    real = torch.randn(B, C, H, H)
    torch.manual_seed(S["syn_seed"])
    return real, torch.rand(IPC, C, H, H)


def _crop_major(decoded: torch.Tensor, n: int) -> torch.Tensor:
    """Ours keeps the crops of one image together; the authors' decode_zoom puts crop (0, 0) of every
    image first. The same images in another order: reordered here to compare element by element."""
    return decoded.view(n, FACTOR * FACTOR, *decoded.shape[1:]).transpose(0, 1).reshape(decoded.shape)


def test_network_weights_from_a_seed_are_the_authors(precision):
    ours = {_theirs(name): stats(p) for name, p in _net().named_parameters()}
    assert set(ours) == set(precision.golden["init_weights"])
    for name, theirs in precision.golden["init_weights"].items():
        close(ours[name], theirs, precision)


def test_multi_formation_decode(precision):
    _, syn = _inputs()
    decoded = decode_multi_formation(syn, FACTOR)
    golden = precision.golden["decode"]
    assert list(decoded.shape) == golden["shape"]
    reordered = _crop_major(decoded, IPC)
    close(stats(reordered), golden["images"], precision)
    assert reordered.double().flatten(1).sum(1).tolist() == pytest.approx(golden["per_image_sums"], rel=precision.rtol)


@pytest.mark.parametrize("metric", ["l1", "mse"])
def test_matching_loss_and_one_image_step(precision, metric):
    real, syn = _inputs()
    net = _net()
    net.train()
    base = syn.clone().requires_grad_(True)
    opt = torch.optim.SGD([base], lr=0.01, momentum=0.5)  # optim_img (mom_img 0.5)
    x_syn = decode_multi_formation(base, FACTOR)
    loss = match_loss(net, real, torch.full((B,), CLS), x_syn, torch.full((len(x_syn),), CLS), metric)
    golden = precision.golden[f"match_{metric}"]
    assert float(loss.detach()) == pytest.approx(golden["loss"], rel=precision.rtol)
    opt.zero_grad()
    loss.backward(inputs=[base])
    close(stats(base.grad), golden["grad"], precision)
    opt.step()
    close(stats(base), golden["images_after_step"], precision)


def test_one_network_update(precision):
    """IDC's network update without CutMix (mix_p 0): CE, SGD lr 0.01, momentum 0.9, wd 5e-4."""
    real, _ = _inputs()
    net = _net()
    net.train()
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    loss, _, _ = cutmix_cross_entropy(net, real.clone(), torch.arange(B) % K, 0.0)
    opt.zero_grad()
    loss.backward()
    opt.step()
    golden = precision.golden["network_step"]
    for name, p in net.named_parameters():
        close(stats(p), golden["weights_after_step"][_theirs(name)], precision)
    close(stats(net(real)), golden["logits_after_step"], precision)


def test_one_network_update_with_cutmix_at_the_authors_draw(precision):
    """train_epoch with CutMix certain: the authors' lambda, partner permutation and box (replayed
    from their seeds) given to ours; the pasted box, the mixed loss and the weights after the step."""
    golden = precision.golden["network_step_cutmix"]
    real, _ = _inputs()
    net = _net()
    net.train()
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    draw = CutMixDraw(golden["lam"], torch.tensor(golden["perm"]), tuple(golden["centre"]))
    loss, mixed, _ = cutmix_cross_entropy(net, real.clone(), torch.arange(B) % K, 1.0, draw=draw)
    r1, c1, r2, c2 = golden["box"]
    changed = (mixed != real).any(0).any(0).nonzero()
    assert (changed[:, 0].min(), changed[:, 0].max() + 1, changed[:, 1].min(), changed[:, 1].max() + 1) == (r1, r2, c1, c2)
    assert float(loss.detach()) == pytest.approx(golden["loss"], rel=precision.rtol)
    opt.zero_grad()
    loss.backward()
    opt.step()
    for name, p in net.named_parameters():
        close(stats(p), golden["weights_after_step"][_theirs(name)], precision)


def _augmentation_input() -> torch.Tensor:
    torch.manual_seed(3)
    return torch.randn(6, 3, 32, 32)


def _crop_and_cutout_uniforms(size: int, crop: list, cutout: list | None = None) -> dict:
    """The uniforms that make our integer draws the authors' ones: shift t of [-s, s] is
    floor(u (2s + 1)) - s, so u = (t + s + 1/2) / (2s + 1); likewise a cutout offset o of [0, span)."""
    shift = int(size * 0.125 + 0.5)
    cut = int(size * 0.5 + 0.5)
    span = size + (1 - cut % 2)
    u = {"crop": (torch.tensor(crop, dtype=torch.float64).T.reshape(-1, 2) + shift + 0.5) / (2 * shift + 1)}
    if cutout is not None:
        u["cutout"] = (torch.tensor([cutout], dtype=torch.float64) + 0.5) / span
    return {k: v.to(torch.get_default_dtype()) for k, v in u.items()}


def test_matching_augmentation_at_the_authors_draw(precision):
    """IDC's matching augmentation on CIFAR (color_crop_cutout, one draw for the whole batch):
    brightness, saturation and contrast, then crop, then cutout, in their order and at their draw."""
    golden = precision.golden["augmentation"]["matching"]
    augment = DiffAugment("color_crop_cutout", compose="idc")
    draw = augment.draw(1, shared=True)
    assert draw.ops == ["brightness", "saturation", "contrast", "crop", "cutout"]
    draw.uniforms = {op: torch.tensor([[golden[op]]]) for op in ("brightness", "saturation", "contrast")}
    draw.uniforms.update(_crop_and_cutout_uniforms(32, [[golden["crop"][0]], [golden["crop"][1]]], golden["cutout_offset"]))
    out = augment.apply(_augmentation_input(), draw)
    close(stats(out), golden["images"], precision)
    assert out.double().flatten(1).sum(1).tolist() == pytest.approx(golden["per_image_sums"], rel=precision.rtol)


def test_network_update_augmentation_at_the_authors_draws(precision):
    """IDC's per-sample augmentation of network updates on CIFAR (color_crop: cutout is dropped when
    the updates use CutMix): each image its own brightness, saturation, contrast and crop."""
    golden = precision.golden["augmentation"]["network"]
    augment = DiffAugment("color_crop", compose="idc")
    draw = augment.draw(6)
    assert draw.ops == ["brightness", "saturation", "contrast", "crop"]
    draw.uniforms = {op: torch.tensor(golden[op]).view(-1, 1) for op in ("brightness", "saturation", "contrast")}
    draw.uniforms.update(_crop_and_cutout_uniforms(32, golden["crop"]))
    out = augment.apply(_augmentation_input(), draw)
    close(stats(out), golden["images"], precision)
    assert out.double().flatten(1).sum(1).tolist() == pytest.approx(golden["per_image_sums"], rel=precision.rtol)
