"""Golden step values from the authors' DC/DSA/DM code (VICO-UoE/DatasetCondensation), recorded by
running their functions on inputs both sides rebuild from seeds (tests/parity/vico.json holds the
values and their provenance: repository, commit, files, torch version, command). Ours is computed
here from the same inputs and must agree to float tolerance. The authors' code is not needed."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from bench.data.spec import DATASETS
from bench.evaluation.evaluate import _scheduler, resolve_protocol
from bench.nets.matching import per_class_matching_loss
from bench.nets.models import build_model
from methods.dm import dm_loss

GOLDEN = json.loads((Path(__file__).parent / "vico.json").read_text())
S = GOLDEN["shapes"]
K, IPC, B, C, H = S["classes"], S["ipc"], S["batch_real"], S["channels"], S["size"]


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # the values were recorded with one thread (sums reorder with more)
    yield
    torch.set_num_threads(before)


def _net():
    spec = DATASETS.get("mnist")
    shape = SimpleNamespace(spec=spec, channels=C, size=H, num_classes=K, name="mnist", resnet_branch=spec.resnet_branch)
    torch.manual_seed(S["weights_seed"])
    return build_model("convnet3", shape)


def _inputs():
    torch.manual_seed(S["real_seed"])
    real = torch.randn(K, B, C, H, H)
    torch.manual_seed(S["syn_seed"])
    return real, torch.randn(K * IPC, C, H, H)


def _stats(t):
    t = t.detach().double()
    return {"sum": float(t.sum()), "norm": float(t.norm()), "slice": t.flatten()[:6].tolist()}


def _close(ours: dict, theirs: dict, rtol: float = 1e-5, atol: float = 1e-6):
    assert ours["norm"] == pytest.approx(theirs["norm"], rel=rtol, abs=atol)
    assert ours["sum"] == pytest.approx(theirs["sum"], rel=1e-4, abs=1e-4)  # a sum of +- terms: looser
    assert ours["slice"] == pytest.approx(theirs["slice"], rel=rtol, abs=atol)


def test_network_weights_from_a_seed_are_the_authors():
    ours = {name: _stats(p) for name, p in _net().named_parameters()}
    assert list(ours) == list(GOLDEN["init_weights"])
    for name, theirs in GOLDEN["init_weights"].items():
        _close(ours[name], theirs, rtol=1e-6, atol=1e-7)


def test_dc_ours_distance_and_one_image_step():
    real, syn = _inputs()
    net = _net()
    images = syn.clone().requires_grad_(True)
    opt = torch.optim.SGD([images], lr=0.1, momentum=0.5)  # DC's optimizer_img
    loss = per_class_matching_loss(net, real, images.view(K, IPC, C, H, H), None, None, "ours")
    golden = GOLDEN["dc_ours_step"]
    assert float(loss.detach()) == pytest.approx(golden["loss"], rel=1e-5)
    opt.zero_grad()
    loss.backward()
    _close(_stats(images.grad), golden["grad"])
    opt.step()
    _close(_stats(images), golden["images_after_step"])


@pytest.mark.parametrize("batched", [False, True])
def test_dm_loss_and_one_image_step(batched):
    real, syn = _inputs()
    net = _net()
    net.train()
    for p in net.parameters():
        p.requires_grad_(False)
    images = syn.clone().requires_grad_(True)
    opt = torch.optim.SGD([images], lr=1.0, momentum=0.5)  # DM's optimizer_img
    loss = dm_loss(net.embed, real, images.view(K, IPC, C, H, H), batched)
    golden = GOLDEN["dm_step"]
    assert float(loss.detach()) == pytest.approx(golden["loss"], rel=1e-5)
    opt.zero_grad()
    loss.backward()
    _close(_stats(images.grad), golden["grad"])
    opt.step()
    _close(_stats(images), golden["images_after_step"])


@pytest.mark.xfail(strict=True, reason="known divergence, not fixed yet: the authors' evaluate_synset drops the lr "
                   "after epoch E//2+2 (0-indexed ep == E//2+1) and rebuilds the SGD optimiser there (momentum reset); "
                   "ours drops one epoch earlier and keeps the momentum (MultiStepLR). Fixing it changes every "
                   "evaluation, so it waits for the suite's re-measure (docs/parity.md)")
def test_dsa_protocol_learning_rate_per_epoch():
    golden = GOLDEN["eval_schedule"]
    protocol = resolve_protocol("dsa", "mnist", epochs=golden["E"])
    net = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(net.parameters(), lr=protocol.lr, momentum=protocol.momentum)
    epochs = protocol.epochs + 1
    sched = _scheduler(protocol, opt, epochs)
    lrs = []
    for _ in range(epochs):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert len(lrs) == golden["epochs_trained"]
    assert lrs == pytest.approx(golden["lr_per_epoch"])
