"""DREAM (ICCV 2023): representative matching and clustering-based initialisation.

Registers the samplers ``representative`` (DREAM), ``central`` and ``boundary`` /
``boundary_grad`` (the paper's Fig 2b probes) and the initialiser ``cluster``. Methods never import
this module: they call ``ctx.sampler.sample(c, n, net=..., step=...)`` and ``ctx.initialise(...)``.

Representative sampler (paper section 3.3, ``DREAM:new_strategy.py:NEW_Strategy.query``)
-----------------------------------------------------------------------------------------
Per class ``c``:

1. embed **all** training images of the class with the current matching network (``net.embed``:
   the classifier's input features), under ``no_grad``, in batches of 1024 (4096 on a GPU), on the
   network's device. BatchNorm running statistics are saved and restored, so embedding has no side
   effect on the network.
2. ``fast_pytorch_kmeans.KMeans(n_clusters=N, mode="euclidean")`` (max_iter 100, tol 1e-4: the
   library's defaults, as the authors) on those features.
3. the ``n`` real images nearest (Euclidean, in feature space) each centre form the batch.
4. the chosen indices are cached per class and reused until the next re-clustering.

**Feature space.** Images are embedded in the space the method matches in: raw [0, 1] images for
methods with the IDC protocol (the authors' ``query`` embeds the unnormalised training images), the
VICO-normalised images for DC/DSA/DM. The sampler setting ``feature_space`` ("unit" or
"normalized") overrides this.

**N, n, I_int.** The sampler's settings (:class:`ClusterSamplerConfig`: ``clusters``,
``per_cluster``, ``interval``; ``--set sampler.interval=20``), by default the paper's N = 128, n = 1,
I_int = 10. They belong to the sampler, not to any method, and are hashed with the run.
**N versus the requested batch size.** The paper defines N as "the mini-batch size of real images"
(DREAM: N = batch_real = 128). A call ``sample(c, n_req)`` clusters into
``N_eff = min(N, ceil(n_req / n), |class|)`` sub-clusters and returns ``min(n_req, N_eff * n)``
indices. So IDC asking for 64 gets 64 cluster representatives (N_eff = 64), IDC+DREAM at the
authors' batch_real = 128 gets 128, and DC/DSA/DM asking for 256 get 128 (the paper's mini-batch; a
method that wants 256 representatives sets ``sampler.clusters = 256``). When ``N_eff * n`` exceeds the
request (n > 1 and n_req not a multiple of n) the first ``n_req`` picks in cluster order are kept.

**Step.** ``step`` is the counter the method passes (its matching step; each method documents what
it counts). Class ``c`` is re-clustered when it has no cached batch, when ``step // I_int`` differs
from the block of its last clustering (a new block of I_int steps), when ``step`` did not advance
since the class's previous call (a method whose counter restarts, e.g. IDC's inner-loop counter
``ot`` with a new network every outer iteration: it re-clusters at ``ot = 0`` exactly as the
authors' ``ot % interval == 0``, including with ``inner_loop = 1``, where ``ot`` is 0 at every
call), or when the requested batch size changed. Every method calls once per class per step. For IDC with 100 inner steps per outer iteration, either a
global or an inner counter gives the authors' schedule: 10 clusterings per class per outer iteration.

**Seeding.** The authors' code has no seed for the k-means initialisation (torch's global RNG). Here
the initial centres are N *distinct* training points drawn by ``torch.randperm`` with a CPU
generator seeded from ``(run seed, class, number of clusterings of that class so far)``; the whole
clustering runs inside ``torch.random.fork_rng`` under the same derived seed, so the run's own random
stream is untouched and the picks repeat for a given seed (and across resume). Distinct initial
points are what fast-pytorch-kmeans 0.1.9 (contemporary with DREAM) drew; 0.2.2 draws with
replacement, which routinely leaves an empty cluster (two identical initial centres).

**Duplicates and empty clusters** (counted and recorded under ``metrics["dream"]``):

* *empty cluster*: a centre with no point assigned after Lloyd's iterations (the library turns its
  mean into the zero vector, whose "nearest sample" is meaningless). Counted in ``empty_clusters``;
  handled by re-seeding: each empty centre is replaced by the point farthest from its own centre (a
  different point per empty centre) and k-means is resumed from those centres (``fit_predict(X,
  centroids=...)``), up to 3 rounds; what is still empty afterwards (possible only when fewer
  distinct feature vectors than centres exist) is counted in ``empty_after_reseed``.
* *duplicate pick*: two centres sharing a nearest sample (the authors keep both, so their batch has
  fewer than N distinct images). Counted in ``duplicates``; handled by giving the sample to the
  centre nearest to it and the other centre its next-nearest unused sample, so the batch always
  holds distinct images.

Set ``sampler.dedupe = false`` (and ``init.dedupe = false`` for the initialiser) to keep the authors' behaviour for both
(no re-seeding, duplicates kept); the counts are recorded either way.

Probe samplers (Fig 2b)
-----------------------
Same features, same caching and re-clustering schedule as ``representative`` (no randomness):

* ``central``: the ``n_req`` images whose features are nearest (Euclidean) the class mean feature.
* ``boundary``: the ``n_req`` images whose features are farthest (Euclidean) from the class mean.
* ``boundary_grad``: the ``n_req`` images with the largest per-sample gradient norm ‖∇θ CE(net(x), c)‖₂
  over all trainable parameters, images normalised with the method's pipeline, no augmentation
  (the paper's "boundary samples have large gradients"); ~one extra backward pass per class image.

Cluster initialiser
-------------------
``cluster``: per class, a freshly initialised network of the run's model (built under a forked RNG
seeded from the run seed, so the run's stream is untouched; eval mode), its features of all the
class's images (in the initialiser's ``space``: raw for ``unit``, normalised for ``normalized``),
``k = ipc * factor^2`` k-means centres (same routine and handling as above), the real image nearest
each centre. For factor 2 (IDC), ``SelectionInitialiser`` tiles the ``4 * ipc`` images 2x2 (nearest
downsampling), as the authors' ``--f2_init kmean``. Recorded under ``metrics["dream"]["init"]``.

**Timing.** Re-clustering (embedding + k-means + picks) is timed under the ``clustering`` phase.
The methods call the sampler inside their own ``matching`` timer, so ``matching`` *includes*
``clustering`` (phases nest); the run's clustering share is ``phases["clustering"] / distill_s``
(``distill_s`` also holds the curve evaluations; subtract ``phases["evaluation"]`` for the share of
distillation proper). :func:`clustering_share_at` amortises a timed run to one round every I_int
steps (``bench speed --dream``).

Record keys (``record["metrics"]["dream"]``)
--------------------------------------------
``sampler``: {name, N, n, interval, feature_space,
pipeline, batch_rule, step_rule, init_draw, handling, dedupe, kmeans, calls (sample calls, all
classes), reclusterings (per class: a round over all classes counts num_classes), duplicates,
empty_clusters, empty_after_reseed, requested_batch, returned_batch, clustering_s}.
``init``: {name, k_per_class, factor, feature_space, pipeline, net, net_seed, duplicates,
empty_clusters, empty_after_reseed, clustering_s, handling}. Diagnostics are described in :mod:`bench.dream.diagnostics`.
"""

