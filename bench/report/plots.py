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

import os
from pathlib import Path

import numpy as np

from bench.grid.cells import collect
from bench.grid.specs import Spec, dataset_title
from bench.report.figure_common import (
    PARAM_DISPLAY,
    FigureResult,
    dig,
    draw_references,
    figure_style,
    palette,
    panel_key,
    save_figure,
    scale_subtitle,
    series_key,
    series_xy,
    subplot_grid,
    usable_groups,
)
from bench.report.image_plots import plot_clusters, plot_embedding, plot_images


def plot_line(collected, folder: Path) -> FigureResult:
    spec, f = collected.spec, collected.spec.figure
    res = FigureResult(spec, collected.scale)
    groups, res.missing = usable_groups(collected, lambda r: bool(dig(r, f.source)))
    if not groups:
        res.note = f"no record holds {f.source}"
        return res
    many = len({c.dataset for c, _ in groups}) > 1
    panels = list(dict.fromkeys(panel_key(spec, c, many) for c, _ in groups))
    series = list(dict.fromkeys(series_key(spec, c) for c, _ in groups))
    colours = palette(series)
    fig, axes = subplot_grid(len(panels))
    for cell, recs in groups:
        ax = axes[panels.index(panel_key(spec, cell, many))]
        per_seed = [series_xy(dig(r, f.source), f.x, f.y) for r in recs]
        xs = sorted(set().union(*[set(s) for s in per_seed]))
        means = np.array([np.mean([np.mean(s[x]) for s in per_seed if x in s]) for x in xs])
        stds = np.array([np.std([np.mean(s[x]) for s in per_seed if x in s]) for x in xs])
        key = series_key(spec, cell)
        ax.plot(xs, means, marker="o" if len(xs) <= 30 else None, ms=3, lw=1.3, color=colours[key],
                label=f"{key} (n={len(recs)})")
        if len(recs) > 1:
            ax.fill_between(xs, means - stds, means + stds, color=colours[key], alpha=0.2, lw=0)
        res.records += len(recs)
    for ax, title in zip(axes, panels):
        draw_references(ax, spec, [c.dataset for c, _ in groups])
        ax.set_xlabel(f.xlabel or f.x)
        ax.set_ylabel(f.ylabel or f.y)
        if f.logx:
            ax.set_xscale("log")
        if title:
            ax.set_title(title)
        ax.legend(frameon=False)
    res.paths = save_figure(fig, spec, scale_subtitle(collected), folder, collected.scale)
    res.description = (f"{f.ylabel or f.y} against {f.xlabel or f.x}, mean over seeds (band: ± std), "
                       f"series: {', '.join(series)}")
    return res


def plot_param(collected, folder: Path) -> FigureResult:
    spec, f = collected.spec, collected.spec.figure
    res = FigureResult(spec, collected.scale)
    name = f.x[6:] if f.x.startswith("param:") else f.x
    groups, res.missing = usable_groups(collected, lambda r: "accuracy" in r)
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
    colours = palette(list(series))
    fig, axes = subplot_grid(1, width=3.6, height=2.8)
    ax = axes[0]
    for label, points in series.items():
        points.sort()
        xs, ms, ss, ns = zip(*points)
        ax.errorbar(xs, ms, yerr=ss, marker="o", ms=4, capsize=3, lw=1.3, color=colours[label],
                    label=f"{label} (n={min(ns)}-{max(ns)} seeds)" if min(ns) != max(ns) else f"{label} (n={ns[0]} seeds)")
    draw_references(ax, spec, [c.dataset for c, _ in groups])
    if f.logx:
        ax.set_xscale("log")
        xs_all = sorted({p[0] for pts in series.values() for p in pts})
        ax.set_xticks(xs_all)
        ax.set_xticklabels([str(x) for x in xs_all])
        ax.minorticks_off()
    ax.set_xlabel(f.xlabel or PARAM_DISPLAY.get(name, name))
    ax.set_ylabel(f.ylabel or "test accuracy (%)")
    ax.legend(frameon=False)
    res.paths = save_figure(fig, spec, scale_subtitle(collected), folder, collected.scale)
    desc = "; ".join(f"{label}: " + ", ".join(f"{PARAM_DISPLAY.get(name, name)}={x}: {m:.2f}±{s:.2f}" for x, m, s, _ in pts)
                     for label, pts in series.items())
    res.description = f"final accuracy against {PARAM_DISPLAY.get(name, name)} ({desc})"
    return res


def plot_hist(collected, folder: Path) -> FigureResult:
    import seaborn as sns  # deferred: a heavy import, needed only when a figure is drawn

    spec, f = collected.spec, collected.spec.figure
    res = FigureResult(spec, collected.scale)

    def values(rec):
        items = dig(rec, f.source) or []
        out = []
        for item in items:
            v = item.get(f.x) if isinstance(item, dict) else item
            out.extend(v if isinstance(v, list) else [v] if v is not None else [])
        return out

    groups, res.missing = usable_groups(collected, lambda r: bool(values(r)))
    if not groups:
        res.note = f"no record holds {f.source}"
        return res
    many = len({c.dataset for c, _ in groups}) > 1
    panels = list(dict.fromkeys(panel_key(spec, c, many) for c, _ in groups))
    series = list(dict.fromkeys(series_key(spec, c) for c, _ in groups))
    colours = palette(series)
    fig, axes = subplot_grid(len(panels))
    stats = []
    for cell, recs in groups:
        ax = axes[panels.index(panel_key(spec, cell, many))]
        vals = np.array([v for r in recs for v in values(r)], dtype=float)
        key = series_key(spec, cell)
        sns.histplot(vals, ax=ax, stat="density", element="step", fill=True, alpha=0.25, color=colours[key],
                     label=f"{key} (n={len(vals)})", bins=min(40, max(5, len(vals) // 5)))
        stats.append(f"{key}{' ' + panel_key(spec, cell, many) if panel_key(spec, cell, many) else ''}: "
                     f"mean {vals.mean():.3g}, std {vals.std():.3g}, {len(vals)} values")
        res.records += len(recs)
    for ax, title in zip(axes, panels):
        ax.set_xlabel(f.xlabel or f.x)
        ax.set_ylabel(f.ylabel or "density")
        if title:
            ax.set_title(title)
        ax.legend(frameon=False)
    res.paths = save_figure(fig, spec, scale_subtitle(collected), folder, collected.scale)
    res.description = "distribution of " + (f.xlabel or f.x) + "; " + "; ".join(stats)
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
    colours = palette(series)
    fig, axes = subplot_grid(1, width=3.8, height=2.9)
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
    paper_dataset = spec.grid.datasets[0]  # the dataset of the spec's (the paper's) grid
    for label, points in spec.figure.reference_points:
        if any(c.dataset == paper_dataset for c, _ in groups):
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
    if opts["dataset"] != paper_dataset:
        subtitle += f" · stand-in for {dataset_title(paper_dataset)}"
    res.paths = save_figure(fig, spec, subtitle, folder, col.scale)
    res.description = "accuracy on the classes seen so far after each step (classes seen: accuracy %); " + "; ".join(desc)
    return res


KINDS = {"line": plot_line, "param": plot_param, "hist": plot_hist, "clusters": plot_clusters,
         "embedding": plot_embedding, "images": plot_images, "continual": plot_continual}


def draw(spec: Spec, out: Path, scales=None, datasets=None, data_root=None, **expand_kwargs) -> list[FigureResult]:
    """Draw every scale of a figure that has records; a result per scale, with what is missing."""

    figure_style()
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
