"""Tables from stored records: a spec's cells, ours beside the paper's numbers (rendering in
bench/report/table_render.py).

A table cell holds ours (mean ± std over the seeds found, and how many) beside the paper's value and
the difference; a difference larger than the tolerance is flagged, a cell without records is marked
missing with the reason. One table per scale preset: presets and data variants never mix (cells
are matched by cell id, which includes both).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path

from bench.core.errors import BenchError
from bench.grid.cells import collect
from bench.grid.specs import MODEL_DISPLAY, Metric, PaperValue, Spec, dataset_title, paper_stand_in

PARAM_DISPLAY = {"sampler.clusters": "N", "sampler.per_cluster": "n", "sampler.interval": "I_int"}
AXIS_DISPLAY = {"method": "method", "dataset": "dataset", "ipc": "IPC", "model": "D (distil)",
                "eval_model": "T (eval)", "metric": "metric", "base": "base"}


def axis_title(axis: str) -> str:
    if axis.startswith("param:"):
        name = axis[6:]
        return PARAM_DISPLAY.get(name, name)
    return AXIS_DISPLAY.get(axis, axis)


@dataclass
class Entry:
    """One table cell: one method, dataset, IPC, models, parameter set and metric."""

    method_key: str
    dataset: str
    ipc: int
    model: str
    eval_model: str
    pset: tuple
    metric: Metric
    status: str  # ok | missing | reported
    values: list = field(default_factory=list)  # per seed (None: not reached)
    seeds: list = field(default_factory=list)
    note: str = ""
    paper: PaperValue | None = None
    records: list = field(default_factory=list)

    def axis(self, axis: str, display: bool = False):
        if axis == "method":
            return self.method_key
        if axis == "dataset":
            return dataset_title(self.dataset) if display else self.dataset
        if axis == "ipc":
            return self.ipc
        if axis in ("model", "eval_model"):
            name = getattr(self, axis)
            return MODEL_DISPLAY.get(name, name) if display else name
        if axis == "metric":
            return self.metric.label or self.metric.key if display else self.metric.key
        if axis.startswith("param:"):
            value = dict(self.pset).get(axis[6:])
            return "" if value is None else value
        raise BenchError(f"unknown axis {axis!r}")

    @property
    def reached(self) -> list[float]:
        return [v for v in self.values if v is not None]

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.reached) if self.reached else None

    @property
    def std(self) -> float | None:
        # population std (ddof 0) as bench.aggregate.summarise: one seed gives 0
        return statistics.pstdev(self.reached) if len(self.reached) > 1 else (0.0 if self.reached else None)

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def diff(self) -> float | None:
        if self.mean is None or self.paper is None or self.paper.mean is None:
            return None
        return self.mean - self.paper.mean


@dataclass
class Table:
    spec: Spec
    scale: str
    entries: list[Entry]
    datasets: list[str]
    variants: dict
    tolerance_of: dict  # metric key -> tolerance or None

    def tolerance(self, e: Entry) -> float | None:
        tol = self.tolerance_of.get(e.metric.key)
        if tol is not None and self.spec.tolerance_std and e.metric.kind == "accuracy" \
                and e.paper is not None and e.paper.std is not None:
            tol = max(tol, self.spec.tolerance_std * e.paper.std)
        return tol

    def flagged(self, e: Entry) -> bool:
        tol = self.tolerance(e)
        return tol is not None and e.diff is not None and abs(e.diff) > tol


def _paper_row_key(spec: Spec, e: Entry, axes) -> str:
    parts = []
    for a in axes:
        v = e.axis(a)
        if a == "dataset":
            v = paper_dataset(spec, e.dataset)
        parts.append(str(v))
    return "|".join(parts)


def paper_dataset(spec: Spec, dataset: str) -> str:
    """The dataset whose paper numbers a row shows: itself, or the one dataset it re-encodes
    (cifar10-jpeg -> cifar10, said in the caption). Never another dataset: the built-in digits get
    no paper column, since MNIST's numbers say nothing about 8x8 images."""
    with_numbers = {k.split("|")[0] for k in spec.paper}
    if dataset not in with_numbers and paper_stand_in(dataset) in with_numbers:
        return paper_stand_in(dataset)
    return dataset


def _accuracy(rec: dict, eval_model: str) -> float | None:
    per_model = rec.get("accuracy", {}).get("per_model", {})
    return per_model[eval_model]["mean"] if eval_model in per_model else None


def _curve_epochs(records: list[dict]) -> set:
    return {p.get("epochs") for r in records for p in r.get("metrics", {}).get("curve", [])}