from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import dataclass

import torch

from bench.core.errors import BenchError
from bench.dream.clustering import (
    HANDLING,
    HANDLING_AUTHORS,
    derived_seed,
    embed_all,
    images_in_space,
    kmeans_select,
    matching_space,
)
from bench.dream.diagnostics import observe_real_batch, per_sample_grad_norms
from bench.dream.samplers import SAMPLERS, RealSampler


# ------------------------------------------------------------------------------------ samplers
@dataclass(frozen=True)
class ClusterSamplerConfig:
    """DREAM's sampler settings (the paper's defaults): ``clusters`` N sub-clusters, ``per_cluster``
    n samples nearest each centre, re-clustered every ``interval`` (I_int) sampler steps;
    ``dedupe`` re-seeds empty clusters and resolves duplicate picks (False: the authors' behaviour);
    ``feature_space`` "unit" or "normalized" overrides the method's matching space; ``batch_real``,
    when set, is the real batch per class the method matches against under this sampler (DREAM's
    code uses 128 where IDC's uses 64)."""

    clusters: int = 128
    per_cluster: int = 1
    interval: int = 10
    dedupe: bool = True
    feature_space: str | None = None
    batch_real: int | None = None

    def __post_init__(self) -> None:
        if min(self.clusters, self.per_cluster, self.interval) < 1:
            raise ValueError("clusters, per_cluster and interval must be >= 1")
        if self.feature_space not in (None, "unit", "normalized"):
            raise ValueError(f"feature_space must be 'unit' or 'normalized', not {self.feature_space!r}")
        if self.batch_real is not None and self.batch_real < 1:
            raise ValueError("batch_real must be >= 1")


