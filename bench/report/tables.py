"""``bench tables``, ``bench figures``, ``bench report``: specs + stored records -> artefacts.

A table cell holds ours (mean ± std over the seeds found, and how many) beside the paper's value and
the difference; a difference larger than the tolerance is flagged, a cell without records is marked
missing with the reason. One table per scale preset: presets and data variants never mix (cells
are matched by cell id, which includes both).
"""

from __future__ import annotations

import argparse
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from bench.core.errors import BenchError
from bench.grid.specs import MODEL_DISPLAY, Metric, PaperValue, Spec, dataset_title, paper_stand_in
from bench.run.config import SCALE_PRESETS
from bench.grid.cells import collect

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
    """The dataset whose paper numbers a row shows: itself when the paper has it, else its stand-in
    (cifar10-jpeg -> cifar10, digits -> mnist) when the spec has that one, else the spec's only
    dataset (a smoke run of a CIFAR10 table on digits shows CIFAR10's numbers, and says so)."""
    with_numbers = {k.split("|")[0] for k in spec.paper}
    if dataset in with_numbers:
        return dataset
    if paper_stand_in(dataset) in with_numbers:
        return paper_stand_in(dataset)
    if len(spec.grid.datasets) == 1 and spec.grid.datasets[0] in with_numbers:
        return spec.grid.datasets[0]
    return dataset


def _accuracy(rec: dict, eval_model: str) -> float | None:
    per_model = rec.get("accuracy", {}).get("per_model", {})
    return per_model[eval_model]["mean"] if eval_model in per_model else None


def _iterations_to_reach(rec: dict, target: float) -> float | None:
    for point in sorted(rec.get("metrics", {}).get("curve", []), key=lambda p: p["iteration"]):
        if point["accuracy"] >= target:
            return float(point["iteration"])
    return None


def build_table(collected) -> Table:
    """Entries of every (method, dataset, IPC, model, eval model, parameter set, metric) of the grid."""

    spec, scale = collected.spec, collected.scale
    layout = spec.layout
    by_key = {}
    for c in collected.cells:
        by_key.setdefault((c.method.key, c.dataset, c.ipc, c.model, c.param_set), c)
    so = spec.scales.get(scale)
    ipcs = list((so.ipcs if so and so.ipcs else None) or spec.grid.ipcs)
    models = list((so.models if so and so.models else None) or spec.grid.models)
    eval_models = list((so.eval_models if so and so.eval_models is not None else None) or spec.grid.eval_models)
    psets = list((so.param_sets if so and so.param_sets else None) or spec.grid.param_sets)
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
            if ref is None or ref.mean is None:
                e.status, e.note = "missing", f"no final accuracy of {e.metric.reference} to reach"
            elif not any(r.get("metrics", {}).get("curve") for r in e.records):
                e.status, e.note = "missing", "records hold no accuracy-vs-iteration curve (metrics.curve)"
            else:
                e.values = [_iterations_to_reach(r, ref.mean) for r in e.records]
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


# ------------------------------------------------------------------------------------------ rendering
def _fmt_ours(e: Entry, latex: bool = False) -> str:
    pm = r" $\pm$ " if latex else " ± "
    if e.status == "reported":
        return ""
    if e.status != "ok":
        return (r"\textit{%s}" % e.status) if latex else e.status
    if e.metric.kind == "iterations_to_reach":
        unreached = e.n - len(e.reached)
        if not e.reached:
            return f"not reached ({e.n})"
        text = f"{e.mean:.0f}{pm}{e.std:.0f} ({len(e.reached)})"
        return text + (f", {unreached} not reached" if unreached else "")
    return f"{e.mean:.2f}{pm}{e.std:.2f} ({e.n})"


def _fmt_paper(e: Entry, latex: bool = False) -> str:
    if e.paper is None:
        return "-" if not latex else "--"
    if latex:
        return latex_escape(e.paper.text).replace("±", r"$\pm$").replace("†", r"$^\dagger$")
    return e.paper.text


def _fmt_diff(t: Table, e: Entry, latex: bool = False) -> str:
    if e.diff is None:
        return ""
    text = f"{e.diff:+.0f}" if e.metric.kind == "iterations_to_reach" else f"{e.diff:+.2f}"
    if t.flagged(e):
        text = text + (r"$^{\ast}$" if latex else " !")
    return text


