"""Figure kinds drawn from stored synthetic sets and real images: clusters (Fig 2d), t-SNE embeddings
(Fig 5) and image grids (Fig 6)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import seaborn as sns
import torch
from sklearn.cluster import KMeans
from sklearn.manifold import TSNE
from threadpoolctl import threadpool_limits
from torchvision.utils import make_grid

from bench.data.datasets import DATASETS, DataOptions, load_dataset
from bench.data.synset import SyntheticSet
from bench.dream.cluster_init import CLUSTERS_FILE
from bench.nets.models import build_model
from bench.report.figure_common import FigureResult, palette, save_figure, scale_subtitle, subplot_grid


def load_synset(out: Path, run_id: str):
    path = Path(out) / "runs" / run_id / "synset.pt"
    if not path.exists():
        return None
    return SyntheticSet.from_state(torch.load(path, map_location="cpu", weights_only=False))


def _dataset_for(rec: dict, data_root):
    return load_dataset(rec["config"]["dataset"], data_root, DataOptions(**rec["config"]["data"]))


def _features(rec: dict, dataset, images):
    """Features of a randomly initialised network of the run's model, seeded with the run's seed."""

    with torch.random.fork_rng():
        torch.manual_seed(int(rec["seed"]))
        net = build_model(rec["config"]["model"], dataset).eval()
    with torch.no_grad():
        return torch.cat([net.embed(images[i:i + 512]) for i in range(0, len(images), 512)]).numpy()


def _tsne(features: np.ndarray, seed: int) -> np.ndarray:
    n = len(features)
    perplexity = float(max(2.0, min(30.0, (n - 1) / 3.0)))
    with threadpool_limits(1):  # OpenMP spinning is slow on a busy machine; a few hundred points need no threads
        return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed,
                    method="exact" if n <= 1000 else "barnes_hut").fit_transform(features.astype(np.float64))


def _class_real(dataset, c: int, max_points: int, seed: int):
    ix = dataset.class_indices(c)
    if len(ix) > max_points:
        g = torch.Generator().manual_seed(seed)
        ix = ix[torch.randperm(len(ix), generator=g)[:max_points]]
    return dataset.normalise(dataset.train_images[ix])


def _class_synthetic(synset, dataset, c: int):
    images, labels = synset.training_tensors(dataset)
    return images[labels == c]


def _first_records(collected):
    groups, missing = [], []
    for cell in collected.cells:
        recs = collected.records_of(cell)
        if recs and (Path(collected_out(collected)) / "runs" / recs[0]["run_id"] / "synset.pt").exists():
            groups.append((cell, recs[0]))
        elif recs:
            missing.append((cell.describe(), "synset.pt not found beside the record"))
        else:
            missing.append((cell.describe(), cell.note or "not run yet"))
    return groups, missing


def _synset_figure(collected) -> tuple[FigureResult, list]:
    """The figure's result and its (cell, first record) pairs with a stored synthetic set."""
    res = FigureResult(collected.spec, collected.scale)
    groups, res.missing = _first_records(collected)
    if not groups:
        res.note = "no record with a stored synthetic set"
    return res, groups


def collected_out(collected) -> Path:
    return getattr(collected, "out", Path("results"))


def _run_clusters(out: Path, rec: dict, c: int, max_points: int):
    """The run's own clustering of class ``c`` (the cluster initialiser's artefact): training-set
    indices, each one's cluster, the picks as positions among the returned indices, and the seed of
    the network whose features were clustered; None when the run stored none."""
    path = Path(out) / "runs" / rec["run_id"] / CLUSTERS_FILE
    if not path.exists():
        return None
    stored = torch.load(path, map_location="cpu", weights_only=False)
    entry = stored["classes"].get(c)
    if entry is None:
        return None
    ix, cluster, picks = entry["indices"].long(), entry["cluster"].long(), entry["picks"].long()
    keep = torch.arange(len(ix))
    if len(ix) > max_points:  # a subsample for the layout, always with every pick in it
        g = torch.Generator().manual_seed(int(rec["seed"]))
        others = keep[~torch.isin(keep, picks)]
        keep = torch.cat([picks, others[torch.randperm(len(others), generator=g)[:max_points - len(picks)]]])
    star = torch.isin(keep, picks)
    return ix[keep], cluster[keep], torch.nonzero(star, as_tuple=True)[0], stored["net_seed"]


