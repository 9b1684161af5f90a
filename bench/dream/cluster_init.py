"""DREAM's clustering-based initialisation (the ``cluster`` initialiser): see the Cluster initialiser
section of :mod:`bench.dream.representative` for what it does and records."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from bench.dream.clustering import (
    HANDLING,
    HANDLING_AUTHORS,
    derived_seed,
    embed_all,
    forked_rng,
    images_in_space,
    kmeans_select,
)
from bench.dream.initialisers import INITIALISERS, SelectionInitialiser


CLUSTERS_FILE = "clusters.pt"


@dataclass(frozen=True)
class ClusterInitConfig:
    """``dedupe``: re-seed empty clusters and resolve duplicate picks (False: the authors' way)."""

    dedupe: bool = True


@INITIALISERS.register("cluster")
class ClusterInitialiser(SelectionInitialiser):
    """DREAM's clustering-based initialisation: per class, the real images nearest the centres of
    ``ipc * factor^2`` k-means sub-clusters of a randomly initialised network's features (module
    docstring). ``SelectionInitialiser`` tiles them f x f for multi-formation."""

    Config = ClusterInitConfig

    def __init__(self, config=None) -> None:
        super().__init__(config)
        self._net = None
        self._space = "normalized"
        self._pipeline = "vico"
        self._stats = {"duplicates": 0, "empty_clusters": 0, "empty_after_reseed": 0, "clustering_s": 0.0}
        self._clusters: dict[int, dict] = {}

    def __call__(self, ctx, ipc, space="normalized", factor=1, pipeline="vico"):
        self._space, self._pipeline = space, pipeline
        synset = super().__call__(ctx, ipc, space=space, factor=factor, pipeline=pipeline)
        ctx.metrics.setdefault("dream", {})["init"] = {
            "name": "cluster", "k_per_class": ipc * factor * factor, "factor": factor,
            "feature_space": space, "pipeline": pipeline, "net": f"{ctx.config.model}, random init, eval mode",
            "net_seed": derived_seed(ctx.seed, 0x1417), **self._stats,
            "handling": HANDLING if self.config.dedupe else HANDLING_AUTHORS,
        }
        ctx.save_artifact(CLUSTERS_FILE, {"net_seed": derived_seed(ctx.seed, 0x1417), "feature_space": space,
                                          "pipeline": pipeline, "classes": self._clusters},
                          "per class: the training-set indices clustered, each one's k-means cluster, and the "
                          "picks (the sample nearest each centre) of the cluster initialiser")
        return synset

    def select(self, ctx, c: int, k: int) -> torch.Tensor:
        if self._net is None:
            with forked_rng(derived_seed(ctx.seed, 0x1417), ctx.device):
                self._net = ctx.build_model()
            self._net.eval()
        # Timed inside the context's "initialisation" phase (not "clustering", which is the
        # per-iteration cost of representative matching); its own seconds go to the init record.
        t0 = time.perf_counter()
        ix = ctx.dataset.class_indices(c)
        feats = embed_all(self._net, images_in_space(ctx.dataset, ix, self._space, self._pipeline))
        pos, info = kmeans_select(feats, k, 1, seed=derived_seed(ctx.seed, c, 0x1417), dedupe=self.config.dedupe)
        for key in ("duplicates", "empty_clusters", "empty_after_reseed"):
            self._stats[key] += info[key]
        # what Fig 2d draws: this very clustering, not a second one made for the figure
        self._clusters[c] = {"indices": ix.cpu().to(torch.int32), "picks": pos.cpu().to(torch.int32),
                             "cluster": torch.cdist(feats.float(), info["centroids"].float()).argmin(1).cpu().to(torch.int16)}
        self._stats["clustering_s"] += time.perf_counter() - t0
        return ix[pos.to(ix.device)]
