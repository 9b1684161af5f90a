"""MTT against its authors' code (golden values in tests/parity/mtt.json, written by
experiments/parity/mtt_probe.py from GeorgeCazenavette/mtt-distillation): one distillation step from
fixed inputs, the student's batches replayed from the indices their code drew. TESLA's exact sweep
must give the same numbers (it is the same gradient)."""

import json
from pathlib import Path

import pytest
import torch

from bench.nets.trajectory import FlatNetwork, StudentBatches, adjoint_meta_gradient, unrolled_meta_gradient
from tests.parity.golden import PRECISIONS, close, precision_settings, seeded_convnet, stats

GOLDEN = json.loads((Path(__file__).parent / "mtt.json").read_text())


@pytest.fixture(params=list(PRECISIONS))
def precision(request):
    yield from precision_settings(request.param, GOLDEN[request.param])


def _one_step(meta_gradient, p):
    inputs = GOLDEN["inputs"]
    model = FlatNetwork(seeded_convnet({"channels": 1, "size": 28, "weights_seed": 0}, 10))
    start = model.flatten()
    assert start.numel() == p.golden["num_params"]
    torch.manual_seed(3)
    target = start + 0.01 * torch.randn_like(start)
    torch.manual_seed(1)
    images = torch.randn(20, 1, 28, 28).requires_grad_(True)
    labels = torch.arange(10).repeat_interleave(2)
    lr = torch.tensor(inputs["syn_lr"]).requires_grad_(True)
    batches = StudentBatches([torch.tensor(ix) for ix in p.golden["indices"]])
    loss, image_grad, lr_grad = meta_gradient(model, images, labels, lr, start, target, batches)
    opt_img = torch.optim.SGD([images], lr=inputs["lr_img"], momentum=0.5)
    opt_lr = torch.optim.SGD([lr], lr=inputs["lr_lr"], momentum=0.5)
    images.grad, lr.grad = image_grad, lr_grad
    opt_img.step()
    opt_lr.step()
    return loss, image_grad, lr_grad, images, lr


@pytest.mark.parametrize("meta_gradient", [unrolled_meta_gradient, adjoint_meta_gradient], ids=["mtt", "tesla-exact"])
def test_one_distillation_step_matches_the_authors(precision, meta_gradient):
    p = precision
    loss, image_grad, lr_grad, images, lr = _one_step(meta_gradient, p)
    assert float(loss) == pytest.approx(p.golden["loss"], rel=p.rtol)
    close(stats(image_grad), p.golden["image_grad"], p)
    assert float(lr_grad) == pytest.approx(p.golden["lr_grad"], rel=p.rtol * 10)
    close(stats(images), p.golden["images_after"], p)
    assert float(lr.detach()) == pytest.approx(p.golden["lr_after"], rel=p.rtol)


def test_our_batch_draw_is_the_authors_order():
    """The authors split one permutation into batch_syn chunks and pop them from the end."""
    torch.manual_seed(4)
    drawn = StudentBatches.draw(20, 3, 10, "cpu")
    assert [ix.tolist() for ix in drawn.indices] == GOLDEN["float32"]["indices"]
