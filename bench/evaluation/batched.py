"""The networks of one evaluation trained together: ``torch.func.stack_module_state`` stacks their
parameters, ``vmap`` runs their forward and backward as one, and one SGD steps them all (SGD is
elementwise, so stepping the stacked tensors is stepping each network).

Each network keeps everything the sequential path gives it: its own initialisation (built after
``seed_everything(its seed)``, as there), and its own random stream for the data order and the
augmentation draws (a generator started from the global state its initialisation left, which is
where the sequential path's draws continue). The per-network accuracies therefore equal the
sequential path's up to float rounding of the batched kernels (tested).

Not covered, refused in one line: networks with batch-norm buffers (vmap cannot update running
statistics in place) and CutMix (the sequential path draws its Beta from torch's global stream,
which a generator cannot replay).
"""

from __future__ import annotations

import copy
import time

import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, stack_module_state, vmap

from bench.core.errors import BenchError
from bench.core.seeding import seed_everything
from bench.evaluation.train import TrainingDiverged
from bench.nets.models import build_model


def _loss(base, params, buffers, x, y):
    return F.cross_entropy(functional_call(base, (params, buffers), (x,)), y)


@torch.no_grad()
def _accuracy(base, params, buffers, k: int, x: torch.Tensor, y: torch.Tensor, batch: int = 1024) -> float:
    one = {n: p[k] for n, p in params.items()}
    bufs = {n: b[k] for n, b in buffers.items()}
    base.eval()
    correct = sum(int((functional_call(base, (one, bufs), (x[i:i + batch],)).argmax(1) == y[i:i + batch]).sum())
                  for i in range(0, len(x), batch))
    base.train()
    return 100.0 * correct / len(x)


def train_and_test_together(model_name: str, images: torch.Tensor, labels: torch.Tensor, dataset, protocol,
                            seeds: list[int], test_x: torch.Tensor, test_y: torch.Tensor, epochs: int,
                            make_scheduler, augment, check_at: set[int]):
    """(last accuracy, best check, {epoch: accuracy}) per network, and the seconds all took."""
    if protocol.cutmix_p > 0:
        raise BenchError("batched evaluation does not do CutMix (its Beta draw is not replayable per network); "
                         "train them one after another (without --eval-together)")
    device = images.device
    models, generators = [], []
    for seed in seeds:
        seed_everything(seed)
        models.append(build_model(model_name, dataset).to(device))
        generators.append(torch.Generator().set_state(torch.get_rng_state()))  # where its draws continue
    if any(b.numel() for m in models for b in m.buffers()):
        raise BenchError(f"batched evaluation needs a model without batch-norm statistics, not {model_name!r}; "
                         "train them one after another (without --eval-together)")
    params, buffers = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")
    optimizer = torch.optim.SGD(list(params.values()), lr=protocol.lr, momentum=protocol.momentum,
                                weight_decay=protocol.weight_decay)
    scheduler = make_scheduler(optimizer)
    step = vmap(grad(lambda p, b, x, y: _loss(base, p, b, x, y)), in_dims=(0, 0, 0, 0))
    n, m = len(images), len(seeds)
    checks: list[dict[int, float]] = [{} for _ in seeds]
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        orders = [torch.randperm(n, generator=g).to(device) for g in generators]
        for i in range(0, n, protocol.batch_size):
            xs, ys = [], []
            for k in range(m):
                idx = orders[k][i:i + protocol.batch_size]
                x = images[idx]
                xs.append(augment(x, generator=generators[k]) if augment is not None else x)
                ys.append(labels[idx])
            grads = step(params, buffers, torch.stack(xs), torch.stack(ys))
            for name, p in params.items():
                p.grad = grads[name]
            optimizer.step()
        if not all(torch.isfinite(p).all() for p in params.values()):
            raise TrainingDiverged(f"training became non-finite in epoch {epoch}")
        scheduler.step()
        if epoch in check_at:
            for k in range(m):
                checks[k][epoch] = _accuracy(base, params, buffers, k, test_x, test_y)
    seconds = time.perf_counter() - start
    return [(c[epochs], max(c.values()), c) for c in checks], seconds
