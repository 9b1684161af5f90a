"""Gradient matching (DC/DSA, VICO ``utils.py:match_loss``) and its class-batched form.

Distances between the real and the synthetic gradients of one class, per parameter tensor:

* ``ours`` (``distance_wb``): conv weights (out, in, h, w) -> (out, in*h*w), 3-D tensors
  (out, a*b), linear weights kept, 1-D tensors (biases, norm affine) contribute 0; then
  sum over rows of 1 - <g_r, g_s> / (|g_r| |g_s| + 1e-6); summed over tensors.
* ``mse``: every gradient flattened and concatenated; sum of squared differences.
* ``cos``: the same concatenation; 1 - cos with +1e-6 in the denominator.

Two ways to compute the class-summed matching loss, with the same maths:

* :func:`per_class_matching_loss`: the authors' loop, one forward/backward per class.
* :func:`batched_matching_loss`: every class at once. The network is replicated once per class
  (grouped convolutions with ``groups = K``, per-class linear layers), so a single forward over all
  classes' images and one ``autograd.grad`` give each class's own gradients. This is exact for
  networks whose layers act on each sample alone (ConvNet with instance norm, or no norm): it is
  the per-class loop with the loop moved inside the kernels. Networks with other layers (batch
  norm, ResNets) fall back to the loop (:func:`supports_batching`).

IDC matches with its own metric in its own module.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from bench.nets.augment import DiffAugment, Draw

METRICS = ("ours", "mse", "cos")


# ---------------------------------------------------------------------------------- distances
def distance_wb(gwr: torch.Tensor, gws: torch.Tensor) -> torch.Tensor:
    """VICO's layer-wise, per-output-channel cosine distance for one parameter tensor."""
    shape = gwr.shape
    if len(shape) == 1:  # bias, norm affine: the authors return 0
        return torch.zeros((), dtype=gws.dtype, device=gws.device)
    if len(shape) in (3, 4):
        gwr = gwr.reshape(shape[0], -1)
        gws = gws.reshape(shape[0], -1)
    return torch.sum(1 - torch.sum(gwr * gws, dim=-1)
                     / (torch.norm(gwr, dim=-1) * torch.norm(gws, dim=-1) + 0.000001))


def match_loss(gw_syn: Sequence[torch.Tensor], gw_real: Sequence[torch.Tensor], metric: str = "ours") -> torch.Tensor:
    """The distance between one class's synthetic and real gradients (lists over parameters)."""
    if metric == "ours":
        return sum(distance_wb(r, s) for r, s in zip(gw_real, gw_syn))
    real = torch.cat([g.reshape(-1) for g in gw_real])
    syn = torch.cat([g.reshape(-1) for g in gw_syn])
    if metric == "mse":
        return torch.sum((syn - real) ** 2)
    if metric == "cos":
        return 1 - torch.sum(real * syn, dim=-1) / (torch.norm(real, dim=-1) * torch.norm(syn, dim=-1) + 0.000001)
    raise ValueError(f"unknown matching metric {metric!r}; known: {', '.join(METRICS)}")


def batched_match_loss(gw_syn: Sequence[torch.Tensor], gw_real: Sequence[torch.Tensor],
                       metric: str = "ours") -> torch.Tensor:
    """:func:`match_loss` summed over classes, for gradients with a leading class dimension K."""
    if metric == "ours":
        total = gw_syn[0].new_zeros(())
        for r, s in zip(gw_real, gw_syn):
            if r.dim() == 2:  # a 1-D parameter, stacked over classes
                continue
            k, out = r.shape[0], r.shape[1]
            r, s = r.reshape(k, out, -1), s.reshape(k, out, -1)
            total = total + torch.sum(1 - torch.sum(r * s, dim=-1)
                                      / (torch.norm(r, dim=-1) * torch.norm(s, dim=-1) + 0.000001))
        return total
    k = gw_real[0].shape[0]
    real = torch.cat([g.reshape(k, -1) for g in gw_real], dim=1)
    syn = torch.cat([g.reshape(k, -1) for g in gw_syn], dim=1)
    if metric == "mse":
        return torch.sum((syn - real) ** 2)
    if metric == "cos":
        return torch.sum(1 - torch.sum(real * syn, dim=-1)
                         / (torch.norm(real, dim=-1) * torch.norm(syn, dim=-1) + 0.000001))
    raise ValueError(f"unknown matching metric {metric!r}; known: {', '.join(METRICS)}")


