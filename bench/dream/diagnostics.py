"""DREAM's diagnostics (Figs 1a, 2c, 3, 4a and the clustering cost), stored in the run record.

Everything here is off unless the method's parameters ask for it, never touches the run's random
stream (fixed generators, forked RNG), and is timed under the ``diagnostics`` phase so it can be
told apart from the run's own cost.

Settings (:class:`DiagnosticsConfig`, resolved and hashed with the run: ``--set diagnostics.every=10``)
---------------------------------------------------------------------------------------------------
* ``every`` (int, 0 = off): observe the matched real batch of a class on every k-th
  ``sampler.sample`` call *for that class* (calls 0, k, 2k, ...; for IDC one call per class per
  inner step, for DC one per class per outer-loop step, for DM one per class per iteration).
* ``classes`` (tuple of ints, default ``(0,)``; empty tuple = every class).
* ``grad_norms`` (bool, default True): also store per-sample gradient norms.
* ``track_every`` (int, default ``every``): interval, in the iterations the method passes to
  :func:`track_synthetic`, of the Fig 4a tracking; ``track_index`` (int, default 0): which stored
  synthetic image is tracked.

Hooks
-----
* Samplers call :func:`observe_real_batch` after every draw (``representative``/``central``/
  ``boundary*`` in :mod:`bench.dream.representative`, ``random`` in :mod:`bench.dream.samplers`), so methods need no
  code for Figs 1a/2c/3.
* Methods call ``track_synthetic(ctx, synset_or_images, iteration)`` once per iteration (one line;
  it returns at once unless the iteration is due) for Fig 4a.

Record keys: ``record["metrics"]["diagnostics"]``
-------------------------------------------------
``every``, ``classes``, ``track_every``: the switches in force.
``calls``: {str(class): number of sample calls so far} (the counter that schedules observations;
checkpointed with the metrics, so resume keeps the schedule).

``mmd`` (Fig 2c), one entry per observation:
    {"call": k, "step": method step, "class": c, "sampler": name, "batch_size": b,
     "class_size": m, "mmd2": float, "mmd": sqrt(max(mmd2, 0)), "bandwidth": sigma}
    MMD² is the biased (V-statistic) estimate between the matched real batch X and *all* training
    images Y of the class, with kernel k(a, b) = exp(-||a - b||² / (2 sigma²)), on ``net.embed``
    features of the current matching network in the method's matching space (the sampler's
    features: raw [0, 1] for IDC, normalised for DC/DSA/DM); sigma = median pairwise Euclidean
    distance of the pooled features X ∪ Y (Y subsampled to 2000 points with a fixed generator for the
    median only; the MMD itself uses all of Y).
``grad_norms`` (Figs 1a and 3), one entry per observation:
    {"call", "step", "class", "sampler", "norms": [per-sample ||grad_theta CE(net(x_i), c)||_2],
     "mean", "std"}: gradients w.r.t. every parameter of the current network, one image at a time
    (torch.func vmap), images normalised with the method's pipeline, no augmentation; BatchNorm
    networks in eval mode for this.
``clustering`` (the cost of representative matching), one entry per observation:
    {"call", "step", "clustering_s": cumulative seconds in the ``clustering`` phase so far,
     "wall_s": seconds since the first observation of this process (restarts at a resume),
     "phases_s": the phase timer so far}. The whole run's share is
    ``record["timings"]["phases"]["clustering"] / record["timings"]["distill_s"]``.
``feature_migration`` (Fig 4a), one entry per due iteration:
    {"iteration": it, "index": i, "label": y, "distance": ||f(x_it) - f(x_prev)||_2 or None for the
     first}, f = ``embed`` of a randomly initialised network of the run's model (seeded from the run
    seed, eval mode; the paper's "random network"), x the tracked stored synthetic image, normalised
    first when stored in [0, 1] (multi-formation images are tracked as stored, i.e. tiled).
``tracked_image``: {"iteration", "index", "shape", "values"} the last tracked version (normalised,
    flattened), kept so the next distance can be computed, also after a resume.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap

from bench.dream.clustering import bn_preserved, derived_seed, embed_all, forked_rng, images_in_space, matching_space

MEDIAN_POINTS = 2000


# ------------------------------------------------------------------------------------ statistics
def median_bandwidth(x: torch.Tensor, y: torch.Tensor, max_points: int = MEDIAN_POINTS) -> float:
    """Median pairwise Euclidean distance of the pooled rows of x and y (y subsampled to
    ``max_points`` with a fixed generator), off-diagonal pairs only."""
    if len(y) > max_points:
        gen = torch.Generator().manual_seed(0)
        y = y[torch.randperm(len(y), generator=gen)[:max_points].to(y.device)]
    z = torch.cat([x, y]).double()
    d = torch.cdist(z, z)
    iu = torch.triu_indices(len(z), len(z), offset=1, device=z.device)
    med = float(d[iu[0], iu[1]].median())
    return med if med > 0 else 1.0


def _mean_kernel(a: torch.Tensor, b: torch.Tensor, gamma: float, chunk: int = 2048) -> float:
    total = 0.0
    for i in range(0, len(a), chunk):
        total += float(torch.exp(-gamma * torch.cdist(a[i:i + chunk], b).pow(2)).sum())
    return total / (len(a) * len(b))


def mmd2_gaussian(x: torch.Tensor, y: torch.Tensor, bandwidth: float | None = None) -> tuple[float, float]:
    """(biased MMD², sigma) between samples x and y with a Gaussian kernel of bandwidth sigma
    (median heuristic when not given)."""
    x, y = x.double(), y.double()
    sigma = bandwidth if bandwidth is not None else median_bandwidth(x, y)
    gamma = 1.0 / (2.0 * sigma * sigma)
    mmd2 = _mean_kernel(x, x, gamma) + _mean_kernel(y, y, gamma) - 2.0 * _mean_kernel(x, y, gamma)
    return mmd2, sigma


def per_sample_grad_norms(net: torch.nn.Module, images: torch.Tensor, label: int | torch.Tensor,
                          chunk: int = 128) -> torch.Tensor:
    """‖∇θ CE(net(x_i), y_i)‖₂ over all parameters, one image at a time (torch.func.vmap); no side
    effect on the network (BatchNorm in eval mode, running statistics restored)."""

    device = next(net.parameters()).device
    images = images.to(device)
    labels = label if isinstance(label, torch.Tensor) else torch.full((len(images),), int(label), dtype=torch.long)
    labels = labels.to(device)
    params = {k: v.detach() for k, v in net.named_parameters()}
    buffers = {k: v.detach() for k, v in net.named_buffers()}
    has_bn = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in net.modules())
    was_training = net.training

    def loss(p, x, y):
        out = functional_call(net, (p, buffers), (x.unsqueeze(0),))
        return F.cross_entropy(out, y.unsqueeze(0))

    per_sample = vmap(grad(loss), in_dims=(None, 0, 0))
    norms = []
    with bn_preserved(net):
        if has_bn:
            net.eval()
        try:
            for i in range(0, len(images), chunk):
                g = per_sample(params, images[i:i + chunk], labels[i:i + chunk])
                sq = sum(t.flatten(1).pow(2).sum(1) for t in g.values())
                norms.append(sq.sqrt().detach())
        finally:
            net.train(was_training)
    return torch.cat(norms)


# ------------------------------------------------------------------------------------ hooks
@dataclass(frozen=True)
class DiagnosticsConfig:
    """What the run observes (module docstring); everything off by default."""

    every: int = 0
    classes: tuple[int, ...] = (0,)
    grad_norms: bool = True
    track_every: int = 0  # 0: ``every``
    track_index: int = 0


def _settings(ctx) -> DiagnosticsConfig:
    return getattr(getattr(ctx, "resolved", None), "diagnostics", None) or DiagnosticsConfig()


def _diag(ctx, every: int) -> dict:
    diag = ctx.metrics.setdefault("diagnostics", {})
    diag.setdefault("every", every)
    settings = _settings(ctx)
    diag.setdefault("classes", list(settings.classes) if settings.classes else "all")
    diag.setdefault("track_every", int(settings.track_every or every))
    for key in ("calls",):
        diag.setdefault(key, {})
    for key in ("mmd", "grad_norms", "clustering", "feature_migration"):
        diag.setdefault(key, [])
    return diag


def observe_real_batch(ctx, c: int, indices: torch.Tensor, net: torch.nn.Module | None, step: int,
                       sampler: str = "", class_features: torch.Tensor | None = None) -> None:
    """The samplers' hook: on due calls, store the MMD of the batch to its class, the batch's
    per-sample gradient norms and the clustering time so far (keys in the module docstring)."""
    if ctx is None or net is None:
        return
    settings = _settings(ctx)
    every = int(settings.every)
    if every <= 0:
        return
    diag = _diag(ctx, every)
    key = str(int(c))
    call = diag["calls"].get(key, 0)
    diag["calls"][key] = call + 1
    if call % every:
        return
    if settings.classes and int(c) not in [int(k) for k in settings.classes]:
        return
    state = ctx.__dict__.setdefault("_diagnostics_state", {"t0": time.perf_counter()})
    with ctx.timer("diagnostics"):
        dataset = ctx.dataset
        space, pipeline = matching_space(ctx)
        ix = dataset.class_indices(c)
        if class_features is None:
            class_features = embed_all(net, images_in_space(dataset, ix, space, pipeline))
        batch_features = embed_all(net, images_in_space(dataset, indices, space, pipeline))
        mmd2, sigma = mmd2_gaussian(batch_features, class_features)
        base = {"call": call, "step": int(step), "class": int(c), "sampler": sampler}
        diag["mmd"].append({**base, "batch_size": int(len(indices)), "class_size": int(len(ix)),
                            "mmd2": mmd2, "mmd": max(mmd2, 0.0) ** 0.5, "bandwidth": sigma})
        if settings.grad_norms:
            x = dataset.normalise(dataset.train_images[indices], pipeline)
            norms = per_sample_grad_norms(net, x, c).cpu()
            diag["grad_norms"].append({**base, "norms": norms.tolist(), "mean": float(norms.mean()),
                                       "std": float(norms.std()) if len(norms) > 1 else 0.0})
    phases = dict(ctx.timer.seconds)
    diag["clustering"].append({"call": call, "step": int(step), "clustering_s": phases.get("clustering", 0.0),
                               "wall_s": time.perf_counter() - state["t0"], "phases_s": phases})


def _tracking_net(ctx) -> torch.nn.Module:
    net = ctx.__dict__.get("_diagnostics_track_net")
    if net is None:
        with forked_rng(derived_seed(ctx.seed, 0xF4A), ctx.device):
            net = ctx.build_model()
        net.eval()
        ctx.__dict__["_diagnostics_track_net"] = net
    return net


def track_synthetic(ctx, images, iteration: int, index: int | None = None, space: str | None = None,
                    pipeline: str | None = None, label: int | None = None) -> float | None:
    """Fig 4a hook: on due iterations, the distance in a random network's feature space between the
    tracked synthetic image now and at the previous due iteration. ``images`` is the method's
    :class:`~bench.data.synset.SyntheticSet` or its image tensor (then pass ``space``/``pipeline`` if
    they differ from "normalized"/"vico"). Returns the distance (None when not due or first)."""
    settings = _settings(ctx)
    every = int(settings.every)
    track_every = int(settings.track_every or every)
    if track_every <= 0 or iteration % track_every:
        return None
    diag = _diag(ctx, every)
    if hasattr(images, "images"):  # a SyntheticSet
        synset = images
        images, space, pipeline = synset.images, synset.space, synset.pipeline
        label = synset.labels
    space, pipeline = space or "normalized", pipeline or "vico"
    index = int(settings.track_index if index is None else index)
    with ctx.timer("diagnostics"), torch.no_grad():
        x = images[index:index + 1].detach().float()
        if space == "unit":
            x = ctx.dataset.normalise(x.clamp(0, 1), pipeline)
        net = _tracking_net(ctx)
        feat = embed_all(net, x)
        prev = diag.get("tracked_image")
        distance = None
        if prev is not None and prev["index"] == index:
            px = torch.tensor(prev["values"], dtype=x.dtype, device=x.device).view(prev["shape"])
            distance = float(torch.linalg.vector_norm(feat - embed_all(net, px)))
        y = label[index] if isinstance(label, torch.Tensor) else label
        diag["feature_migration"].append({"iteration": int(iteration), "index": index,
                                          "label": None if y is None else int(y), "distance": distance})
        diag["tracked_image"] = {"iteration": int(iteration), "index": index, "shape": list(x.shape),
                                 "values": x.flatten().cpu().tolist()}
    return distance


# ------------------------------------------------------------------------------------ efficiency
def mean_curve(records: list[dict]) -> list[tuple[int, float]]:
    """(iteration, accuracy averaged over the records) at the iterations every record's
    ``metrics["curve"]`` shares (the seeds of one arm)."""
    curves = [{int(p["iteration"]): float(p["accuracy"]) for p in r["metrics"].get("curve", [])} for r in records]
    if not curves:
        return []
    common = sorted(set.intersection(*(set(c) for c in curves)))
    return [(it, sum(c[it] for c in curves) / len(curves)) for it in common]


def efficiency(base: list[tuple[int, float]], dream: list[tuple[int, float]]) -> dict:
    """Table 3's "Iter" / the paper's efficiency claim from two mean accuracy curves: the first
    checkpoint at which ``dream`` reaches the final accuracy of ``base``, and
    ratio = base's final iteration / that checkpoint (inf when reached at iteration 0; None when
    never reached)."""
    if not base or not dream:
        return {"target": None, "first_iteration": None, "ratio": None}
    final_it, target = base[-1]
    first = next((it for it, acc in dream if acc >= target), None)
    ratio = None if first is None else (float("inf") if first == 0 else final_it / first)
    return {"target": target, "base_final_iteration": final_it, "first_iteration": first, "ratio": ratio}
