"""DREAM's representative selection against the authors' (lyq312318224/DREAM, new_strategy.py):
the same features and the same starting centroids give the same chosen indices (recorded by
experiments/parity/dream_probe.py into tests/parity/dream.json, with provenance)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from bench.dream.clustering import kmeans_select

GOLDEN = json.loads((Path(__file__).parent / "dream.json").read_text())
INPUTS = GOLDEN["inputs"]
CASES = [(name, int(name.split("_")[1]), 1) for name in GOLDEN["selections"] if name.startswith("query_")
         and not name.startswith("query_match")]
CASES += [(name, int(name.split("_")[2]) // int(name.split("_")[3]), int(name.split("_")[3]))
          for name in GOLDEN["selections"] if name.startswith("query_match")]


def _features() -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(INPUTS["M"], INPUTS["D"])


@pytest.mark.parametrize("name, clusters, per_cluster", CASES, ids=[c[0] for c in CASES])
def test_the_same_centres_choose_the_same_samples(name, clusters, per_cluster):
    """With the authors' handling (dedupe off: duplicate picks kept) ours is theirs index for index.
    kmeans_select starts k-means from the same seeded rows the probe gave the authors' KMeans."""
    feats = _features()
    picks, info = kmeans_select(feats, clusters, per_cluster, seed=INPUTS["start_seed"], dedupe=False)
    assert info["n_clusters"] == clusters
    theirs = GOLDEN["selections"][name]
    differ = [i for i, (a, b) in enumerate(zip(picks.tolist(), theirs)) if a != b]
    # A two-member cluster's centre is the midpoint of its samples: an exact tie, which the authors'
    # distance (|x|^2 + |y|^2 - 2xy) and torch.cdist break by rounding, differently (query_12: the
    # 4th centre is 1.9037 from both samples 10 and 11). Only such ties may differ.
    for i in differ:
        centre = info["centroids"][i // per_cluster]
        gap = abs(float((feats[picks[i]] - centre).norm() - (feats[theirs[i]] - centre).norm()))
        assert gap < 1e-5, f"pick {i}: ours {picks[i].item()}, theirs {theirs[i]}, {gap:.3g} apart (not a tie)"
    assert len(differ) <= 1


@pytest.mark.parametrize("name, clusters, per_cluster", CASES, ids=[c[0] for c in CASES])
def test_our_default_differs_only_where_the_authors_pick_a_sample_twice(name, clusters, per_cluster):
    """Ours repairs duplicate picks by default (a documented divergence): the batch then has no
    repeated sample, and every pick the authors made once is kept."""
    theirs = GOLDEN["selections"][name]
    plain, _ = kmeans_select(_features(), clusters, per_cluster, seed=INPUTS["start_seed"], dedupe=False)
    picks, info = kmeans_select(_features(), clusters, per_cluster, seed=INPUTS["start_seed"], dedupe=True)
    ours, plain = picks.tolist(), plain.tolist()  # plain: the authors' handling, ties as above
    assert len(plain) - len(set(plain)) == len(theirs) - len(set(theirs))  # the authors' duplicates, ours too
    assert len(set(ours)) == len(ours) and info["duplicates"] == len(plain) - len(set(plain))
    assert {i for i in plain if plain.count(i) == 1} <= set(ours)
    if info["duplicates"] == 0:
        assert ours == plain