# ---------------------------------------------------------------------------------- augmentation
def siamese_per_class(augment: DiffAugment | None, real: torch.Tensor, syn: torch.Tensor,
                      draws: Sequence[Draw] | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Class c's real batch ``real[c]`` and synthetic batch ``syn[c]`` both get ``draws[c]`` (one
    shared draw per class, as VICO's time-seeded Siamese DSA). Classes that drew the same ops are
    augmented in one vectorised call with per-sample parameters expanded from their class's draw."""
    if augment is None or draws is None:
        return real, syn
    out_real, out_syn = torch.empty_like(real), torch.empty_like(syn)
    groups: dict[tuple[str, ...], list[int]] = {}
    for c, draw in enumerate(draws):
        if draw.per_sample_op is not None:
            raise ValueError("per-sample-choice augmentation has no Siamese form")
        groups.setdefault(tuple(draw.ops), []).append(c)
    for ops, classes in groups.items():
        ix = torch.tensor(classes, device=real.device)
        us = {op: torch.cat([draws[c].uniforms[op] for c in classes]).to(real.device) for op in ops}
        for src, dst in ((real, out_real), (syn, out_syn)):  # separately: real stays off syn's graph
            per = src.shape[1]
            x = src[ix].reshape(-1, *src.shape[2:])
            y = augment.apply(x, Draw(list(ops), {op: u.repeat_interleave(per, 0) for op, u in us.items()}))
            dst[ix] = y.view(len(classes), per, *src.shape[2:])
    return out_real, out_syn


# ---------------------------------------------------------------------------------- per-class loop
def per_class_matching_loss(net: nn.Module, real: torch.Tensor, syn: torch.Tensor,
                            augment: DiffAugment | None = None, draws: Sequence[Draw] | None = None,
                            metric: str = "ours") -> torch.Tensor:
    """The authors' loop. ``real``: (K, N, C, H, W), class c's real batch in ``real[c]``;
    ``syn``: (K, M, C, H, W) with autograd to the synthetic images. Returns the class-summed loss."""
    params = [p for p in net.parameters()]
    loss = syn.new_zeros(())
    for c in range(real.shape[0]):
        img_real, img_syn = real[c], syn[c]
        if augment is not None and draws is not None:
            img_real, img_syn = augment.apply(img_real, draws[c]), augment.apply(img_syn, draws[c])
        lab_real = torch.full((img_real.shape[0],), c, dtype=torch.long, device=real.device)
        lab_syn = torch.full((img_syn.shape[0],), c, dtype=torch.long, device=real.device)
        gw_real = torch.autograd.grad(F.cross_entropy(net(img_real), lab_real), params)
        gw_real = [g.detach().clone() for g in gw_real]
        gw_syn = torch.autograd.grad(F.cross_entropy(net(img_syn), lab_syn), params, create_graph=True)
        loss = loss + match_loss(gw_syn, gw_real, metric)
    return loss


# ---------------------------------------------------------------------------------- batched
_ELEMENTWISE = (nn.ReLU, nn.Identity, nn.AvgPool2d, nn.MaxPool2d, nn.LeakyReLU, nn.Sigmoid, nn.Tanh)


def supports_batching(net: nn.Module) -> bool:
    """True for a ConvNet-like model (``features`` of per-sample layers, then ``classifier``)."""
    features = getattr(net, "features", None)
    if not isinstance(features, nn.Sequential) or not isinstance(getattr(net, "classifier", None), nn.Linear):
        return False
    return all(isinstance(m, (nn.Conv2d, nn.GroupNorm, *_ELEMENTWISE)) for m in features)


def replicate_params(net: nn.Module, k: int) -> list[torch.Tensor]:
    """One detached copy of every parameter per class: leaves of shape (K, *p.shape)."""
    return [p.detach().unsqueeze(0).repeat(k, *([1] * p.dim())).requires_grad_(True) for p in net.parameters()]


def grouped_forward(net: nn.Module, params: Sequence[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Class c's images ``x[c]`` through class c's copy ``params[i][c]``: x (K, B, C, H, W) ->
    logits (B, K, classes). Parameters are consumed in ``net.parameters()`` order."""
    k, b = x.shape[:2]
    h = x.transpose(0, 1).reshape(b, k * x.shape[2], *x.shape[3:])
    it = iter(params)
    for m in net.features:
        if isinstance(m, nn.Conv2d):
            w = next(it)
            bias = next(it).reshape(-1) if m.bias is not None else None
            h = F.conv2d(h, w.reshape(-1, *w.shape[2:]), bias, m.stride, m.padding, m.dilation, m.groups * k)
        elif isinstance(m, nn.GroupNorm):
            w, bias = (next(it).reshape(-1), next(it).reshape(-1)) if m.affine else (None, None)
            h = F.group_norm(h, m.num_groups * k, w, bias, m.eps)
        else:
            h = m(h)
    feats = h.reshape(b, k, -1)  # per class (C, h, w) flattened, as net.embed does
    w, bias = next(it), next(it)
    return torch.einsum("bki,koi->bko", feats, w) + bias.unsqueeze(0)


def _class_summed_ce(logits: torch.Tensor) -> torch.Tensor:
    """Sum over classes c of the mean cross-entropy of class c's batch (labels all c)."""
    b, k, _ = logits.shape
    labels = torch.arange(k, device=logits.device).repeat(b)
    return F.cross_entropy(logits.reshape(b * k, -1), labels, reduction="sum") / b


def _small_input_conv(m: nn.Conv2d) -> bool:
    """The first layer (few input channels): computed as patches @ weight, because torch's CPU
    convolution_backward for it is pathologically slow (about 8x the cost of layer 2 here)."""
    w = m.weight
    return (m.groups == 1 and tuple(m.stride) == (1, 1) and tuple(m.dilation) == (1, 1)
            and isinstance(m.padding, tuple) and w.shape[1] * w.shape[2] * w.shape[3] <= 32)


def _patches(a: torch.Tensor, m: nn.Conv2d) -> torch.Tensor:
    """(B, Cin, H, W) -> (B, Cin*kh*kw, Hout*Wout), in F.unfold's order, via strided views."""
    kh, kw = m.weight.shape[2:]
    ph, pw = m.padding
    xp = F.pad(a, [pw, pw, ph, ph])
    cols = xp.unfold(2, kh, 1).unfold(3, kw, 1)  # (B, Cin, Hout, Wout, kh, kw)
    return cols.permute(0, 1, 4, 5, 2, 3).reshape(a.shape[0], -1, cols.shape[2] * cols.shape[3])


def _conv_weight_grads(m: nn.Conv2d, a: torch.Tensor, g: torch.Tensor, k: int) -> torch.Tensor:
    """Per-class weight gradients of a conv layer from its input ``a`` (K*B, ...) (or, for the
    first layer, its patches) and the gradient ``g`` w.r.t. its output: (K, *weight.shape)."""
    w = m.weight
    if a.dim() == 3:  # the first layer: a holds its patches (K*B, D, L)
        per_sample = torch.bmm(g.flatten(2), a.transpose(1, 2))  # (K*B, O, D)
        return per_sample.view(k, -1, *per_sample.shape[1:]).sum(1).view(k, *w.shape)
    grads = []
    for ac, gc in zip(a.chunk(k), g.chunk(k)):
        grads.append(torch.ops.aten.convolution_backward(
            gc, ac, w.detach(), None, list(m.stride), list(m.padding), list(m.dilation), False, [0, 0],
            m.groups, [False, True, False])[1])
    return torch.stack(grads)


def _layer_parameter_grads(m: nn.Module, a: torch.Tensor, g: torch.Tensor, k: int, b: int,
                           with_1d: bool) -> list[torch.Tensor]:
    """Per-class gradients (K, *p.shape) of one layer's parameters from its saved input ``a`` and
    output gradient ``g`` (rows grouped by class, ``b`` per class)."""
    gs = []
    if isinstance(m, nn.Conv2d):
        gs.append(_conv_weight_grads(m, a, g, k))
        if m.bias is not None:
            gs.append(g.view(k, b, g.shape[1], -1).sum(dim=(1, 3)) if with_1d else g.new_zeros(k, g.shape[1]))
    elif isinstance(m, nn.Linear):
        gs.append(torch.bmm(g.view(k, b, -1).transpose(1, 2), a.view(k, b, -1)))
        if m.bias is not None:
            gs.append(g.view(k, b, -1).sum(1) if with_1d else g.new_zeros(k, g.shape[1]))
    elif m.affine:  # GroupNorm: gradients of the affine scale and shift
        if with_1d:
            xhat = F.group_norm(a.detach(), m.num_groups, None, None, m.eps)
            gv = g.view(k, b, g.shape[1], -1)
            gs.append((gv * xhat.view_as(gv)).sum(dim=(1, 3)))
            gs.append(gv.sum(dim=(1, 3)))
        else:
            gs += [g.new_zeros(k, g.shape[1]), g.new_zeros(k, g.shape[1])]
    return gs


def per_class_real_gradients(net: nn.Module, real: torch.Tensor, with_1d: bool = True) -> list[torch.Tensor]:
    """Each class's gradient of its mean cross-entropy (labels: the class index) w.r.t. every
    parameter, from one forward and one backward over all classes' images at once.

    ``real``: (K, B, C, H, W). Returns, in ``net.parameters()`` order, tensors (K, *p.shape).
    The backward propagates only through activations; each layer's per-class parameter gradients
    are then contracted from its saved input and output gradient, class by class. Exact for
    ConvNet-like nets (:func:`supports_batching`): every layer acts on each sample alone.
    ``with_1d=False`` returns zeros for 1-D parameters (the ``ours`` distance ignores them)."""
    k, b = real.shape[:2]
    h = real.reshape(k * b, *real.shape[2:])
    layers, outputs, inputs = [], [], []
    det = lambda t: None if t is None else t.detach()  # noqa: E731
    with torch.enable_grad():
        for m in list(net.features) + [nn.Flatten(), net.classifier]:
            if isinstance(m, nn.Conv2d) and _small_input_conv(m) and not h.requires_grad:
                cols = _patches(h, m)
                out = torch.matmul(m.weight.detach().reshape(m.weight.shape[0], -1), cols)
                if m.bias is not None:
                    out = out + m.bias.detach().view(1, -1, 1)
                inputs.append(cols)
                h = out.view(out.shape[0], out.shape[1], h.shape[2] + 2 * m.padding[0] - m.weight.shape[2] + 1, -1)
            elif isinstance(m, nn.Conv2d):
                inputs.append(h)
                h = F.conv2d(h, m.weight.detach(), det(m.bias), m.stride, m.padding, m.dilation, m.groups)
            elif isinstance(m, nn.Linear):
                inputs.append(h)
                h = F.linear(h, m.weight.detach(), det(m.bias))
            elif isinstance(m, nn.GroupNorm):
                inputs.append(h)
                h = F.group_norm(h, m.num_groups, det(m.weight), det(m.bias), m.eps)
            else:  # never in place: the saved layer outputs must keep their values and graph
                h = F.relu(h) if isinstance(m, nn.ReLU) else m(h.clone() if getattr(m, "inplace", False) else h)
                continue
            if not h.requires_grad:
                h.requires_grad_(True)
            layers.append(m)
            outputs.append(h)
        labels = torch.arange(k, device=h.device).repeat_interleave(b)
        loss = F.cross_entropy(h, labels, reduction="sum") / b
        grads_out = torch.autograd.grad(loss, outputs)
    per_layer = {m: _layer_parameter_grads(m, a, g, k, b, with_1d) for m, a, g in zip(layers, inputs, grads_out)}
    grads = []
    for m in list(net.features) + [net.classifier]:
        grads.extend(per_layer.get(m, []))
    return [g.detach() for g in grads]


def per_class_syn_gradients(net: nn.Module, syn: torch.Tensor, mode: str = "grouped") -> list[torch.Tensor]:
    """Each class's synthetic gradient, differentiable w.r.t. ``syn`` (K, M, C, H, W)."""
    k = syn.shape[0]
    params = list(net.parameters())
    if mode == "loop":
        per = []
        for c in range(k):
            lab = torch.full((syn.shape[1],), c, dtype=torch.long, device=syn.device)
            per.append(torch.autograd.grad(F.cross_entropy(net(syn[c]), lab), params, create_graph=True))
        return [torch.stack(gs) for gs in zip(*per)]
    reps = replicate_params(net, k)
    return list(torch.autograd.grad(_class_summed_ce(grouped_forward(net, reps, syn)), reps, create_graph=True))


def batched_matching_loss(net: nn.Module, real: torch.Tensor, syn: torch.Tensor,
                          augment: DiffAugment | None = None, draws: Sequence[Draw] | None = None,
                          metric: str = "ours", syn_mode: str = "grouped") -> torch.Tensor:
    """:func:`per_class_matching_loss` computed for all classes at once (same arguments)."""
    if not supports_batching(net):
        return per_class_matching_loss(net, real, syn, augment, draws, metric)
    real, syn = siamese_per_class(augment, real, syn, draws)
    gw_real = per_class_real_gradients(net, real, with_1d=metric != "ours")
    gw_syn = per_class_syn_gradients(net, syn, syn_mode)
    return batched_match_loss(gw_syn, gw_real, metric)
