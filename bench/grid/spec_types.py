"""The frozen dataclasses a table or figure spec loads into (bench/grid/specs.py reads and checks
the TOML): the grid, per-scale overrides, a table's layout, a figure's options, the paper's values."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.core.errors import BenchError


@dataclass(frozen=True)
class PaperValue:
    text: str
    mean: float | None
    std: float | None = None
    note: str = ""


@dataclass(frozen=True)
class MethodSpec:
    key: str  # the row/column label, e.g. "DREAM"
    method: str | None  # registry name; None for reported-only columns
    dream: bool = False
    sampler: str | None = None
    initialiser: str | None = None
    params: tuple[tuple[str, Any], ...] = ()
    reported: bool = False  # the paper's value only (CAFE, MTT, TESLA, whole dataset...)


@dataclass(frozen=True)
class ScaleOverride:
    seeds: str | None = None
    ipcs: tuple[int, ...] | None = None
    datasets: tuple[str, ...] | None = None
    models: tuple[str, ...] | None = None
    eval_models: tuple[str, ...] | None = None
    param_sets: tuple[tuple[tuple[str, Any], ...], ...] | None = None
    classes: int | None = None
    max_train_per_class: int | None = None
    max_test_per_class: int | None = None
    params: tuple[tuple[str, Any], ...] = ()
    eval: tuple[tuple[str, Any], ...] = ()
    steps: int | None = None  # continual learning


@dataclass(frozen=True)
class Grid:
    methods: tuple[MethodSpec, ...]
    datasets: tuple[str, ...]
    ipcs: tuple[int, ...]
    seeds: str = "0-4"
    models: tuple[str, ...] = ("convnet3",)
    eval_models: tuple[str, ...] = ()  # empty: the distillation model
    params: tuple[tuple[str, Any], ...] = ()
    eval: tuple[tuple[str, Any], ...] = ()
    param_sets: tuple[tuple[tuple[str, Any], ...], ...] = ((),)  # an axis of overrides (Table 5, Fig 4b)


@dataclass(frozen=True)
class Metric:
    key: str
    kind: str = "accuracy"  # accuracy | iterations_to_reach
    label: str = ""
    reference: str | None = None  # iterations_to_reach: the method key whose last curve point is the target
    tolerance: float | None = None


@dataclass(frozen=True)
class Layout:
    rows: tuple[str, ...]
    columns: tuple[str, ...]
    metrics: tuple[Metric, ...] = (Metric("accuracy"),)
    cell: str = "top-1 test accuracy (%) of the evaluation model, mean ± std over seeds"


@dataclass(frozen=True)
class Reference:
    label: str
    value: float
    axis: str = "y"  # a horizontal (y) or vertical (x) line
    series: str | None = None  # method key it belongs to (colour)


@dataclass(frozen=True)
class FigureOptions:
    plot: str  # line | param | hist | embedding | images | continual
    source: str = ""  # dotted path into the record, e.g. metrics.curve
    x: str = "iteration"
    y: str = "accuracy"
    xlabel: str = ""
    ylabel: str = ""
    logx: bool = False
    series: str = "method"  # what the colours are: method | param:<name>
    panels: str = ""  # what the subplots are: "" | method | param:<name> | dataset
    class_index: int = 0  # embeddings and image grids: which class
    classes: tuple[int, ...] = ()  # image grids: which classes (default: the first four)
    n_clusters: int = 0  # cluster figure: sub-clusters (0: the spec's N param or 8)
    max_points: int = 500  # t-SNE: real samples drawn
    references: tuple[Reference, ...] = ()
    reference_points: tuple[tuple[str, tuple[tuple[float, float], ...]], ...] = ()  # (label, ((x, y), ...))


@dataclass(frozen=True)
class ContinualOptions:
    steps: int = 5
    protocol: str = "idc"  # idc: fine-tune with KD across steps | dm: fresh network per step
    eval_model: str = "resnet10"
    epochs: int = 1000
    kd_temperature: float = 2.0
    kd_beta: float = 1.0


@dataclass(frozen=True)
class Spec:
    id: str
    kind: str  # table | figure
    path: Path
    title: str
    caption: str
    grid: Grid
    scales: dict = field(default_factory=dict)  # scale name -> ScaleOverride
    tolerance: float = 2.0
    # when set, an accuracy cell's tolerance is max(tolerance, tolerance_std x the paper's std)
    tolerance_std: float | None = None
    layout: Layout | None = None
    figure: FigureOptions | None = None
    continual: ContinualOptions | None = None
    paper: dict = field(default_factory=dict)  # row key -> {column key -> PaperValue}

    def method(self, key: str) -> MethodSpec:
        for m in self.grid.methods:
            if m.key == key:
                return m
        raise BenchError(f"{self.path}: no method with key {key!r}; known: {[m.key for m in self.grid.methods]}")

    def paper_value(self, row: str, column: str) -> PaperValue | None:
        return self.paper.get(row, {}).get(column)


# ------------------------------------------------------------------------------------------ parsing
_VALUE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(?:±\s*(\d+(?:\.\d+)?))?\s*(.*?)\s*$")


def parse_paper_value(text: Any) -> PaperValue:
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return PaperValue(str(text), float(text))
    text = str(text)
    if text.strip() in ("-", "", "—"):
        return PaperValue(text.strip() or "-", None)
    m = _VALUE.match(text.replace("+-", "±"))
    if not m:
        raise ValueError(f"cannot read {text!r} as a number, 'mean±std' or '-'")
    return PaperValue(text.strip(), float(m.group(1)), float(m.group(2)) if m.group(2) else None, m.group(3))
