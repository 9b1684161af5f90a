"""Golden step values from the authors' DC/DSA/DM code (VICO-UoE/DatasetCondensation), recorded by
running their functions on inputs both sides rebuild from seeds (tests/parity/vico.json holds the
values and their provenance: repository, commit, files, torch version, command). Ours is computed
here from the same inputs and must agree to float tolerance. The authors' code is not needed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from bench.evaluation.evaluate import _scheduler, resolve_protocol
from bench.nets.matching import per_class_matching_loss
from methods.dm import dm_loss
from tests.parity.golden import PRECISIONS, check_image_step, close, precision_settings, seeded_convnet, stats

GOLDEN = json.loads((Path(__file__).parent / "vico.json").read_text())
S = GOLDEN["shapes"]
K, IPC, B, C, H = S["classes"], S["ipc"], S["batch_real"], S["channels"], S["size"]


@pytest.fixture(params=list(PRECISIONS))
def precision(request):
    yield from precision_settings(request.param, GOLDEN if request.param == "float32" else GOLDEN["float64"])


def _net():
    return seeded_convnet(S, K)


def _inputs():
    torch.manual_seed(S["real_seed"])
    real = torch.randn(K, B, C, H, H)
    torch.manual_seed(S["syn_seed"])
    return real, torch.randn(K * IPC, C, H, H)


def test_network_weights_from_a_seed_are_the_authors(precision):
    ours = {name: stats(p) for name, p in _net().named_parameters()}
    assert list(ours) == list(precision.golden["init_weights"])
    for name, theirs in precision.golden["init_weights"].items():
        close(ours[name], theirs, precision)


def test_dc_ours_distance_and_one_image_step(precision):
    real, syn = _inputs()
    net = _net()
    images = syn.clone().requires_grad_(True)
    opt = torch.optim.SGD([images], lr=0.1, momentum=0.5)  # DC's optimizer_img
    loss = per_class_matching_loss(net, real, images.view(K, IPC, C, H, H), None, None, "ours")
    golden = precision.golden["dc_ours_step"]
    check_image_step(loss, images, opt, golden, precision)


@pytest.mark.parametrize("batched", [False, True])
def test_dm_loss_and_one_image_step(precision, batched):
    real, syn = _inputs()
    net = _net()
    net.train()
    for p in net.parameters():
        p.requires_grad_(False)
    images = syn.clone().requires_grad_(True)
    opt = torch.optim.SGD([images], lr=1.0, momentum=0.5)  # DM's optimizer_img
    loss = dm_loss(net.embed, real, images.view(K, IPC, C, H, H), batched)
    golden = precision.golden["dm_step"]
    check_image_step(loss, images, opt, golden, precision)


def test_dsa_protocol_learning_rate_per_epoch_and_momentum_restart():
    """The authors' evaluate_synset: lr 0.01 for epochs 0..E//2+1 (0-based), then 0.001 with a new
    SGD (momentum from zero). Measured from their code with E = 10: 7 epochs, then 4."""
    golden = GOLDEN["eval_schedule"]
    protocol = resolve_protocol("dsa", "mnist", epochs=golden["E"])
    net = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(net.parameters(), lr=protocol.lr, momentum=protocol.momentum)
    epochs = protocol.epochs + 1
    sched = _scheduler(protocol, opt, epochs)
    lrs, buffers_at_start = [], []
    for _ in range(epochs):
        lrs.append(opt.param_groups[0]["lr"])
        buffers_at_start.append(bool(opt.state))  # False: a fresh optimiser (no momentum yet)
        net(torch.ones(1, 2)).sum().backward()
        opt.step()
        sched.step()
    assert len(lrs) == golden["epochs_trained"]
    assert lrs == pytest.approx(golden["lr_per_epoch"])
    # one optimiser per value of golden["optimizer_of_epoch"]: empty state at each one's first epoch
    fresh = [k == 0 or golden["optimizer_of_epoch"][k] != golden["optimizer_of_epoch"][k - 1] for k in range(epochs)]
    assert [not b for b in buffers_at_start] == fresh
