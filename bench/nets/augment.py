"""Differentiable augmentation (DSA), vectorised over the batch.

Parameters are those of the VICO code (``ParamDiffAug``, algorithms.md 1.3). A call is split in two:
:meth:`DiffAugment.draw` samples every random number (uniforms only, so the draw does not depend on
the image size) and :meth:`DiffAugment.apply` applies it. That makes the two modes exact:

* Siamese: one draw for the whole batch (``shared=True``), applied unchanged to the real and the
  synthetic batch, so both see the very same transform. The authors get the same effect by
  re-seeding a global RNG with a wall-clock seed; a draw object is deterministic and resumable.
* per-sample: every image gets its own parameters (network training and evaluation).

Three ways to compose the listed operations:

* ``dsa`` (VICO ``aug_mode='S'``): one category drawn uniformly per call (``color`` counts as one:
  brightness, saturation and contrast together).
* ``idc`` (IDC/DREAM ``DiffAug``): flip and colour always, then one of the geometric ops
  (crop/scale/rotate) at random, then cutout always.
* ``per_sample_choice``: each image picks its own single op; used to approximate the DC paper's
  ``crop_scale_rotate`` augmentation for MNIST (scipy rotation and mean padding in the original).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

GEOMETRIC = ("crop", "scale", "rotate")
COLOR = ("brightness", "saturation", "contrast")


@dataclass(frozen=True)
class DSAParams:
    prob_flip: float = 0.5
    ratio_scale: float = 1.2
    ratio_rotate: float = 15.0
    ratio_crop_pad: float = 0.125
    ratio_cutout: float = 0.5
    brightness: float = 1.0
    saturation: float = 2.0
    contrast: float = 0.5


# The DC paper's augmentation for MNIST: crop +-4 px of 28, scale +-0.2, rotate +-45 degrees.
DC_PARAMS = DSAParams(ratio_scale=1.2, ratio_rotate=45.0, ratio_crop_pad=4 / 28)


def parse_strategy(strategy: str) -> list[str]:
    ops = [op for op in strategy.split("_") if op and op != "none"]
    known = {"color", "flip", "cutout", *GEOMETRIC}
    unknown = [op for op in ops if op not in known]
    if unknown:
        raise ValueError(f"unknown augmentation op(s) {unknown}; known: {sorted(known)}")
    return ops


@dataclass
class Draw:
    """The random numbers of one augmentation call. ``n`` is 1 for a shared (Siamese) draw."""

    ops: list[str]  # ops applied to the whole batch, in order
    uniforms: dict[str, torch.Tensor]
    per_sample_op: torch.Tensor | None = None  # for per_sample_choice: index into `choices`
    choices: tuple[str, ...] = ()


class DiffAugment:
    def __init__(self, strategy: str, compose: str = "dsa", params: DSAParams = DSAParams()):
        if compose not in ("dsa", "idc", "per_sample_choice"):
            raise ValueError(f"unknown compose mode {compose!r}")
        self.strategy = strategy
        self.ops = parse_strategy(strategy)
        self.compose = compose
        self.params = params

    def __repr__(self) -> str:
        return f"DiffAugment({self.strategy!r}, compose={self.compose!r})"

    # ------------------------------------------------------------------ drawing
    def _choose(self, options: list[str], generator: torch.Generator | None) -> str:
        return options[int(torch.randint(len(options), (1,), generator=generator))]

    def draw(self, batch_size: int, shared: bool = False, generator: torch.Generator | None = None,
             device: torch.device | str | None = None) -> Draw:
        """The call's random numbers, on ``device`` (the run's device: no host-to-device copy per
        call), or on ``generator``'s device when one is given. The op choice stays a CPU draw: Python
        picks the op, and reading a device number back would synchronise. On a CPU nothing differs."""
        n = 1 if shared else batch_size
        device = generator.device if generator is not None else torch.device(device or "cpu")
        if not self.ops:
            return Draw([], {})
        if self.compose == "dsa":
            ops = [self._choose(self.ops, generator)]
        elif self.compose == "idc":
            geometric = [op for op in self.ops if op in GEOMETRIC]
            ops = [op for op in ("flip", "color") if op in self.ops]
            if geometric:
                ops.append(self._choose(geometric, generator))
            if "cutout" in self.ops:
                ops.append("cutout")
        else:
            ops = []
        expanded = [sub for op in ops for sub in (COLOR if op == "color" else (op,))]
        uniforms = {}
        for op in expanded:
            # two numbers for the 2-D ops, one otherwise; drawn in a fixed order for repeatability
            width = 2 if op in ("crop", "scale", "cutout") else 1
            uniforms[op] = torch.rand(n, width, generator=generator, device=device)
        draw = Draw(expanded, uniforms)
        if self.compose == "per_sample_choice":
            draw.choices = tuple(op for op in self.ops if op in GEOMETRIC)
            draw.per_sample_op = torch.randint(len(draw.choices), (n,), generator=generator, device=device)
            for op in draw.choices:
                width = 2 if op in ("crop", "scale") else 1
                draw.uniforms[op] = torch.rand(n, width, generator=generator, device=device)
        return draw

    # ------------------------------------------------------------------ applying
    def apply(self, x: torch.Tensor, draw: Draw) -> torch.Tensor:
        for op in draw.ops:
            x = getattr(self, f"_{op}")(x, self._expand(draw.uniforms[op], x))
        if draw.per_sample_op is not None:
            choice = self._expand(draw.per_sample_op.view(-1, 1).float(), x).view(-1)
            out = x
            for k, op in enumerate(draw.choices):
                transformed = getattr(self, f"_{op}")(x, self._expand(draw.uniforms[op], x))
                out = torch.where((choice == k).view(-1, 1, 1, 1), transformed, out)
            x = out
        # the crop's gather leaves channels-last strides, and a ConvNet fed channels-last runs its
        # convolutions and GroupNorm in that layout, 15-20 % slower on a CPU (IDC's network update:
        # 283 against 234 ms a step). Both authors' DiffAugment end with .contiguous() too.
        return x.contiguous()

    @staticmethod
    def _expand(u: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        u = u.to(x.device)
        return u.expand(x.shape[0], -1) if u.shape[0] == 1 else u

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Per-sample augmentation of one batch."""
        return self.apply(x, self.draw(x.shape[0], shared=False, generator=generator, device=x.device))

    def siamese(self, *batches: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, ...]:
        """One shared draw applied to every batch: identical transforms for real and synthetic."""
        draw = self.draw(1, shared=True, generator=generator, device=batches[0].device)
        return tuple(self.apply(b, draw) for b in batches)

    # ------------------------------------------------------------------ ops (u: (B, k) uniforms)
    def _affine(self, x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        # align_corners=False: torch's default, which both authors' code bases use (docs/parity.md)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, align_corners=False)

    def _scale(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        r = self.params.ratio_scale
        s = u * (r - 1.0 / r) + 1.0 / r
        theta = torch.zeros(x.shape[0], 2, 3, device=x.device, dtype=x.dtype)
        theta[:, 0, 0] = s[:, 0]
        theta[:, 1, 1] = s[:, 1]
        return self._affine(x, theta)

    def _rotate(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        angle = (u[:, 0] - 0.5) * 2 * self.params.ratio_rotate / 180 * math.pi
        cos, sin = torch.cos(angle), torch.sin(angle)
        theta = torch.zeros(x.shape[0], 2, 3, device=x.device, dtype=x.dtype)
        # the authors' matrix [[cos, -sin], [sin, cos]] (VICO rand_rotate, IDC rotate_fn): for a
        # given draw the same direction as theirs, so one draw gives their image (tests/parity)
        theta[:, 0, 0], theta[:, 0, 1] = cos, -sin
        theta[:, 1, 0], theta[:, 1, 1] = sin, cos
        return self._affine(x, theta)

    def _flip(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return torch.where((u[:, 0] < self.params.prob_flip).view(-1, 1, 1, 1), x.flip(3), x)

    def _brightness(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return x + (u.view(-1, 1, 1, 1) - 0.5) * self.params.brightness

    def _saturation(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=1, keepdim=True)
        return (x - mean) * (u.view(-1, 1, 1, 1) * self.params.saturation) + mean

    def _contrast(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        return (x - mean) * (u.view(-1, 1, 1, 1) + self.params.contrast) + mean

    def _crop(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Integer translation by up to ratio*size pixels, zero fill (VICO's rand_crop)."""
        b, _, h, w = x.shape
        sh, sw = int(h * self.params.ratio_crop_pad + 0.5), int(w * self.params.ratio_crop_pad + 0.5)
        tx = torch.floor(u[:, 0] * (2 * sh + 1)).long().clamp(max=2 * sh) - sh
        ty = torch.floor(u[:, 1] * (2 * sw + 1)).long().clamp(max=2 * sw) - sw
        rows = (torch.arange(h, device=x.device).view(1, h) + tx.view(b, 1) + 1).clamp(0, h + 1)
        cols = (torch.arange(w, device=x.device).view(1, w) + ty.view(b, 1) + 1).clamp(0, w + 1)
        padded = F.pad(x, [1, 1, 1, 1])
        batch = torch.arange(b, device=x.device).view(b, 1, 1)
        out = padded.permute(0, 2, 3, 1)[batch, rows.view(b, h, 1), cols.view(b, 1, w)]
        return out.permute(0, 3, 1, 2)

    def _cutout(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Zero a ratio*size square at a random centre (VICO's rand_cutout)."""
        b, _, h, w = x.shape
        ch, cw = int(h * self.params.ratio_cutout + 0.5), int(w * self.params.ratio_cutout + 0.5)
        span_h, span_w = h + (1 - ch % 2), w + (1 - cw % 2)
        cx = torch.floor(u[:, 0] * span_h).long().clamp(max=span_h - 1) - ch // 2
        cy = torch.floor(u[:, 1] * span_w).long().clamp(max=span_w - 1) - cw // 2
        rows = torch.arange(h, device=x.device).view(1, h)
        cols = torch.arange(w, device=x.device).view(1, w)
        in_rows = (rows >= cx.view(b, 1)) & (rows < cx.view(b, 1) + ch)
        in_cols = (cols >= cy.view(b, 1)) & (cols < cy.view(b, 1) + cw)
        mask = ~(in_rows.view(b, h, 1) & in_cols.view(b, 1, w))
        return x * mask.view(b, 1, h, w).to(x.dtype)


@dataclass(frozen=True)
class CutMixDraw:
    """One CutMix draw: lambda, the partner permutation and the box centre (row, column)."""

    lam: float
    perm: torch.Tensor
    centre: tuple[int, int]


def draw_cutmix(x: torch.Tensor, beta: float = 1.0, generator: torch.Generator | None = None) -> CutMixDraw:
    """lambda ~ Beta(beta, beta), a random permutation of the batch, a uniform box centre (drawn in
    this order, as the authors' train_epoch: lambda, permutation, row, column)."""
    b, _, h, w = x.shape
    lam = float(torch.distributions.Beta(beta, beta).sample()) if generator is None else float(
        _beta_with_generator(beta, generator)
    )
    perm = torch.randperm(b, generator=generator).to(x.device)
    row = int(torch.randint(h, (1,), generator=generator))
    col = int(torch.randint(w, (1,), generator=generator))
    return CutMixDraw(lam, perm, (row, col))


def cutmix(x: torch.Tensor, y: torch.Tensor, beta: float = 1.0, generator: torch.Generator | None = None,
           draw: CutMixDraw | None = None):
    """IDC's CutMix: a box of side sqrt(1 - lambda) x size around the drawn centre (clipped to the
    image) is pasted from the partner image. ``draw`` fixes the draw (parity tests); else one is made.

    Returns the mixed batch, both label vectors and the weight r of the first label.
    """
    _, _, h, w = x.shape
    d = draw or draw_cutmix(x, beta, generator)
    cut = math.sqrt(1.0 - d.lam)
    cut_h, cut_w = int(h * cut), int(w * cut)
    cy, cx = d.centre
    y1, y2 = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, h)
    x1, x2 = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, w)
    mixed = x.clone()
    mixed[:, :, y1:y2, x1:x2] = x[d.perm, :, y1:y2, x1:x2]
    ratio = 1.0 - ((y2 - y1) * (x2 - x1) / (h * w))
    return mixed, y, y[d.perm], ratio


def _beta_with_generator(beta: float, generator: torch.Generator) -> float:
    # Beta(a, a) from two Gamma draws is not generator-aware in torch; for a = 1 it is uniform.
    if beta == 1.0:
        return float(torch.rand(1, generator=generator))
    g1 = torch._standard_gamma(torch.full((1,), beta))
    g2 = torch._standard_gamma(torch.full((1,), beta))
    return float(g1 / (g1 + g2))