def _wide(t: Table, latex: bool = False):
    """(row header names, column groups [(column label, [subcolumns])], rows of strings)."""
    layout = t.spec.layout
    row_keys, col_keys, cells = [], [], {}
    for e in t.entries:
        rk = tuple(e.axis(a) for a in layout.rows)
        ck = tuple(e.axis(a) for a in layout.columns)
        if rk not in row_keys:
            row_keys.append(rk)
        if ck not in col_keys:
            col_keys.append(ck)
        cells[(rk, ck)] = e
    groups = []
    for ck in col_keys:
        column = [cells[(rk, ck)] for rk in row_keys if (rk, ck) in cells]
        ours = any(e.status != "reported" for e in column)
        label = " ".join(_display(a, v) for a, v in zip(layout.columns, ck))
        groups.append((ck, label, ["ours", "paper", "Δ" if not latex else r"$\Delta$"] if ours else ["paper"]))
    rows = []
    display_rows = {}
    for e in t.entries:
        display_rows[tuple(e.axis(a) for a in layout.rows)] = tuple(e.axis(a, display=True) for a in layout.rows)
    for rk in row_keys:
        line = [str(v) for v in display_rows[rk]]
        for ck, _, subs in groups:
            e = cells.get((rk, ck))
            if e is None:
                line += [""] * len(subs)
                continue
            if len(subs) == 1:
                line.append(_fmt_paper(e, latex))
            elif e.status == "missing" and e.note == "not in the grid at this scale" and e.paper is None:
                line += ["", "", ""]
            else:
                line += [_fmt_ours(e, latex), _fmt_paper(e, latex), _fmt_diff(t, e, latex)]
        rows.append(line)
    return [axis_title(a) for a in layout.rows], groups, rows


def _display(axis: str, value) -> str:
    if axis in ("model", "eval_model"):
        return MODEL_DISPLAY.get(value, value)
    if axis == "dataset":
        return dataset_title(value)
    if axis.startswith("param:"):
        return f"{axis_title(axis)}={value}"
    return str(value)


def caption(t: Table) -> list[str]:
    """Caption lines: the spec's, the preset, each dataset's variant, stand-ins, flags, missing cells."""

    spec = t.spec
    preset = SCALE_PRESETS.get(t.scale)
    lines = [spec.caption] if spec.caption else []
    lines.append(f"Cells: {spec.layout.cell}; ours = mean ± std (number of seeds); Δ = ours − paper.")
    lines.append(f"Scale preset: {t.scale} (evaluation: {preset.eval_epochs or 'protocol'} epochs, "
                 f"{preset.eval_models} network(s) per run; the methods' {t.scale} iteration budgets). "
                 f"Only records of this preset are used.")
    for d in t.datasets:
        variant = t.variants.get(d)
        shown = dataset_title(d)
        if variant is None:
            lines.append(f"Data: {shown}: no records yet.")
        else:
            lines.append(f"Data: {shown}{' [' + variant + ']' if variant else ' (whole dataset)'}.")
        stand_in = paper_dataset(spec, d)
        if stand_in != d:
            lines.append(f"Paper column for {shown} shows {dataset_title(stand_in)}'s numbers "
                         f"(no paper numbers exist for {shown}; a reference, not a like-for-like comparison).")
    tols = {k: v for k, v in t.tolerance_of.items() if v is not None}
    if tols:
        def rule(v: float) -> str:
            return f"max({t.spec.tolerance_std:g} x the paper's std, {v:g})" if t.spec.tolerance_std else f"{v:g}"

        lines.append("Flag ! (LaTeX *): |Δ| above the tolerance (" +
                     ", ".join(f"{k}: {rule(v)} points" for k, v in tols.items()) + ").")
    for status, title in (("stale", "Stale cells (records of an older config; not shown)"), ("missing", "Missing cells")):
        reasons = {}
        for e in t.entries:
            if e.status == status:
                reasons.setdefault(e.note, set()).add(e.method_key)
        if reasons:
            lines.append(f"{title}: " + "; ".join(f"{', '.join(sorted(keys))}: {note}" for note, keys in reasons.items()) + ".")
    return lines


