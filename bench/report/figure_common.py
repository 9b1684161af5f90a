"""What every figure kind shares: the result it returns, style, palette, record access, panels,
reference lines, saving (PNG and PDF) and the cells with usable records."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot: figures are files, never windows
import matplotlib.pyplot as plt  # noqa: E402

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


def figure_style() -> None:
    import seaborn as sns  # deferred: a heavy import, needed only when a figure is drawn

    sns.set_theme(context="paper", style="whitegrid", font_scale=1.0)
    plt.rcParams.update({"figure.dpi": 100, "savefig.dpi": 200, "axes.titlesize": 9, "axes.labelsize": 9,
                         "legend.fontsize": 7, "xtick.labelsize": 8, "ytick.labelsize": 8,
                         "pdf.fonttype": 42, "ps.fonttype": 42})


def palette(keys: list[str]) -> dict[str, tuple]:
    import seaborn as sns  # deferred: a heavy import, needed only when a figure is drawn

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


def series_xy(items, x: str, y: str) -> dict[float, list[float]]:
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


def series_key(spec: Spec, cell) -> str:
    axis = spec.figure.series
    if axis.startswith("param:"):
        name = axis[6:]
        return f"{cell.method.key} {PARAM_DISPLAY.get(name, name)}={cell.param(name)}"
    return cell.method.key


def panel_key(spec: Spec, cell, many_datasets: bool) -> str:
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


def subplot_grid(n: int, width: float = 3.3, height: float = 2.6):
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows + 0.5), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def scale_subtitle(collected) -> str:
    parts = [f"scale: {collected.scale}"]
    for d in collected.datasets:
        variant = collected.variants.get(d)
        if variant is not None:
            parts.append(f"{dataset_title(d)}" + (f" [{variant}]" if variant else ""))
    return " · ".join(parts)


def save_figure(fig, spec: Spec, subtitle: str, folder: Path, scale: str) -> list[Path]:
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


def draw_references(ax, spec: Spec, datasets=()) -> None:
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


def usable_groups(collected, usable):
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
