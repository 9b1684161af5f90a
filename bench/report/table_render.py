"""Rendering a built table: Markdown, LaTeX or CSV, with the caption lines (scale, protocol, data
variant, tolerance rule, stand-ins, stale and missing cells), and writing them under <out>/tables."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from tabulate import tabulate

from bench.grid.specs import MODEL_DISPLAY, Spec, dataset_title
from bench.report.tables import Entry, Table, axis_title, paper_dataset, tables_for
from bench.run.config import SCALE_PRESETS


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
        text = f"{e.mean:.0f} (n=1)" if len(e.reached) == 1 else f"{e.mean:.0f}{pm}{e.std:.0f} ({len(e.reached)})"
        return text + (f", {unreached} not reached" if unreached else "")
    return f"{e.mean:.2f} (n=1)" if e.n == 1 else f"{e.mean:.2f}{pm}{e.std:.2f} ({e.n})"


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


def _evaluation_used(t: Table, preset) -> str:
    """The evaluation the records actually ran (epochs and networks per run, read from them: an
    --eval-set changes both), or the preset's when there are no records yet."""
    used = {(r["config"]["protocol"]["epochs"], r["config"]["protocol"]["num_models"])
            for e in t.entries for r in e.records if "protocol" in r.get("config", {})}
    if not used:
        return f"evaluation: {preset.eval_epochs or 'protocol'} epochs, {preset.eval_models} network(s) per run"
    return "evaluation of the records: " + "; ".join(f"{epochs} epochs, {models} network(s) per run"
                                                     for epochs, models in sorted(used))


def caption(t: Table) -> list[str]:
    """Caption lines: the spec's, the preset, each dataset's variant, stand-ins, flags, missing cells."""

    spec = t.spec
    preset = SCALE_PRESETS.get(t.scale)
    lines = [spec.caption] if spec.caption else []
    lines.append(f"Cells: {spec.layout.cell}; ours = mean ± std (number of seeds); Δ = ours − paper.")
    lines.append(f"Scale preset: {t.scale} ({_evaluation_used(t, preset)}; the methods' {t.scale} iteration "
                 f"budgets). Only records of this preset are used.")
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
    if any(e.metric.kind == "iterations_to_reach" for e in t.entries):
        lines.append("Iterations to reach: the first curve point at or above the reference method's final curve "
                     "point (both evaluated alike: curve_epochs, curve_models), not its final accuracy.")
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