def _net_features(net_seed: int, model: str, dataset, images):
    """Features of the network the run clustered with (its seed is in the artefact)."""
    with torch.random.fork_rng():
        torch.manual_seed(int(net_seed))
        net = build_model(model, dataset).eval()
    with torch.no_grad():
        return torch.cat([net.embed(images[i:i + 512]) for i in range(0, len(images), 512)]).numpy()


def plot_clusters(collected, folder: Path, data_root=None) -> FigureResult:
    """Fig 2d from the run's own clusters and picks where it stored them (DREAM's cluster
    initialiser does), else a k-means of the run-seeded network's features, and the caption says so."""
    spec, f = collected.spec, collected.spec.figure
    res, groups = _synset_figure(collected)
    if not groups:
        return res
    fig, axes = subplot_grid(len(groups), width=3.6, height=3.2)
    texts = []
    for ax, (cell, rec) in zip(axes, groups):
        dataset = _dataset_for(rec, data_root)
        c = min(f.class_index, dataset.num_classes - 1)
        syn = _class_synthetic(load_synset(collected_out(collected), rec["run_id"]), dataset, c)
        own = _run_clusters(collected_out(collected), rec, c, f.max_points)
        if own is not None:
            ix, labels, nearest, net_seed = own
            real = dataset.normalise(dataset.train_images[ix])
            feats = _net_features(net_seed, rec["config"]["model"], dataset, _cat(real, syn))
            labels, nearest = labels.numpy(), nearest.numpy()
            source = "the run's own k-means clusters and picks"
        else:
            real = _class_real(dataset, c, f.max_points, int(rec["seed"]))
            feats = _features(rec, dataset, _cat(real, syn))
            with threadpool_limits(1):
                km = KMeans(n_clusters=max(1, min(f.n_clusters or 8, len(real))), n_init=3,
                            random_state=int(rec["seed"])).fit(feats[:len(real)])
            labels = km.labels_
            nearest = np.array([int(np.argmin(((feats[:len(real)] - centre) ** 2).sum(1))) for centre in km.cluster_centers_])
            source = "a k-means made for the figure (the run stored no clusters)"
        fr, k = feats[:len(real)], int(labels.max()) + 1
        xy = _tsne(feats, int(rec["seed"]))
        xr, xs = xy[:len(fr)], xy[len(fr):]
        on_synthetic = sum(bool(np.isclose(feats[len(fr):], fr[i], atol=1e-5).all(1).any()) for i in nearest)
        colours = sns.color_palette("husl", k)
        ax.scatter(xr[:, 0], xr[:, 1], c=[colours[l] for l in labels], s=6, alpha=0.55, lw=0, label="real samples")
        ax.scatter(xr[nearest, 0], xr[nearest, 1], marker="*", s=90, c=[colours[labels[i]] for i in nearest],
                   edgecolors="black", linewidths=0.6, label="nearest to a centre")
        if len(xs):
            ax.scatter(xs[:, 0], xs[:, 1], marker="X", s=30, c="black", label=f"synthetic ({len(xs)})")
        ax.set_title(f"{cell.method.key} · class {dataset.class_names[c]} · {k} sub-clusters")
        ax.set_xlabel("t-SNE 1")
        ax.set_ylabel("t-SNE 2")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.legend(frameon=False, loc="best")
        texts.append(f"{len(fr)} real images of class {dataset.class_names[c]} in {k} sub-clusters ({source}); "
                     f"{on_synthetic} of {len(nearest)} stars are synthetic images of run {rec['run_id']} "
                     f"({len(xs)} synthetic)")
        res.records += 1
    res.paths = save_figure(fig, spec, scale_subtitle(collected), folder, collected.scale)
    res.description = "; ".join(texts)
    return res


def _cat(a, b):
    return torch.cat([a, b])


