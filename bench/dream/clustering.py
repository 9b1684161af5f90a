"""The clustering machinery DREAM's samplers and initialiser share: features of a class under a
network (``embed_all``, BatchNorm statistics untouched), seeded k-means picks (``kmeans_select``:
the samples nearest each centre, with empty clusters re-seeded and duplicate picks resolved), and
the forked, derived seeds that keep the run's own random stream untouched. See
:mod:`bench.dream.representative` for the rules and the record keys."""

from __future__ import annotations

from contextlib import contextmanager

import torch
from fast_pytorch_kmeans import KMeans

RESEED_ROUNDS = 3

HANDLING = ("empty clusters: centre re-seeded at the point farthest from its own centre, k-means resumed "
            f"(up to {RESEED_ROUNDS} rounds); duplicate picks: the sample goes to the nearest centre, the "
            "other centre takes its next-nearest unused sample")
HANDLING_AUTHORS = "kept as the authors do: empty clusters keep the zero-vector centroid, duplicate picks kept"


# ------------------------------------------------------------------------------------ helpers
def derived_seed(*parts: int) -> int:
    """A deterministic 63-bit seed from integers (run seed, class, count, salt...)."""
    h = 1469598103934665603
    for p in parts:
        h = ((h ^ (int(p) & 0xFFFFFFFFFFFF)) * 1099511628211) % (1 << 63)
    return h


@contextmanager
def forked_rng(seed: int, device: torch.device | None = None):
    """Every torch RNG the clustering could touch, forked and seeded; restored on exit."""
    devices = []
    if device is not None and device.type == "cuda":
        devices = list(range(torch.cuda.device_count()))
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


@contextmanager
def bn_preserved(net: torch.nn.Module):
    """Restore BatchNorm running statistics after a forward pass in train mode."""
    saved = [(m, {k: v.clone() for k, v in m.state_dict().items()})
             for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    try:
        yield
    finally:
        for m, state in saved:
            m.load_state_dict(state)


@torch.no_grad()
def embed_all(net: torch.nn.Module, images: torch.Tensor, batch: int | None = None) -> torch.Tensor:
    """``net.embed`` of every image, in large no-grad batches, on the network's device."""
    device = next(net.parameters()).device
    batch = batch or (4096 if device.type == "cuda" else 1024)
    out = []
    with bn_preserved(net):
        for i in range(0, len(images), batch):
            out.append(net.embed(images[i:i + batch].to(device)).float())
    return torch.cat(out)


def images_in_space(dataset, ix: torch.Tensor, space: str, pipeline: str) -> torch.Tensor:
    x = dataset.train_images[ix]
    return dataset.normalise(x, pipeline) if space == "normalized" else x


# ------------------------------------------------------------------------------------ k-means picks
def kmeans_select(features: torch.Tensor, n_clusters: int, per_cluster: int = 1, seed: int = 0,
                  dedupe: bool = True) -> tuple[torch.Tensor, dict]:
    """Positions (into ``features``) of the ``per_cluster`` samples nearest each of ``n_clusters``
    k-means centres, in cluster order; and {duplicates, empty_clusters, empty_after_reseed, n_clusters,
    centroids (k, d)}.

    See the module docstring for seeding and for what happens to empty clusters and duplicates.
    """
    m = len(features)
    k = max(1, min(n_clusters, m))
    per_cluster = max(1, min(per_cluster, m // k))
    with forked_rng(seed, features.device):
        gen = torch.Generator().manual_seed(seed)
        init = features[torch.randperm(m, generator=gen)[:k].to(features.device)].clone()
        km = KMeans(n_clusters=k, mode="euclidean")
        km.fit_predict(features, centroids=init)
        centroids = km.centroids
        counts = torch.bincount(km.predict(features), minlength=k)
        empty = int((counts == 0).sum())
        rounds = 0
        while dedupe and int((counts == 0).sum()) and rounds < RESEED_ROUNDS:
            rounds += 1
            assign = km.predict(features)
            own = (features - centroids[assign]).pow(2).sum(1)
            holes = torch.nonzero(counts == 0, as_tuple=True)[0]
            far = torch.argsort(own, descending=True)[:len(holes)]
            centroids = centroids.clone()
            centroids[holes] = features[far]
            km.fit_predict(features, centroids=centroids)
            centroids = km.centroids
            counts = torch.bincount(km.predict(features), minlength=k)
        empty_after = int((counts == 0).sum())

    dist = torch.cdist(centroids.float(), features.float())  # (k, m)
    naive = torch.topk(dist, per_cluster, dim=1, largest=False).indices  # (k, per_cluster)
    duplicates = int(naive.numel() - torch.unique(naive).numel())
    if not dedupe or duplicates == 0:
        picks = naive.reshape(-1)
    else:
        # Resolve conflicts in favour of the centre nearest the contested sample.
        order = torch.argsort(dist, dim=1)  # each centre's samples, nearest first
        used = torch.zeros(m, dtype=torch.bool, device=features.device)
        chosen = torch.empty(k, per_cluster, dtype=torch.long, device=features.device)
        cursor = [0] * k
        for j in range(per_cluster):
            first = torch.stack([dist[i, order[i, cursor[i]]] for i in range(k)])
            for i in torch.argsort(first).tolist():
                while used[order[i, cursor[i]]]:
                    cursor[i] += 1
                s = order[i, cursor[i]]
                chosen[i, j] = s
                used[s] = True
                cursor[i] += 1
        picks = chosen.reshape(-1)
    return picks, {"duplicates": duplicates, "empty_clusters": empty, "empty_after_reseed": empty_after,
                   "n_clusters": k, "centroids": centroids}


def matching_space(ctx) -> tuple[str, str]:
    """(feature space, normalisation pipeline) the method matches in: IDC-protocol methods match
    raw [0, 1] images (the authors' query), VICO methods normalised ones. A sampler's
    ``feature_space`` setting overrides the space."""
    resolved = getattr(ctx, "resolved", None)
    method_cls = getattr(resolved, "method_cls", None)
    space = getattr(method_cls, "space", "normalized")
    pipeline = getattr(method_cls, "pipeline", "vico")
    override = getattr(getattr(resolved, "sampler_config", None), "feature_space", None)
    return override or space, pipeline
