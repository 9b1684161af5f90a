"""The synthetic set a method produces, in the form it is stored, and how it becomes training data."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F


def decode_multi_formation(images: torch.Tensor, factor: int) -> torch.Tensor:
    """IDC multi-formation: split each image into factor x factor crops, upsample each bilinearly.

    (N, C, H, W) -> (N * factor^2, C, H, W), crops of one image consecutive, row-major. When H is
    not divisible by the factor the image is padded with 0.5 first, as the authors do.
    """
    if factor == 1:
        return images
    n, c, h, w = images.shape
    ch, cw = -(-h // factor), -(-w // factor)
    pad_h, pad_w = ch * factor - h, cw * factor - w
    if pad_h or pad_w:
        images = F.pad(images, [0, pad_w, 0, pad_h], value=0.5)
    crops = images.view(n, c, factor, ch, factor, cw).permute(0, 2, 4, 1, 3, 5).reshape(n * factor * factor, c, ch, cw)
    return F.interpolate(crops, size=(h, w), mode="bilinear", align_corners=False)


@dataclass
class SyntheticSet:
    """``images`` are stored either normalised (``space='normalized'``, the DC/DSA/DM convention) or
    in [0, 1] (``space='unit'``, the IDC/DREAM convention); ``factor`` > 1 means multi-formation."""

    images: torch.Tensor
    labels: torch.Tensor
    space: str = "normalized"
    factor: int = 1
    pipeline: str = "vico"  # which normalisation statistics apply (CIFAR100 differs, see datasets)
    # a learning rate distilled with the images (MTT/TESLA's synthetic lr): the evaluation trains
    # with it under a protocol that asks for it (``learned_lr``); None for every other method
    lr: float | None = None
    # where the set came from (bench.distill fills it: resolved config, metrics); never stored with it
    info: dict = field(default_factory=dict, repr=False, compare=False)

    def training_tensors(self, dataset) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised, decoded images and their labels: what the evaluation network trains on."""
        images = self.images.detach()
        if self.space == "unit":  # IDC decodes [0, 1] images, then normalises them
            images = images.clamp(0, 1)
        images = decode_multi_formation(images, self.factor)
        if self.space == "unit":
            images = dataset.normalise(images, self.pipeline)
        # hard labels (N,) or soft ones (N, classes): TESLA's expert probabilities
        labels = self.labels.repeat_interleave(self.factor * self.factor, dim=0)
        return images, labels

    def state(self) -> dict:
        return {"images": self.images.detach().cpu(), "labels": self.labels.cpu(), "space": self.space,
                "factor": self.factor, "pipeline": self.pipeline, "lr": self.lr}

    @classmethod
    def from_state(cls, state: dict) -> "SyntheticSet":
        return cls(**state)