def plot_embedding(collected, folder: Path, data_root=None) -> FigureResult:
    spec, f = collected.spec, collected.spec.figure
    res, groups = _synset_figure(collected)
    if not groups:
        return res
    colours = palette([c.method.key for c, _ in groups])
    fig, axes = subplot_grid(len(groups), width=3.4, height=3.1)
    texts = []
    for ax, (cell, rec) in zip(axes, groups):
        dataset = _dataset_for(rec, data_root)
        c = min(f.class_index, dataset.num_classes - 1)
        real = _class_real(dataset, c, f.max_points, int(rec["seed"]))
        syn = _class_synthetic(load_synset(collected_out(collected), rec["run_id"]), dataset, c)
        feats = _features(rec, dataset, _cat(real, syn))
        xy = _tsne(feats, int(rec["seed"]))
        xr, xs = xy[:len(real)], xy[len(real):]
        ax.scatter(xr[:, 0], xr[:, 1], s=6, c="0.6", alpha=0.6, lw=0, label=f"real ({len(xr)})")
        ax.scatter(xs[:, 0], xs[:, 1], s=28, marker="X", color=colours[cell.method.key], edgecolors="black",
                   linewidths=0.4, label=f"synthetic ({len(xs)})")
        ax.set_title(f"{cell.method.key} · class {dataset.class_names[c]}")
        ax.set_xlabel("t-SNE 1")
        ax.set_ylabel("t-SNE 2")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.legend(frameon=False, loc="best")
        texts.append(f"{cell.method.key}: {len(xs)} synthetic among {len(xr)} real images of class {dataset.class_names[c]}")
        res.records += 1
    res.paths = save_figure(fig, spec, scale_subtitle(collected), folder, collected.scale)
    res.description = "t-SNE of real and synthetic images; " + "; ".join(texts)
    return res


def to_unit(synset, dataset_name: str):
    """Stored images in [0, 1] for display (normalised sets are de-normalised)."""

    images = synset.images.detach().float()
    if synset.space == "normalized":
        spec = DATASETS.get(dataset_name)
        mean, std = spec.mean, spec.std
        if synset.pipeline == "idc" and spec.idc_mean is not None:
            mean, std = spec.idc_mean, spec.idc_std
        images = images * torch.tensor(std).view(1, -1, 1, 1) + torch.tensor(mean).view(1, -1, 1, 1)
    return images.clamp(0, 1)


def plot_images(collected, folder: Path, data_root=None) -> FigureResult:
    spec, f = collected.spec, collected.spec.figure
    res, groups = _synset_figure(collected)
    if not groups:
        return res
    fig, axes = subplot_grid(len(groups), width=3.4, height=3.4)
    texts = []
    for ax, (cell, rec) in zip(axes, groups):
        synset = load_synset(collected_out(collected), rec["run_id"])
        images = to_unit(synset, rec["config"]["dataset"])
        labels = synset.labels
        present = sorted(set(labels.tolist()))
        classes = [c for c in (f.classes or present[:4]) if c in present] or present[:4]
        per_row = int(max((labels == c).sum() for c in classes))
        rows = []
        for c in classes:
            row = images[labels == c]
            if len(row) < per_row:
                row = torch.cat([row, torch.ones(per_row - len(row), *row.shape[1:])])
            rows.append(row)
        grid = make_grid(torch.cat(rows), nrow=per_row, padding=1, pad_value=1.0)
        ax.imshow(grid.permute(1, 2, 0).squeeze(-1).numpy() if grid.shape[0] == 1 else grid.permute(1, 2, 0).numpy(),
                  cmap="gray" if images.shape[1] == 1 else None, interpolation="nearest")
        ax.grid(False)
        ax.set_xticks([])
        h = grid.shape[1] / len(classes)
        ax.set_yticks([h * (i + 0.5) for i in range(len(classes))])
        try:

            names = _dataset_for(rec, data_root).class_names
        except Exception:
            names = [str(i) for i in range(max(classes) + 1)]
        ax.set_yticklabels([names[c] if c < len(names) else str(c) for c in classes])
        ax.set_title(f"{cell.method.key} (IPC {cell.ipc}{', factor ' + str(synset.factor) if synset.factor > 1 else ''})")
        texts.append(f"{cell.method.key}: {len(classes)} classes x {per_row} stored images")
        res.records += 1
    res.paths = save_figure(fig, spec, scale_subtitle(collected), folder, collected.scale)
    res.description = "stored synthetic images; " + "; ".join(texts)
    return res
