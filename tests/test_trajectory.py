"""Trajectory matching's meta-gradients (bench/nets/trajectory.py): TESLA's step-at-a-time sweep
equals MTT's autograd through the unroll, and the TESLA code's variant is what its formula says."""

import pytest
import torch

from bench.nets.augment import DiffAugment
from bench.nets.models import ConvNet
from bench.nets.trajectory import FlatNetwork, StudentBatches, adjoint_meta_gradient, unrolled_meta_gradient


def _case(soft: bool, augment: bool, steps: int = 5, batch: int = 4):
    """A float64 ConvNet on 8x8 inputs, expert parameters start/target, 12 synthetic images."""
    torch.manual_seed(0)
    net = ConvNet(1, 3, 8, width=8, depth=2).double()
    model = FlatNetwork(net)
    start = model.flatten()
    target = start + 0.05 * torch.randn_like(start)
    images = torch.randn(12, 1, 8, 8, dtype=torch.float64, requires_grad=True)
    labels = torch.softmax(torch.randn(12, 3, dtype=torch.float64), 1) if soft else torch.arange(12) % 3
    lr = torch.tensor(0.05, dtype=torch.float64, requires_grad=True)
    batches = StudentBatches.draw(12, steps, batch, "cpu")
    if augment:
        aug = DiffAugment("color_crop_cutout_scale_rotate", "dsa")
        draws = [aug.draw(len(ix)) for ix in batches.indices]
        batches.augment = lambda x, step: aug.apply(x, draws[step])
    return model, images, labels, lr, start, target, batches


@pytest.mark.parametrize("soft,augment", [(False, False), (True, False), (False, True)])
def test_tesla_exact_gradient_equals_mtt_unrolled_gradient(soft, augment):
    case = _case(soft, augment)
    loss_u, images_u, lr_u = unrolled_meta_gradient(*case)
    loss_a, images_a, lr_a = adjoint_meta_gradient(*case, propagate=True)
    assert float(loss_u) == pytest.approx(float(loss_a), rel=1e-12)
    assert torch.allclose(images_a, images_u, rtol=1e-9, atol=1e-14), (images_a - images_u).abs().max()
    assert float(lr_a) == pytest.approx(float(lr_u), rel=1e-9)
    assert images_u.norm() > 0 and lr_u != 0  # a real gradient, not two zeros


def test_authors_tesla_gradient_holds_every_student_step_constant():
    """TESLA's code: lambda frozen at the last step, the image part halved (tesla issues #4, #5).
    Its value is -alpha/2 * sum_i d(lambda_N . g_i)/dx with theta_i constant, and it is NOT MTT's
    gradient once there is more than one step."""
    model, images, labels, lr, start, target, batches = _case(False, False)
    _, authors, lr_authors = adjoint_meta_gradient(model, images, labels, lr, start, target, batches, propagate=False)
    _, exact, _ = adjoint_meta_gradient(model, images, labels, lr, start, target, batches, propagate=True)
    # the formula, written out: theta_i by detached steps, lambda_N = 2 (theta_N - theta*) / D
    thetas = [start]
    for step in range(len(batches.indices)):
        theta = thetas[-1].clone().requires_grad_(True)
        ce = torch.nn.functional.cross_entropy(model(batches.inputs(images.detach(), step), theta),
                                               labels[batches.indices[step]])
        thetas.append((theta - 0.05 * torch.autograd.grad(ce, theta)[0]).detach())
    lam = 2 * (thetas[-1] - target) / torch.sum((start - target) ** 2)
    total = 0
    for step in range(len(batches.indices)):
        theta = thetas[step].clone().requires_grad_(True)
        ce = torch.nn.functional.cross_entropy(model(batches.inputs(images, step), theta), labels[batches.indices[step]])
        g = torch.autograd.grad(ce, theta, create_graph=True)[0]
        total = total + torch.dot(lam, g)
    expected = -0.05 / 2 * torch.autograd.grad(total, images)[0]
    assert torch.allclose(authors, expected, rtol=1e-9, atol=1e-14)
    assert not torch.allclose(authors, exact, rtol=1e-3)
    assert float(lr_authors) == pytest.approx(float(-torch.dot(lam, (thetas[0] - thetas[-1]) / 0.05)), rel=1e-9)


def test_one_step_all_three_agree_up_to_the_authors_half():
    """With one student step there are no earlier steps to hold constant: the TESLA code's image
    gradient is exactly half of MTT's."""
    case = _case(False, False, steps=1, batch=12)
    _, unrolled, _ = unrolled_meta_gradient(*case)
    _, authors, _ = adjoint_meta_gradient(*case, propagate=False)
    assert torch.allclose(2 * authors, unrolled, rtol=1e-9, atol=1e-14)
