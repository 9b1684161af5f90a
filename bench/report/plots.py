"""Figures from stored records only: ``figures/<id>.toml`` -> ``<out>/figures/<id>-<scale>.{png,pdf}``.

Plot kinds (``[figure] plot``):

* ``line``: a per-iteration series read from the records (``source`` = dotted path, e.g.
  ``metrics.curve`` with fields ``x``/``y``, or ``metrics.loss``, a list of numbers), mean over
  seeds with a ± std band, one line per method (Figs 2b, 2c, 4a, 4c).
* ``param``: final accuracy against a parameter of the grid (``x = "param:<name>"``), error bars
  over seeds (Fig 4b).
* ``hist``: the distribution of values pooled from the records (``x`` = the list field of each
  entry, e.g. ``norms`` of ``metrics.diagnostics.grad_norms``) (Figs 1a, 3).
* ``clusters``: one class's real images embedded (features of a seeded random network), k-means
  sub-clusters, the samples nearest each centre and the run's synthetic images, by t-SNE (Fig 2d).
* ``embedding``: real and synthetic images of one class by t-SNE, a panel per method (Fig 5).
* ``images``: the stored synthetic images as a grid, a row per class, a panel per method (Fig 6).
* ``continual``: accuracy against the number of classes seen (Fig 4d, records of the ``continual`` task).

Every figure names its scale preset and data variant; the paper's reference lines are dashed.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib
from bench.data.synset import SyntheticSet
from bench.data.datasets import DataOptions, load_dataset
from bench.nets.models import build_model
from bench.data.datasets import DATASETS
from bench.data.datasets import load_dataset  # noqa: F401  (names only when the data is at hand)
from bench.grid.cells import collect

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from bench.grid.specs import Spec, dataset_title, paper_stand_in  # noqa: E402

PARAM_DISPLAY = {"sampler.clusters": "N", "sampler.per_cluster": "n", "sampler.interval": "I_int"}


@dataclass
class FigureResult:
    spec: Spec
    scale: str
    paths: list = field(default_factory=list)
    records: int = 0
    missing: list = field(default_factory=list)  # (cell description, reason)
    note: str = ""
    description: str = ""

    def summary(self) -> str:
        head = f"{self.spec.id} (scale {self.scale}): "
        if self.paths:
            head += f"wrote {', '.join(str(p) for p in self.paths)} from {self.records} record(s)"
        else:
            head += f"nothing drawn: {self.note}"
        lines = [head]
        if self.description:
            lines.append(f"  shows: {self.description}")
        reasons: dict[str, list[str]] = {}
        for what, why in self.missing:
            reasons.setdefault(why, []).append(what)
        for why, whats in reasons.items():
            lines.append(f"  missing {len(whats)} cell(s) ({why}): {'; '.join(whats[:6])}{' ...' if len(whats) > 6 else ''}")
        return "\n".join(lines)


def _style() -> None:
    import seaborn as sns

    sns.set_theme(context="paper", style="whitegrid", font_scale=1.0)
    plt.rcParams.update({"figure.dpi": 100, "savefig.dpi": 200, "axes.titlesize": 9, "axes.labelsize": 9,
                         "legend.fontsize": 7, "xtick.labelsize": 8, "ytick.labelsize": 8,
                         "pdf.fonttype": 42, "ps.fonttype": 42})


def _palette(keys: list[str]) -> dict[str, tuple]:
    import seaborn as sns

    colours = sns.color_palette("colorblind", max(len(keys), 3))
    return {k: colours[i % len(colours)] for i, k in enumerate(keys)}


def dig(record: dict, path: str):
    """``metrics.diagnostics.mmd`` -> record["metrics"]["diagnostics"]["mmd"] (None when absent)."""
    value = record
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _series_xy(items, x: str, y: str) -> dict[float, list[float]]:
    """x -> y values (several per x when entries repeat an x, e.g. one per class)."""
    out: dict[float, list[float]] = {}
    if not items:
        return out
    for i, item in enumerate(items):
        if isinstance(item, dict):
            xv, yv = item.get(x), item.get(y)
        else:
            xv, yv = i + 1, item
        if xv is None or yv is None or (isinstance(yv, float) and not math.isfinite(yv)):
            continue
        out.setdefault(float(xv), []).append(float(yv))
    return out


def _series_key(spec: Spec, cell) -> str:
    axis = spec.figure.series
    if axis.startswith("param:"):
        name = axis[6:]
        return f"{cell.method.key} {PARAM_DISPLAY.get(name, name)}={cell.param(name)}"
    return cell.method.key


def _panel_key(spec: Spec, cell, many_datasets: bool) -> str:
    axis = spec.figure.panels
    parts = []
    if many_datasets:
        parts.append(dataset_title(cell.dataset))
    if axis == "method":
        parts.append(cell.method.key)
    elif axis == "base":
        parts.append(cell.method.method.upper())
    elif axis == "dataset" and not many_datasets:
        parts.append(dataset_title(cell.dataset))
    elif axis.startswith("param:"):
        name = axis[6:]
        parts.append(f"{PARAM_DISPLAY.get(name, name)} = {cell.param(name)}")
    elif axis in ("ipc", "model"):
        parts.append(f"{axis} {getattr(cell, axis)}")
    return " · ".join(parts)


def _subplots(n: int, width: float = 3.3, height: float = 2.6):
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows + 0.5), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def _subtitle(collected) -> str:
    parts = [f"scale: {collected.scale}"]
    for d in collected.datasets:
        variant = collected.variants.get(d)
        if variant is not None:
            parts.append(f"{dataset_title(d)}" + (f" [{variant}]" if variant else ""))
    return " · ".join(parts)


def _finish(fig, spec: Spec, subtitle: str, folder: Path, scale: str) -> list[Path]:
    fig.suptitle(f"{spec.title}\n{subtitle}", fontsize=9)
    fig.tight_layout()
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in ("png", "pdf"):
        path = folder / f"{spec.id}-{scale}.{ext}"
        fig.savefig(path, bbox_inches="tight")
        paths.append(path)
    plt.close(fig)
    return paths


def _references(ax, spec: Spec, datasets=()) -> None:
    """The paper's lines, only on figures of the paper's dataset (or its stand-in, e.g. cifar10-jpeg)."""

    own = set(spec.grid.datasets)
    if datasets and not any(d in own or paper_stand_in(d) in own for d in datasets):
        return
    for ref in spec.figure.references:
        if ref.axis == "x":
            ax.axvline(ref.value, ls="--", lw=0.9, color="0.35")
        else:
            ax.axhline(ref.value, ls="--", lw=0.9, color="0.35")
        ax.annotate(ref.label, xy=(0.01, ref.value) if ref.axis == "y" else (ref.value, 0.02),
                    xycoords=("axes fraction", "data") if ref.axis == "y" else ("data", "axes fraction"),
                    fontsize=6, color="0.3", va="bottom")


# ------------------------------------------------------------------------------------------ plot kinds
def _grouped(collected, usable):
    """[(cell, records)] of the cells with usable records; the rest as missing."""
    groups, missing = [], []
    for cell in collected.cells:
        recs = [r for r in collected.records_of(cell) if usable(r)]
        if recs:
            groups.append((cell, recs))
        elif collected.records_of(cell):
            missing.append((cell.describe(), f"records hold no {collected.spec.figure.source or 'usable data'}"))
        else:
            missing.append((cell.describe(), cell.note or "not run yet"))
    return groups, missing


def plot_line(collected, folder: Path) -> FigureResult:
    spec, f = collected.spec, collected.spec.figure
    res = FigureResult(spec, collected.scale)
    groups, res.missing = _grouped(collected, lambda r: bool(dig(r, f.source)))
    if not groups:
        res.note = f"no record holds {f.source}"
        return res
    many = len({c.dataset for c, _ in groups}) > 1
    panels = list(dict.fromkeys(_panel_key(spec, c, many) for c, _ in groups))
    series = list(dict.fromkeys(_series_key(spec, c) for c, _ in groups))
    colours = _palette(series)
    fig, axes = _subplots(len(panels))
    for cell, recs in groups:
        ax = axes[panels.index(_panel_key(spec, cell, many))]
        per_seed = [_series_xy(dig(r, f.source), f.x, f.y) for r in recs]
        xs = sorted(set().union(*[set(s) for s in per_seed]))
        means = np.array([np.mean([np.mean(s[x]) for s in per_seed if x in s]) for x in xs])
        stds = np.array([np.std([np.mean(s[x]) for s in per_seed if x in s]) for x in xs])
        key = _series_key(spec, cell)
        ax.plot(xs, means, marker="o" if len(xs) <= 30 else None, ms=3, lw=1.3, color=colours[key],
                label=f"{key} (n={len(recs)})")
        if len(recs) > 1:
            ax.fill_between(xs, means - stds, means + stds, color=colours[key], alpha=0.2, lw=0)
        res.records += len(recs)
    for ax, title in zip(axes, panels):
        _references(ax, spec, [c.dataset for c, _ in groups])
        ax.set_xlabel(f.xlabel or f.x)
        ax.set_ylabel(f.ylabel or f.y)
        if f.logx:
            ax.set_xscale("log")
        if title:
            ax.set_title(title)
        ax.legend(frameon=False)
    res.paths = _finish(fig, spec, _subtitle(collected), folder, collected.scale)
    res.description = (f"{f.ylabel or f.y} against {f.xlabel or f.x}, mean over seeds (band: ± std), "
                       f"series: {', '.join(series)}")
    return res


def plot_param(collected, folder: Path) -> FigureResult:
    spec, f = collected.spec, collected.spec.figure
    res = FigureResult(spec, collected.scale)
    name = f.x[6:] if f.x.startswith("param:") else f.x
    groups, res.missing = _grouped(collected, lambda r: "accuracy" in r)
    if not groups:
        res.note = "no records of any cell"
        return res
    series: dict[str, list] = {}
    for cell, recs in groups:
        accs = [r["accuracy"]["per_model"][r["accuracy"]["model"]]["mean"] for r in recs]
        label = cell.method.key + (f" · {dataset_title(cell.dataset)}"
                                   if len(collected.datasets) > 1 else "")
        series.setdefault(label, []).append((cell.param(name), float(np.mean(accs)), float(np.std(accs)), len(accs)))
        res.records += len(recs)
    colours = _palette(list(series))
    fig, axes = _subplots(1, width=3.6, height=2.8)
    ax = axes[0]
    for label, points in series.items():
        points.sort()
        xs, ms, ss, ns = zip(*points)
        ax.errorbar(xs, ms, yerr=ss, marker="o", ms=4, capsize=3, lw=1.3, color=colours[label],
                    label=f"{label} (n={min(ns)}-{max(ns)} seeds)" if min(ns) != max(ns) else f"{label} (n={ns[0]} seeds)")
    _references(ax, spec, [c.dataset for c, _ in groups])
    if f.logx:
        ax.set_xscale("log")
        xs_all = sorted({p[0] for pts in series.values() for p in pts})
        ax.set_xticks(xs_all)
        ax.set_xticklabels([str(x) for x in xs_all])
        ax.minorticks_off()
    ax.set_xlabel(f.xlabel or PARAM_DISPLAY.get(name, name))
    ax.set_ylabel(f.ylabel or "test accuracy (%)")
    ax.legend(frameon=False)
    res.paths = _finish(fig, spec, _subtitle(collected), folder, collected.scale)
    desc = "; ".join(f"{label}: " + ", ".join(f"{PARAM_DISPLAY.get(name, name)}={x}: {m:.2f}±{s:.2f}" for x, m, s, _ in pts)
                     for label, pts in series.items())
    res.description = f"final accuracy against {PARAM_DISPLAY.get(name, name)} ({desc})"
    return res


def plot_hist(collected, folder: Path) -> FigureResult:
    import seaborn as sns

    spec, f = collected.spec, collected.spec.figure
    res = FigureResult(spec, collected.scale)

    def values(rec):
        items = dig(rec, f.source) or []
        out = []
        for item in items:
            v = item.get(f.x) if isinstance(item, dict) else item
            out.extend(v if isinstance(v, list) else [v] if v is not None else [])
        return out

    groups, res.missing = _grouped(collected, lambda r: bool(values(r)))
    if not groups:
        res.note = f"no record holds {f.source}"
        return res
    many = len({c.dataset for c, _ in groups}) > 1
    panels = list(dict.fromkeys(_panel_key(spec, c, many) for c, _ in groups))
    series = list(dict.fromkeys(_series_key(spec, c) for c, _ in groups))
    colours = _palette(series)
    fig, axes = _subplots(len(panels))
    stats = []
    for cell, recs in groups:
        ax = axes[panels.index(_panel_key(spec, cell, many))]
        vals = np.array([v for r in recs for v in values(r)], dtype=float)
        key = _series_key(spec, cell)
        sns.histplot(vals, ax=ax, stat="density", element="step", fill=True, alpha=0.25, color=colours[key],
                     label=f"{key} (n={len(vals)})", bins=min(40, max(5, len(vals) // 5)))
        stats.append(f"{key}{' ' + _panel_key(spec, cell, many) if _panel_key(spec, cell, many) else ''}: "
                     f"mean {vals.mean():.3g}, std {vals.std():.3g}, {len(vals)} values")
        res.records += len(recs)
    for ax, title in zip(axes, panels):
        ax.set_xlabel(f.xlabel or f.x)
        ax.set_ylabel(f.ylabel or "density")
        if title:
            ax.set_title(title)
        ax.legend(frameon=False)
    res.paths = _finish(fig, spec, _subtitle(collected), folder, collected.scale)
    res.description = "distribution of " + (f.xlabel or f.x) + "; " + "; ".join(stats)
    return res


# ------------------------------------------------------------------------------------------ image-based
def load_synset(out: Path, run_id: str):
    import torch


    path = Path(out) / "runs" / run_id / "synset.pt"
    if not path.exists():
        return None
    return SyntheticSet.from_state(torch.load(path, map_location="cpu", weights_only=False))


def _dataset_for(rec: dict, data_root):

    return load_dataset(rec["config"]["dataset"], data_root, DataOptions(**rec["config"]["data"]))


def _features(rec: dict, dataset, images):
    """Features of a randomly initialised network of the run's model, seeded with the run's seed."""
    import torch


    with torch.random.fork_rng():
        torch.manual_seed(int(rec["seed"]))
        net = build_model(rec["config"]["model"], dataset).eval()
    with torch.no_grad():
        return torch.cat([net.embed(images[i:i + 512]) for i in range(0, len(images), 512)]).numpy()


def _tsne(features: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    n = len(features)
    perplexity = float(max(2.0, min(30.0, (n - 1) / 3.0)))
    with threadpool_limits(1):  # OpenMP spinning is slow on a busy machine; a few hundred points need no threads
        return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed,
                    method="exact" if n <= 1000 else "barnes_hut").fit_transform(features.astype(np.float64))


def _class_real(dataset, c: int, max_points: int, seed: int):
    import torch

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


def collected_out(collected) -> Path:
    return getattr(collected, "out", Path("results"))


def plot_clusters(collected, folder: Path, data_root=None) -> FigureResult:
    from sklearn.cluster import KMeans

    spec, f = collected.spec, collected.spec.figure
    res = FigureResult(spec, collected.scale)
    groups, res.missing = _first_records(collected)
    if not groups:
        res.note = "no record with a stored synthetic set"
        return res
    fig, axes = _subplots(len(groups), width=3.6, height=3.2)
    texts = []
    for ax, (cell, rec) in zip(axes, groups):
        dataset = _dataset_for(rec, data_root)
        c = min(f.class_index, dataset.num_classes - 1)
        real = _class_real(dataset, c, f.max_points, int(rec["seed"]))
        syn = _class_synthetic(load_synset(collected_out(collected), rec["run_id"]), dataset, c)
        feats = _features(rec, dataset, _cat(real, syn))
        fr, fs = feats[:len(real)], feats[len(real):]
        k = f.n_clusters or 8
        k = max(1, min(k, len(fr)))
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1):
            km = KMeans(n_clusters=k, n_init=3, random_state=int(rec["seed"])).fit(fr)
        nearest = [int(np.argmin(((fr - centre) ** 2).sum(1))) for centre in km.cluster_centers_]
        xy = _tsne(np.concatenate([fr, fs]), int(rec["seed"]))
        xr, xs = xy[:len(fr)], xy[len(fr):]
        import seaborn as sns

        colours = sns.color_palette("husl", k)
        ax.scatter(xr[:, 0], xr[:, 1], c=[colours[l] for l in km.labels_], s=6, alpha=0.55, lw=0, label="real samples")
        ax.scatter(xr[nearest, 0], xr[nearest, 1], marker="*", s=90, c=[colours[i] for i in range(k)],
                   edgecolors="black", linewidths=0.6, label="nearest to a centre")
        if len(xs):
            ax.scatter(xs[:, 0], xs[:, 1], marker="X", s=30, c="black", label=f"synthetic ({len(xs)})")
        ax.set_title(f"{cell.method.key} · class {dataset.class_names[c]} · {k} sub-clusters")
        ax.set_xlabel("t-SNE 1")
        ax.set_ylabel("t-SNE 2")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.legend(frameon=False, loc="best")
        texts.append(f"{len(fr)} real images of class {dataset.class_names[c]} in {k} k-means sub-clusters, "
                     f"{len(xs)} synthetic images of run {rec['run_id']}")
        res.records += 1
    res.paths = _finish(fig, spec, _subtitle(collected), folder, collected.scale)
    res.description = "; ".join(texts)
    return res


def _cat(a, b):
    import torch

    return torch.cat([a, b])


def plot_embedding(collected, folder: Path, data_root=None) -> FigureResult:
    spec, f = collected.spec, collected.spec.figure
    res = FigureResult(spec, collected.scale)
    groups, res.missing = _first_records(collected)
    if not groups:
        res.note = "no record with a stored synthetic set"
        return res
    colours = _palette([c.method.key for c, _ in groups])
    fig, axes = _subplots(len(groups), width=3.4, height=3.1)
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
    res.paths = _finish(fig, spec, _subtitle(collected), folder, collected.scale)
    res.description = "t-SNE of real and synthetic images; " + "; ".join(texts)
    return res


def to_unit(synset, dataset_name: str):
    """Stored images in [0, 1] for display (normalised sets are de-normalised)."""
    import torch


    images = synset.images.detach().float()
    if synset.space == "normalized":
        spec = DATASETS.get(dataset_name)
        mean, std = spec.mean, spec.std
        if synset.pipeline == "idc" and spec.idc_mean is not None:
            mean, std = spec.idc_mean, spec.idc_std
        images = images * torch.tensor(std).view(1, -1, 1, 1) + torch.tensor(mean).view(1, -1, 1, 1)
    return images.clamp(0, 1)


def plot_images(collected, folder: Path, data_root=None) -> FigureResult:
    import torch
    from torchvision.utils import make_grid

    spec, f = collected.spec, collected.spec.figure
    res = FigureResult(spec, collected.scale)
    groups, res.missing = _first_records(collected)
    if not groups:
        res.note = "no record with a stored synthetic set"
        return res
    fig, axes = _subplots(len(groups), width=3.4, height=3.4)
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
    res.paths = _finish(fig, spec, _subtitle(collected), folder, collected.scale)
    res.description = "stored synthetic images; " + "; ".join(texts)
    return res


def plot_continual(collected, folder: Path) -> FigureResult:
    """Fig 4d: accuracy on the classes seen so far after each step, per method (continual runs)."""
    spec, col = collected.spec, collected
    res = FigureResult(spec, col.scale, missing=[(c.describe(), note) for c, note in col.missing()])
    groups = [(cell, recs) for cell in col.cells if (recs := col.records_of(cell))]
    if not groups:
        res.note = "no continual-learning records"
        return res
    series = list(dict.fromkeys(c.method.key for c, _ in groups))
    colours = _palette(series)
    fig, axes = _subplots(1, width=3.8, height=2.9)
    ax = axes[0]
    desc = []
    for cell, recs in groups:
        xs = [s["classes_seen"] for s in recs[0]["steps"]]
        ys = np.array([[s["accuracy"] for s in r["steps"]] for r in recs])
        m, s = ys.mean(0), ys.std(0)
        ax.plot(xs, m, marker="o", ms=3.5, lw=1.3, color=colours[cell.method.key],
                label=f"{cell.method.key} (n={len(recs)})")
        if len(recs) > 1:
            ax.fill_between(xs, m - s, m + s, color=colours[cell.method.key], alpha=0.2, lw=0)
        desc.append(f"{cell.method.key}: " + ", ".join(f"{x}: {v:.1f}" for x, v in zip(xs, m)))
        res.records += len(recs)
    for label, points in spec.figure.reference_points:
        if any(c.dataset == "cifar100" for c, _ in groups):
            px, py = zip(*points)
            ax.plot(px, py, ls="--", marker="s", ms=3, lw=0.9, color="0.35", label=label)
    ax.set_xlabel(spec.figure.xlabel)
    ax.set_ylabel(spec.figure.ylabel)
    ax.legend(frameon=False)
    first = groups[0][1][0]
    opts, task = first["config"], first["config"]["task_options"]
    variant = col.variants.get(opts["dataset"], "")
    subtitle = (f"scale: {col.scale} · {dataset_title(opts['dataset'])}"
                f"{' [' + variant + ']' if variant else ''} · {task['steps']} steps of "
                f"{first['classes_per_step']} classes · distil {opts['model']}, evaluate {task['eval_model']}")
    if opts["dataset"] != "cifar100":
        subtitle += " · stand-in for CIFAR100"
    res.paths = _finish(fig, spec, subtitle, folder, col.scale)
    res.description = "accuracy on the classes seen so far after each step (classes seen: accuracy %); " + "; ".join(desc)
    return res


KINDS = {"line": plot_line, "param": plot_param, "hist": plot_hist, "clusters": plot_clusters,
         "embedding": plot_embedding, "images": plot_images, "continual": plot_continual}


def draw(spec: Spec, out: Path, scales=None, datasets=None, data_root=None, **expand_kwargs) -> list[FigureResult]:
    """Draw every scale of a figure that has records; a result per scale, with what is missing."""

    _style()
    out = Path(out)
    folder = out / "figures"
    data_root = data_root or os.environ.get("BENCH_DATA_ROOT")
    results = []
    for col in collect(spec, out, scales=scales, datasets=datasets, **expand_kwargs):
        col.out = out
        fn = KINDS[spec.figure.plot]
        res = fn(col, folder, data_root) if spec.figure.plot in ("clusters", "embedding", "images") else fn(col, folder)
        if not res.paths and not col.records:
            res.note = "no records of any cell of this figure"
        results.append(res)
    for res in results:
        if res.paths:
            sidecar = folder / f"{spec.id}-{res.scale}.txt"
            sidecar.write_text(f"{spec.caption}\n\nShows: {res.description}\n")
    return results