def render_markdown(t: Table) -> str:
    from tabulate import tabulate

    heads, groups, rows = _wide(t)
    headers = heads + [f"{label} {sub}" if len(subs) > 1 else f"{label} (paper)" for _, label, subs in groups for sub in subs]
    text = [f"### {t.spec.title} — scale `{t.scale}`", ""]
    text += [f"{line}  " for line in caption(t)]
    text += ["", tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True), ""]
    return "\n".join(text)


def latex_escape(text: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"),
                 ("$", r"\$"), ("{", r"\{"), ("}", r"\}"), ("~", r"\~{}"), ("^", r"\^{}")):
        text = text.replace(a, b)
    return text


def render_latex(t: Table) -> str:
    heads, groups, rows = _wide(t, latex=True)
    ncols = len(heads) + sum(len(s) for _, _, s in groups)
    spec_cols = "l" * len(heads) + "".join("r" * len(s) for _, _, s in groups)
    out = [r"% requires \usepackage{booktabs}", r"\begin{table}[t]", r"\centering", r"\small",
           rf"\caption{{{latex_escape(t.spec.title)} (scale: {latex_escape(t.scale)}). "
           + latex_escape(" ".join(caption(t))).replace("±", r"$\pm$").replace("Δ", r"$\Delta$").replace("−", "-")
           .replace("†", r"$^\dagger$") + "}",
           rf"\label{{tab:{t.spec.id}-{t.scale}}}", rf"\begin{{tabular}}{{{spec_cols}}}", r"\toprule"]
    top, rules, col = [""] * len(heads), [], len(heads) + 1
    for _, label, subs in groups:
        top.append(rf"\multicolumn{{{len(subs)}}}{{c}}{{{latex_escape(label)}}}")
        rules.append(rf"\cmidrule(lr){{{col}-{col + len(subs) - 1}}}")
        col += len(subs)
    out.append(" & ".join(top) + r" \\")
    out.append(" ".join(rules))
    out.append(" & ".join([latex_escape(h) for h in heads] + [s for _, _, subs in groups for s in subs]) + r" \\")
    out.append(r"\midrule")
    previous = None
    for line in rows:
        first = line[0]
        if previous is not None and first != previous and len(heads) > 1:
            out.append(r"\midrule")
        previous = first
        cells = [latex_escape(c) for c in line[:len(heads)]] + line[len(heads):]
        out.append(" & ".join(cells) + r" \\")
    out += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    assert ncols == len(rows[0]) if rows else True
    return "\n".join(out)


def render_csv(t: Table) -> str:
    import pandas as pd

    rows = []
    for e in t.entries:
        row = {"table": t.spec.id, "scale": t.scale, "data_variant": t.variants.get(e.dataset, ""),
               "method": e.method_key, "dataset": e.dataset, "paper_dataset": paper_dataset(t.spec, e.dataset),
               "ipc": e.ipc, "model": e.model, "eval_model": e.eval_model,
               "params": ";".join(f"{k}={v}" for k, v in e.pset), "metric": e.metric.key, "status": e.status,
               "ours_mean": e.mean, "ours_std": e.std, "n_seeds": e.n if e.status == "ok" else 0,
               "seeds": " ".join(map(str, e.seeds)), "paper": e.paper.text if e.paper else "",
               "paper_mean": e.paper.mean if e.paper else None, "paper_std": e.paper.std if e.paper else None,
               "diff": e.diff, "flagged": t.flagged(e), "note": e.note}
        rows.append(row)
    return pd.DataFrame(rows).to_csv(index=False)


RENDERERS = {"md": (render_markdown, "md"), "latex": (render_latex, "tex"), "csv": (render_csv, "csv")}


def tables_for(spec: Spec, out: Path, scales=None, datasets=None, **expand_kwargs) -> list[Table]:

    return [build_table(c) for c in collect(spec, out, scales=scales, datasets=datasets, **expand_kwargs)]


def write_tables(spec: Spec, out: Path, fmt: str, scales=None, datasets=None, folder: Path | None = None,
                 **expand_kwargs):
    """Render and write every table of a spec; returns [(table, path, text)]."""
    render, ext = RENDERERS[fmt]
    folder = folder or Path(out) / "tables"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for t in tables_for(spec, out, scales, datasets, **expand_kwargs):
        text = render(t)
        path = folder / f"{spec.id}-{t.scale}.{ext}"
        path.write_text(text)
        written.append((t, path, text))
    return written