def _curve_target(ref: Entry | None, e: Entry) -> tuple[float | None, str]:
    """The accuracy a method must reach: the reference's final *curve* point (mean over its seeds),
    evaluated like every curve point (curve_epochs, curve_models), never its final accuracy, which a
    longer evaluation measures. (target, "") or (None, why not)."""
    if ref is None or not ref.records:
        return None, f"no records of {e.metric.reference} to reach"
    curves = [r.get("metrics", {}).get("curve") for r in ref.records]
    if not all(curves) or not any(r.get("metrics", {}).get("curve") for r in e.records):
        return None, "records hold no accuracy-vs-iteration curve (metrics.curve)"
    if _curve_epochs(ref.records) != _curve_epochs(e.records) or len(_curve_epochs(e.records)) != 1:
        return None, (f"curve points evaluated with different epochs ({sorted(map(str, _curve_epochs(e.records)))} "
                      f"vs {e.metric.reference}'s {sorted(map(str, _curve_epochs(ref.records)))}): not comparable")
    return statistics.fmean(max(c, key=lambda p: p["iteration"])["accuracy"] for c in curves), ""


def _iterations_to_reach(rec: dict, target: float) -> float | None:
    for point in sorted(rec.get("metrics", {}).get("curve", []), key=lambda p: p["iteration"]):
        if point["accuracy"] >= target:
            return float(point["iteration"])
    return None


def _entries(collected, ipcs, models, eval_models, psets) -> list[Entry]:
    """One entry per (method, dataset, IPC, model, eval model, parameter set, metric), with the
    records of its cell, or the reason it has none (not in the grid, stale, not run)."""
    spec, layout = collected.spec, collected.spec.layout
    by_key = {}
    for c in collected.cells:
        by_key.setdefault((c.method.key, c.dataset, c.ipc, c.model, c.param_set), c)
    entries: list[Entry] = []
    for m in spec.grid.methods:
        for dataset in collected.datasets:
            for ipc in ipcs:
                for model in models:
                    for em in eval_models or [model]:
                        for pset in psets:
                            for metric in layout.metrics:
                                e = Entry(m.key, dataset, ipc, model, em, pset, metric, "reported" if m.reported else "missing")
                                if not m.reported:
                                    cell = by_key.get((m.key, dataset, ipc, model, pset))
                                    recs = collected.records_of(cell) if cell else []
                                    if cell is None:
                                        e.note = "not in the grid at this scale"
                                    elif not recs:
                                        e.note = cell.note or collected.stale_note(cell) or "not run yet"
                                        if cell.cell_id in collected.stale:
                                            e.status = "stale"
                                    else:
                                        e.records = recs
                                        e.seeds = [r["seed"] for r in recs]
                                        e.status = "ok"
                                entries.append(e)
    return entries


def build_table(collected) -> Table:
    """Entries of every (method, dataset, IPC, model, eval model, parameter set, metric) of the grid."""

    spec, scale = collected.spec, collected.scale
    layout = spec.layout
    so = spec.scales.get(scale)
    ipcs = list((so.ipcs if so and so.ipcs else None) or spec.grid.ipcs)
    models = list((so.models if so and so.models else None) or spec.grid.models)
    eval_models = list((so.eval_models if so and so.eval_models is not None else None) or spec.grid.eval_models)
    psets = list((so.param_sets if so and so.param_sets else None) or spec.grid.param_sets)
    entries = _entries(collected, ipcs, models, eval_models, psets)
    # ours: accuracy first, then metrics that refer to another row's accuracy
    for e in entries:
        if e.status == "ok" and e.metric.kind == "accuracy":
            e.values = [_accuracy(r, e.eval_model) for r in e.records]
            if all(v is None for v in e.values):
                e.status, e.note, e.values = "missing", f"no accuracy for {e.eval_model} in the records", []
    for e in entries:
        if e.status == "ok" and e.metric.kind == "iterations_to_reach":
            ref = next((r for r in entries if r.method_key == e.metric.reference and r.metric.kind == "accuracy"
                        and (r.dataset, r.ipc, r.model, r.eval_model, r.pset) == (e.dataset, e.ipc, e.model, e.eval_model, e.pset)), None)
            target, why = _curve_target(ref, e)
            if target is None:
                e.status, e.note = "missing", why
            else:
                e.values = [_iterations_to_reach(r, target) for r in e.records]
    for e in entries:
        row, col = _paper_row_key(spec, e, layout.rows), _paper_row_key(spec, e, layout.columns)
        e.paper = spec.paper_value(row, col)
    seen = {}
    for e in entries:
        key = (tuple(e.axis(a) for a in layout.rows), tuple(e.axis(a) for a in layout.columns))
        if key in seen:
            raise BenchError(f"{spec.path}: the layout (rows {list(layout.rows)}, columns {list(layout.columns)}) "
                             f"puts two cells at {key}: add the axis that tells them apart")
        seen[key] = e
    tolerance_of = {m.key: (m.tolerance if m.tolerance is not None else (spec.tolerance if m.kind == "accuracy" else None))
                    for m in layout.metrics}
    return Table(spec, scale, entries, collected.datasets, collected.variants, tolerance_of)


def tables_for(spec: Spec, out: Path, scales=None, datasets=None, **expand_kwargs) -> list[Table]:
    return [build_table(c) for c in collect(spec, out, scales=scales, datasets=datasets, **expand_kwargs)]
