"""A ConvNet trained on the full training set, cached on disk: Herding selects with its features
(the IDC code loads such a checkpoint from Google Drive; the harness trains its own)."""

from __future__ import annotations

import torch
from tqdm import tqdm

from bench.core.atomic import atomic_torch_save
from bench.core.progress import progress_enabled
from bench.core.seeding import capture_rng_state, restore_rng_state, seed_everything
from bench.data.spec import cache_root
from bench.evaluation.train import test_accuracy, train_network
from bench.nets.models import build_model


def trained_feature_net(dataset, model_name: str, epochs: int, seed: int, device) -> tuple[torch.nn.Module, dict]:
    """(network in eval mode, info). Trained with SGD lr 0.01 momentum 0.9 wd 5e-4, batch 256, no
    augmentation, on normalised images; cached per dataset, variant, model, epochs and seed."""
    variant = dataset.variant.replace("/", "_").replace(",", "_").replace("<", "lt").replace("=", "") or "full"
    path = cache_root() / "feature_nets" / f"{dataset.name}-{variant}-{model_name}-e{epochs}-s{seed}.pt"
    net = build_model(model_name, dataset).to(device)
    if path.exists():
        blob = torch.load(path, map_location=device, weights_only=False)
        net.load_state_dict(blob["state_dict"])
        net.eval()
        return net, blob["info"]
    rng = capture_rng_state()  # training the cache must not perturb the run's own random stream
    seed_everything(seed)
    net = build_model(model_name, dataset).to(device)
    images = dataset.normalise(dataset.train_images)
    labels = dataset.train_labels
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    epochs_bar = tqdm(range(epochs), desc=f"feature net {dataset.name}", disable=not progress_enabled(), leave=False)
    train_network(net, images, labels, opt, epochs_bar, batch_size=256)
    acc = test_accuracy(net, dataset.normalise(dataset.test_images), dataset.test_labels)
    info = {"model": model_name, "epochs": epochs, "seed": seed, "test_accuracy": acc, "cache": str(path)}
    atomic_torch_save({"state_dict": net.state_dict(), "info": info}, path)
    restore_rng_state(rng)
    net.eval()
    return net, info


@torch.no_grad()
def embed_in_batches(net: torch.nn.Module, images: torch.Tensor, batch: int = 1024) -> torch.Tensor:
    return torch.cat([net.embed(images[i:i + batch]) for i in range(0, len(images), batch)])
