"""How many distinct real images the authors' DREAM query returns, under the fast-pytorch-kmeans that
is importable (issue #13: the IDC + DREAM pool cells).

DREAM's ``NEW_Strategy.query(n)`` (``new_strategy.py``) clusters a class's features into ``n``
k-means clusters with ``fast_pytorch_kmeans.KMeans(n_clusters=n, mode='euclidean')`` and returns the
sample nearest each centre. fast-pytorch-kmeans 0.1.9 (March 2023, the release current when DREAM's
repository was first committed, 2023-02-28) draws the initial centres as distinct points
(``np.random.choice(..., replace=False)``); 0.2.x draws them with replacement (``torch.randint``). A
centre drawn twice loses every point to its twin, its mean becomes the zero vector, and the sample
nearest the origin is returned for it, once per such centre: the matched batch then holds fewer
distinct images. This script measures that with their own query, imported from ``DREAM_REPO`` (never
copied here), on the features of a pool of real images under freshly initialised ConvNet-3s, the
clustering the IDC + DREAM cells do at every network.

    DREAM_REPO=<DREAM export> BENCH_DATA_ROOT=../shared/data \
        python experiments/parity/kmeans_versions.py --dataset cifar10-jpeg --pool 100 --nets 20
    PYTHONPATH=<folder holding fast_pytorch_kmeans 0.1.9> ... (the same)   # the other version

Prints one JSON line: the version, the queries made, and the distinct images per query (mean, min,
the share of queries with a repeat).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

from bench.data.datasets import DataOptions, load_dataset
from bench.nets.models import build_model


def kmeans_version() -> str:
    import fast_pytorch_kmeans
    for dist in metadata.distributions(path=[str(Path(fast_pytorch_kmeans.__file__).parents[1])]):
        if dist.metadata["Name"].replace("_", "-") == "fast-pytorch-kmeans":
            return dist.version
    return "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="cifar10-jpeg")
    parser.add_argument("--pool", type=int, default=100, help="training images a class (the cells' pool)")
    parser.add_argument("--clusters", type=int, default=32, help="n of query(n): the cells' batch_real")
    parser.add_argument("--nets", type=int, default=20, help="freshly initialised networks (10 classes each)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(os.environ["DREAM_REPO"]).resolve()))
    from new_strategy import NEW_Strategy  # the authors' query, as their condense.py calls it

    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)  # 0.1.9 draws its initial centres from numpy's global stream
    data = load_dataset(args.dataset, os.environ["BENCH_DATA_ROOT"], DataOptions(max_train_per_class=args.pool))
    distinct = []
    for _ in range(args.nets):
        net = build_model("convnet3", data).eval()
        for c in range(data.num_classes):
            images = data.train_images[data.train_labels == c]  # [0, 1] images, as their img_class
            picks = NEW_Strategy(images, net).query(args.clusters)
            distinct.append(len(torch.unique(picks)))
    counts = np.array(distinct)
    print(json.dumps({"fast_pytorch_kmeans": kmeans_version(), "dataset": args.dataset, "pool": args.pool,
                      "clusters": args.clusters, "queries": len(counts), "distinct_mean": round(float(counts.mean()), 2),
                      "distinct_min": int(counts.min()), "share_with_repeats": round(float((counts < args.clusters).mean()), 3)}))


if __name__ == "__main__":
    main()
