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
VICO-normalised images for DC/DSA/DM. A method parameter ``dream_feature_space`` ("unit" or
"normalized") overrides this.

**N, n, I_int.** Read from the method's parameters when it has them (``dream_clusters``,
``dream_per_cluster``, ``dream_interval``), else the paper's defaults N = 128, n = 1, I_int = 10.
**N versus the requested batch size.** The paper defines N as "the mini-batch size of real images"
(DREAM: N = batch_real = 128). A call ``sample(c, n_req)`` clusters into
``N_eff = min(N, ceil(n_req / n), |class|)`` sub-clusters and returns ``min(n_req, N_eff * n)``
indices. So IDC asking for 64 gets 64 cluster representatives (N_eff = 64), IDC+DREAM at the
authors' batch_real = 128 gets 128, and DC/DSA/DM asking for 256 get 128 (the paper's mini-batch; a
method that wants 256 representatives sets ``dream_clusters = 256``). When ``N_eff * n`` exceeds the
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

Set ``dream_dedupe = False`` in a method's parameters to keep the authors' behaviour for both
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
``sampler``: {name, N, n, interval, sources {N, n, interval: "params" | "default"}, feature_space,
pipeline, batch_rule, step_rule, init_draw, handling, dedupe, kmeans, calls (sample calls, all
classes), reclusterings (per class: a round over all classes counts num_classes), duplicates,
empty_clusters, empty_after_reseed, requested_batch, returned_batch, clustering_s}.
``init``: {name, k_per_class, factor, feature_space, pipeline, net, net_seed, duplicates,
empty_clusters, empty_after_reseed, clustering_s, handling}. Diagnostics are described in :mod:`bench.diagnostics`.
"""

from __future__ import annotations

import math
from contextlib import contextmanager, nullcontext

import torch
from fast_pytorch_kmeans import KMeans

from bench.errors import BenchError
from bench.initialisers import INITIALISERS, SelectionInitialiser
from bench.samplers import SAMPLERS, RealSampler

DEFAULT_CLUSTERS = 128  # N: sub-clusters = real mini-batch size (paper, DREAM argument.py batch_real)
DEFAULT_PER_CLUSTER = 1  # n: samples nearest each centre
DEFAULT_INTERVAL = 10  # I_int: re-cluster every 10 steps
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


def matching_space(ctx) -> tuple[str, str]:
    """(feature space, normalisation pipeline) of the method: IDC-protocol methods match raw [0, 1]
    images (the authors' query), VICO methods normalised ones; ``dream_feature_space`` overrides."""
    params = getattr(ctx, "params", None) if ctx is not None else None
    protocol = getattr(getattr(getattr(ctx, "resolved", None), "method_cls", None), "protocol", "dsa")
    pipeline = getattr(params, "pipeline", None) or ("idc" if protocol == "idc" else "vico")
    space = getattr(params, "dream_feature_space", None) or ("unit" if protocol == "idc" else "normalized")
    if space not in ("unit", "normalized"):
        raise BenchError(f"dream_feature_space must be 'unit' or 'normalized', not {space!r}")
    return space, pipeline


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


# ------------------------------------------------------------------------------------ samplers
class _FeatureSampler(RealSampler):
    """Shared machinery: per-class cache, the I_int schedule, class features, records, state."""

    record_name = "sampler"

    def __init__(self, dataset, ctx=None):
        super().__init__(dataset, ctx)
        params = getattr(ctx, "params", None)

        def read(name, default):
            value = getattr(params, name, None)
            return (default, "default") if value in (None, 0) else (int(value), "params")

        self.N, n_src = read("dream_clusters", DEFAULT_CLUSTERS)
        self.n, p_src = read("dream_per_cluster", DEFAULT_PER_CLUSTER)
        self.interval, i_src = read("dream_interval", DEFAULT_INTERVAL)
        dedupe = getattr(params, "dream_dedupe", None)
        self.dedupe = True if dedupe is None else bool(dedupe)
        self.space, self.pipeline = matching_space(ctx)
        self.seed = int(getattr(ctx, "seed", 0) or 0) if ctx is not None else 0
        self._cache: dict[int, dict] = {}  # c -> {indices, step (of clustering), n_req}
        self._last_step: dict[int, int] = {}
        self._count: dict[int, int] = {}  # clusterings per class so far (seeds the next one)
        self._fresh: tuple[int, int, torch.Tensor] | None = None  # (class, call, features) for diagnostics
        self.stats = {"calls": 0, "reclusterings": 0, "duplicates": 0, "empty_clusters": 0, "empty_after_reseed": 0,
                      "requested_batch": None, "returned_batch": None, "clustering_s": 0.0}
        self.info = {"name": self.name, "N": self.N, "n": self.n, "interval": self.interval,
                     "sources": {"N": n_src, "n": p_src, "interval": i_src},
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
            import time

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
        from bench.diagnostics import observe_real_batch

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

    def __init__(self, dataset, ctx=None):
        super().__init__(dataset, ctx)
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
    normalised with the method's pipeline, no augmentation (:func:`bench.diagnostics.per_sample_grad_norms`)."""

    name = "boundary_grad"

    def _choose(self, c, n_req, feats, net, ix):
        from bench.diagnostics import per_sample_grad_norms

        x = self.dataset.normalise(self.dataset.train_images[ix], self.pipeline)
        norms = per_sample_grad_norms(net, x, c)
        self.stats["reclusterings"] += 1
        return torch.argsort(norms.to(ix.device), descending=True)[:n_req]


# ------------------------------------------------------------------------------------ initialiser
@INITIALISERS.register("cluster")
class ClusterInitialiser(SelectionInitialiser):
    """DREAM's clustering-based initialisation: per class, the real images nearest the centres of
    ``ipc * factor^2`` k-means sub-clusters of a randomly initialised network's features (module
    docstring). ``SelectionInitialiser`` tiles them f x f for multi-formation."""

    def __init__(self) -> None:
        self._net = None
        self._space = "normalized"
        self._pipeline = "vico"
        self._stats = {"duplicates": 0, "empty_clusters": 0, "empty_after_reseed": 0, "clustering_s": 0.0}

    def __call__(self, ctx, ipc, space="normalized", factor=1, pipeline="vico"):
        self._space, self._pipeline = space, pipeline
        synset = super().__call__(ctx, ipc, space=space, factor=factor, pipeline=pipeline)
        dedupe = getattr(ctx.params, "dream_dedupe", None)
        ctx.metrics.setdefault("dream", {})["init"] = {
            "name": "cluster", "k_per_class": ipc * factor * factor, "factor": factor,
            "feature_space": space, "pipeline": pipeline, "net": f"{ctx.config.model}, random init, eval mode",
            "net_seed": derived_seed(ctx.seed, 0x1417), **self._stats,
            "handling": HANDLING if dedupe is None or dedupe else HANDLING_AUTHORS,
        }
        return synset

    def select(self, ctx, c: int, k: int) -> torch.Tensor:
        if self._net is None:
            with forked_rng(derived_seed(ctx.seed, 0x1417), ctx.device):
                self._net = ctx.build_model()
            self._net.eval()
        # Timed inside the context's "initialisation" phase (not "clustering", which is the
        # per-iteration cost of representative matching); its own seconds go to the init record.
        import time

        t0 = time.perf_counter()
        ix = ctx.dataset.class_indices(c)
        feats = embed_all(self._net, images_in_space(ctx.dataset, ix, self._space, self._pipeline))
        dedupe = getattr(ctx.params, "dream_dedupe", None)
        pos, info = kmeans_select(feats, k, 1, seed=derived_seed(ctx.seed, c, 0x1417),
                                  dedupe=True if dedupe is None else bool(dedupe))
        for key in ("duplicates", "empty_clusters", "empty_after_reseed"):
            self._stats[key] += info[key]
        self._stats["clustering_s"] += time.perf_counter() - t0
        return ix[pos.to(ix.device)]


# ------------------------------------------------------------------------------------ cost
def clustering_share_at(ctx, wall_s: float, interval: int = DEFAULT_INTERVAL) -> float:
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
