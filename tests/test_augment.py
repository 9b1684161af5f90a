"""DSA augmentation: Siamese draws are shared exactly; per-sample draws differ; ops do what they say."""

import pytest
import torch

from bench.nets.augment import DiffAugment, cutmix

OPS = ["color", "crop", "cutout", "flip", "scale", "rotate"]


def _images(n=8, c=3, s=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, c, s, s, generator=g)


@pytest.mark.parametrize("op", OPS)
def test_siamese_applies_one_identical_transform_to_real_and_synthetic(op):
    aug = DiffAugment(op, "dsa")
    real = _images(5)
    syn = real[:3].clone()
    out_real, out_syn = aug.siamese(real, syn, generator=torch.Generator().manual_seed(1))
    assert torch.equal(out_real[:3], out_syn)


@pytest.mark.parametrize("op", ["crop", "cutout", "scale", "rotate", "color"])
def test_siamese_draw_is_shared_by_every_sample(op):
    aug = DiffAugment(op, "dsa")
    same = _images(1).repeat(6, 1, 1, 1)
    (out,) = aug.siamese(same, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(out, out[:1].expand_as(out))
    assert not torch.allclose(out, same)  # and it did transform


@pytest.mark.parametrize("op", ["crop", "cutout", "scale", "rotate", "color"])
def test_per_sample_mode_draws_different_parameters(op):
    aug = DiffAugment(op, "dsa")
    same = _images(1).repeat(16, 1, 1, 1)
    out = aug(same, generator=torch.Generator().manual_seed(4))
    distinct = {tuple(o.flatten().tolist()) for o in out}
    assert len(distinct) > 8


def test_crop_is_an_integer_shift_with_zero_fill():
    aug = DiffAugment("crop", "dsa")
    x = _images(1, s=32)
    draw = aug.draw(1, shared=True)
    # u = 0 -> shift of -4 rows; u just below 1 -> +4 columns
    draw.uniforms["crop"] = torch.tensor([[0.0, 0.999]])
    out = aug.apply(x, draw)
    assert torch.equal(out[..., 4:, :28], x[..., :28, 4:])
    assert out[..., :4, :].abs().sum() == 0 and out[..., :, 28:].abs().sum() == 0


def test_cutout_zeros_a_half_size_square():
    aug = DiffAugment("cutout", "dsa")
    x = torch.ones(1, 1, 32, 32)
    draw = aug.draw(1, shared=True)
    draw.uniforms["cutout"] = torch.tensor([[0.5, 0.5]])
    out = aug.apply(x, draw)
    assert int((out == 0).sum()) == 16 * 16


def test_flip_probability_and_content():
    aug = DiffAugment("flip", "dsa")
    x = _images(1000, c=1, s=4)
    out = aug(x, generator=torch.Generator().manual_seed(0))
    flipped = torch.tensor([torch.equal(o, i.flip(-1)) for o, i in zip(out, x)])
    assert 0.45 < flipped.float().mean() < 0.55
    assert all(torch.equal(o, i) for o, i, f in zip(out, x, flipped) if not f)


def test_dsa_mode_applies_one_category_idc_mode_composes():
    dsa = DiffAugment("color_crop_cutout_flip_scale_rotate", "dsa")
    idc = DiffAugment("color_crop_cutout_flip_scale_rotate", "idc")
    g = torch.Generator().manual_seed(0)
    seen = set()
    for _ in range(60):
        ops = dsa.draw(4, generator=g).ops
        assert ops in (["brightness", "saturation", "contrast"], ["crop"], ["cutout"], ["flip"], ["scale"], ["rotate"])
        seen.add(ops[0])
    assert len(seen) == 6
    ops = idc.draw(4, generator=g).ops
    assert ops[:4] == ["flip", "brightness", "saturation", "contrast"] and ops[-1] == "cutout"
    assert ops[4] in ("crop", "scale", "rotate") and len(ops) == 6


def test_augmentation_is_differentiable_for_synthetic_images():
    aug = DiffAugment("color_crop_cutout_scale_rotate", "idc")
    syn = _images(4).requires_grad_(True)
    (out,) = aug.siamese(syn, generator=torch.Generator().manual_seed(0))
    out.sum().backward()
    assert syn.grad is not None and syn.grad.abs().sum() > 0


def test_cutmix_mixes_a_box_and_reports_its_weight():
    torch.manual_seed(0)
    x = torch.zeros(2, 1, 32, 32)
    x[1] = 1
    y = torch.tensor([0, 1])
    mixed, ya, yb, r = cutmix(x, y)
    area_from_partner = (mixed[0] != x[0]).float().mean() if yb[0] != 0 else (mixed[1] != x[1]).float().mean()
    assert 0.0 <= r <= 1.0
    assert torch.equal(ya, y)
    assert abs((1 - r) - float(area_from_partner)) < 1e-6 or yb[0] == 0 and yb[1] == 1


def test_draws_land_on_the_given_device_and_are_the_same_numbers_on_the_cpu():
    """The per-call uniforms are drawn on the run's device (no host-to-device copy per call on a
    GPU; "meta" stands in for one here); on the CPU the numbers are those of the old CPU draw."""
    augment = DiffAugment("color_crop_cutout_flip_scale_rotate", compose="idc")
    on_meta = augment.draw(4, device="meta")
    assert on_meta.uniforms and all(u.device.type == "meta" for u in on_meta.uniforms.values())
    torch.manual_seed(3)
    default = augment.draw(4)
    torch.manual_seed(3)
    on_cpu = augment.draw(4, device=torch.device("cpu"))
    assert default.ops == on_cpu.ops
    assert all(torch.equal(default.uniforms[k], on_cpu.uniforms[k]) for k in default.uniforms)
