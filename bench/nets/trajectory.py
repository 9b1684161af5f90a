"""Trajectory matching's arithmetic (MTT, TESLA): a network run on one flat parameter vector, the
student's SGD steps on the synthetic set from an expert's parameters, and the gradient of the
normalised parameter distance

    L = ||theta_N - theta*||^2 / ||theta_0 - theta*||^2,   theta_{i+1} = theta_i - alpha g_i,
    g_i = grad_theta CE(f(x_i; theta_i), y_i)

with respect to the synthetic images and the synthetic lr alpha, computed three ways:

* :func:`unrolled_meta_gradient` (MTT): autograd through the whole unroll; its graph holds every
  step's activations, so memory grows with the number of steps.
* :func:`adjoint_meta_gradient` (TESLA, ``exact``): the same gradient, computed backwards one step at
  a time. With lambda_N = dL/dtheta_N, each step i = N-1..0 contributes -alpha lambda_{i+1}^T dg_i/dx
  to the images, -lambda_{i+1}^T g_i to alpha, and lambda_i = lambda_{i+1} - alpha H_i lambda_{i+1};
  one step's graph exists at a time (plus the parameter vectors), so activation memory is flat in N.
* the same function with ``propagate=False`` (TESLA, ``authors``): what TESLA's ``distill.py``
  computes, lambda frozen at lambda_N (every theta_i held constant), and the image part halved
  (``2 * torch.autograd.grad(...)`` repeats the tuple instead of doubling it: justincui03/tesla
  issue #5).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch.func import functional_call


class FlatNetwork:
    """``net`` evaluated at a flat parameter vector (MTT's ``ReparamModule``), via
    ``torch.func.functional_call``; the order is ``named_parameters``'."""

    def __init__(self, net: torch.nn.Module):
        self.net = net
        named = list(net.named_parameters())
        self.names = [n for n, _ in named]
        self.shapes = [p.shape for _, p in named]
        self.numels = [p.numel() for _, p in named]

    def flatten(self, params=None) -> torch.Tensor:
        tensors = params if params is not None else [p for p in self.net.parameters()]
        return torch.cat([t.detach().reshape(-1) for t in tensors])

    def __call__(self, x: torch.Tensor, flat: torch.Tensor) -> torch.Tensor:
        pieces = flat.split(self.numels)
        params = {n: t.view(shape) for n, t, shape in zip(self.names, pieces, self.shapes)}
        return functional_call(self.net, params, (x,))


@dataclass
class StudentBatches:
    """The synthetic batches of one unroll, drawn up front so every way of computing the gradient
    sees the same ones: step i uses images[indices[i]], augmented by ``augment(x, i)``, which replays
    step i's draw."""

    indices: list[torch.Tensor]
    augment: Callable | None = None  # (images, step) -> augmented images; F.cross_entropy takes hard or soft targets

    @classmethod
    def draw(cls, n_images: int, steps: int, batch: int, device, generator=None, augment=None) -> "StudentBatches":
        """MTT's order: a fresh permutation split into ``batch``-sized chunks, taken from the end."""
        chunks: list[torch.Tensor] = []
        indices = []
        for _ in range(steps):
            if not chunks:
                chunks = list(torch.randperm(n_images, device=device, generator=generator).split(batch or n_images))
            indices.append(chunks.pop())
        return cls(indices, augment)

    def inputs(self, images: torch.Tensor, step: int) -> torch.Tensor:
        x = images[self.indices[step]]
        return self.augment(x, step) if self.augment is not None else x


def normalised_distance(theta_n, start, target) -> torch.Tensor:
    return torch.sum((theta_n - target) ** 2) / torch.sum((start - target) ** 2)


def unrolled_meta_gradient(model: FlatNetwork, images, labels, lr, start, target, batches: StudentBatches):
    """(loss, d loss / d images, d loss / d lr) by autograd through the unroll (MTT)."""
    theta = start.clone().requires_grad_(True)
    params = theta
    for step in range(len(batches.indices)):
        x = batches.inputs(images, step)
        ce = F.cross_entropy(model(x, params), labels[batches.indices[step]])
        grad = torch.autograd.grad(ce, params, create_graph=True)[0]
        params = params - lr * grad
    loss = normalised_distance(params, start, target)
    image_grad, lr_grad = torch.autograd.grad(loss, [images, lr])
    return loss.detach(), image_grad, lr_grad


def adjoint_meta_gradient(model: FlatNetwork, images, labels, lr, start, target, batches: StudentBatches,
                          propagate: bool = True):
    """(loss, d loss / d images, d loss / d lr) one step's graph at a time (TESLA). ``propagate``:
    the exact gradient (equal to :func:`unrolled_meta_gradient`'s); False: the TESLA code's."""
    alpha = float(lr.detach())
    steps = len(batches.indices)
    thetas = [start.detach()]
    for step in range(steps):  # forward: parameters only, no graph kept
        theta = thetas[-1].clone().requires_grad_(True)
        x = batches.inputs(images.detach(), step)
        ce = F.cross_entropy(model(x, theta), labels[batches.indices[step]])
        grad = torch.autograd.grad(ce, theta)[0]
        thetas.append((theta - alpha * grad).detach())
    distance = torch.sum((start - target) ** 2)
    loss = normalised_distance(thetas[-1], start, target)
    adjoint = 2 * (thetas[-1] - target) / distance  # dL/dtheta_N
    image_grad = torch.zeros_like(images)
    lr_grad = torch.zeros((), dtype=start.dtype, device=start.device)
    for step in reversed(range(steps)):  # backward: one step's graph at a time
        theta = thetas[step].clone().requires_grad_(True)
        leaf = images.detach().requires_grad_(True)
        x = batches.inputs(leaf, step)
        ce = F.cross_entropy(model(x, theta), labels[batches.indices[step]])
        grad = torch.autograd.grad(ce, theta, create_graph=True)[0]
        lr_grad -= torch.dot(adjoint, grad.detach())
        if propagate:
            h_lambda, x_part = torch.autograd.grad(grad, [theta, leaf], grad_outputs=-alpha * adjoint)
            adjoint = adjoint + h_lambda
            image_grad += x_part
        else:
            (x_part,) = torch.autograd.grad(grad, [leaf], grad_outputs=-alpha * adjoint)
            image_grad += x_part / 2  # TESLA's distill.py: the factor 2 multiplies a tuple
    return loss.detach(), image_grad, lr_grad.reshape(lr.shape)