class _FeatureSampler(RealSampler):
    """Shared machinery: per-class cache, the I_int schedule, class features, records, state."""

    record_name = "sampler"
    Config = ClusterSamplerConfig

    @classmethod
    def defaults(cls, method_cls, spec, scale: str) -> dict:
        # DREAM's code (built on IDC's) matches 128 real images per class where IDC matches 64
        # (its --reproduce uses 64 on Tiny ImageNet); DC/DSA/DM keep their own batch.
        if getattr(method_cls, "protocol", None) == "idc":
            return {"batch_real": spec.dream_batch_real}
        return {}

    def __init__(self, dataset, ctx=None, config=None):
        super().__init__(dataset, ctx, config)
        cfg = self.config
        self.N, self.n, self.interval, self.dedupe = cfg.clusters, cfg.per_cluster, cfg.interval, cfg.dedupe
        self.space, self.pipeline = matching_space(ctx)
        self.seed = int(getattr(ctx, "seed", 0) or 0) if ctx is not None else 0
        self._cache: dict[int, dict] = {}  # c -> {indices, step (of clustering), n_req}
        self._last_step: dict[int, int] = {}
        self._count: dict[int, int] = {}  # clusterings per class so far (seeds the next one)
        self._fresh: tuple[int, int, torch.Tensor] | None = None  # (class, call, features) for diagnostics
        self.stats = {"calls": 0, "reclusterings": 0, "duplicates": 0, "empty_clusters": 0, "empty_after_reseed": 0,
                      "requested_batch": None, "returned_batch": None, "clustering_s": 0.0}
        self.info = {"name": self.name, "N": self.N, "n": self.n, "interval": self.interval,
                     "feature_space": self.space, "pipeline": self.pipeline,
                     "batch_rule": "N_eff = min(N, ceil(n_req / n), class size); returns min(n_req, N_eff * n)",
                     "step_rule": "re-cluster when step // interval changes, step does not advance, or n_req changes"}
        self._publish()

    name = "feature"

    # -- records
    def _publish(self) -> None:
        if self.ctx is None:
            return
        self.ctx.metrics.setdefault("dream", {})[self.record_name] = {**self.info, **self.stats}

    def _timer(self, phase: str):
        return self.ctx.timer(phase) if self.ctx is not None else nullcontext()

    # -- schedule
    def _due(self, c: int, n_req: int, step: int) -> bool:
        cache = self._cache.get(c)
        last = self._last_step.get(c)
        if cache is None or cache["n_req"] != n_req:
            return True
        if last is not None and step <= last:  # the counter restarted: a new network (see module doc)
            return True
        return step // self.interval != cache["step"] // self.interval

    def sample(self, c: int, n: int, net: torch.nn.Module | None = None, step: int = 0) -> torch.Tensor:
        if net is None:
            raise BenchError(f"the {self.name!r} sampler needs the current matching network (net=...)")
        step = int(step)
        if self._due(c, n, step):
            t0 = time.perf_counter()
            with self._timer("clustering"):
                ix = self.dataset.class_indices(c)
                feats = embed_all(net, images_in_space(self.dataset, ix, self.space, self.pipeline))
                pos = self._choose(c, n, feats, net, ix)
                self._cache[c] = {"indices": ix[pos.to(ix.device)], "step": step, "n_req": n}
                self._count[c] = self._count.get(c, 0) + 1
                self._fresh = (c, step, feats)
            self.stats["clustering_s"] += time.perf_counter() - t0
            self.stats["requested_batch"] = n
            self.stats["returned_batch"] = int(len(pos))
        elif self._fresh is not None and (self._fresh[0] != c or self._fresh[1] != step):
            self._fresh = None
        self._last_step[c] = step
        self.stats["calls"] += 1
        self._publish()  # every call, so the record's counters are current at any checkpoint
        chosen = self._cache[c]["indices"]
        self._observe(c, chosen, net, step)
        return chosen

    def _observe(self, c, chosen, net, step) -> None:
        if self.ctx is None:
            return
        fresh = self._fresh[2] if self._fresh is not None and self._fresh[:2] == (c, step) else None
        observe_real_batch(self.ctx, c, chosen, net, step, sampler=self.name, class_features=fresh)

    def _choose(self, c: int, n_req: int, feats: torch.Tensor, net, ix: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    # -- checkpoints
    def state_dict(self) -> dict:
        return {"cache": {c: {"indices": v["indices"].cpu(), "step": v["step"], "n_req": v["n_req"]}
                          for c, v in self._cache.items()},
                "last_step": dict(self._last_step), "count": dict(self._count), "stats": dict(self.stats)}

    def load_state_dict(self, state: dict) -> None:
        device = self.dataset.train_images.device
        self._cache = {int(c): {"indices": v["indices"].to(device), "step": v["step"], "n_req": v["n_req"]}
                       for c, v in state.get("cache", {}).items()}
        self._last_step = {int(c): s for c, s in state.get("last_step", {}).items()}
        self._count = {int(c): s for c, s in state.get("count", {}).items()}
        self.stats.update(state.get("stats", {}))
        self._fresh = None
        self._publish()


@SAMPLERS.register("representative")
class RepresentativeSampler(_FeatureSampler):
    """DREAM's representative matching: the real images nearest the centres of N k-means
    sub-clusters of the class in the current network's feature space (module docstring)."""

    name = "representative"

    def __init__(self, dataset, ctx=None, config=None):
        super().__init__(dataset, ctx, config)
        self.info.update({"init_draw": "N distinct training points, torch.randperm with a CPU generator "
                                       "seeded from (run seed, class, clusterings so far); fork_rng",
                          "handling": HANDLING if self.dedupe else HANDLING_AUTHORS, "dedupe": self.dedupe,
                          "kmeans": "fast_pytorch_kmeans.KMeans(n_clusters=N_eff, mode='euclidean'), "
                                    "max_iter 100, tol 1e-4"})
        self._publish()

    def batch_shape(self, n_req: int, class_size: int) -> tuple[int, int]:
        """(N_eff clusters, returned batch size) for a request of ``n_req`` images."""
        n_eff = max(1, min(self.N, math.ceil(n_req / self.n), class_size // self.n or 1))
        return n_eff, min(n_req, n_eff * self.n, class_size)

    def _choose(self, c, n_req, feats, net, ix):
        n_eff, size = self.batch_shape(n_req, len(ix))
        seed = derived_seed(self.seed, c, self._count.get(c, 0), 0xD2EA)
        pos, info = kmeans_select(feats, n_eff, self.n, seed=seed, dedupe=self.dedupe)
        self.stats["reclusterings"] += 1
        for key in ("duplicates", "empty_clusters", "empty_after_reseed"):
            self.stats[key] += info[key]
        return pos[:size]


@SAMPLERS.register("central")
class CentralSampler(_FeatureSampler):
    """Fig 2b probe: the ``n_req`` images of class c whose ``net.embed`` features (in the method's
    matching space) have the smallest Euclidean distance to the mean feature of the class.
    Deterministic; recomputed on the representative sampler's I_int schedule."""

    name = "central"

    def _choose(self, c, n_req, feats, net, ix):
        d = (feats - feats.mean(0, keepdim=True)).pow(2).sum(1)
        self.stats["reclusterings"] += 1
        return torch.argsort(d)[:n_req]


@SAMPLERS.register("boundary")
class BoundarySampler(_FeatureSampler):
    """Fig 2b probe: the ``n_req`` images of class c whose features are *farthest* (Euclidean) from
    the class mean feature (same features and schedule as ``central``)."""

    name = "boundary"

    def _choose(self, c, n_req, feats, net, ix):
        d = (feats - feats.mean(0, keepdim=True)).pow(2).sum(1)
        self.stats["reclusterings"] += 1
        return torch.argsort(d, descending=True)[:n_req]


@SAMPLERS.register("boundary_grad")
class BoundaryGradSampler(_FeatureSampler):
    """Fig 2b probe, gradient version: the ``n_req`` images of class c with the largest per-sample
    gradient norm ‖∇θ CE(net(x), c)‖₂ over all trainable parameters of the current network, images
    normalised with the method's pipeline, no augmentation (:func:`bench.dream.diagnostics.per_sample_grad_norms`)."""

    name = "boundary_grad"

    def _choose(self, c, n_req, feats, net, ix):
        x = self.dataset.normalise(self.dataset.train_images[ix], self.pipeline)
        norms = per_sample_grad_norms(net, x, c)
        self.stats["reclusterings"] += 1
        return torch.argsort(norms.to(ix.device), descending=True)[:n_req]


# ------------------------------------------------------------------------------------ cost
def clustering_share_at(ctx, wall_s: float, interval: int = ClusterSamplerConfig.interval) -> float:
    """The share of a matching step's wall time that representative matching spends clustering
    when one round (every class) runs every ``interval`` steps, from a timed run of any length:
    C = clustering seconds per round (``clustering_s`` / rounds, rounds = reclusterings / classes),
    T = the rest of a step (wall - initialisation - clustering - diagnostics - evaluation, over
    steps = sample calls / classes); share = (C / interval) / (T + C / interval). With IDC's
    inner_loop and DC's outer_loop multiples of ``interval`` this is also the share of an iteration."""
    rec = ctx.metrics["dream"]["sampler"]
    k = ctx.dataset.num_classes
    rounds = rec["reclusterings"] / k
    steps = rec["calls"] / k
    if not rounds or not steps:
        return 0.0
    per_round = rec["clustering_s"] / rounds
    other = sum(ctx.timer.seconds.get(phase, 0.0) for phase in ("initialisation", "diagnostics", "evaluation"))
    rest = max(wall_s - other - rec["clustering_s"], 0.0) / steps
    return (per_round / interval) / (rest + per_round / interval)
