"""``bench report``: one Markdown file with every table and figure generated so far.

Tables are rendered afresh from the stored records (one per scale preset with records); figures are
drawn afresh too (or, with ``draw=False``, the PNGs already under ``<out>/figures`` are linked).
Specs without any record are listed at the end with what they are waiting for.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

from bench.grid import specs
from bench.report import plots
from bench.report.table_render import render_markdown
from bench.report.tables import tables_for


def _rel(path: Path, start: Path) -> str:
    return os.path.relpath(path, start).replace(os.sep, "/")


def write_report(out, file: Path | None = None, draw: bool = True, data_root=None) -> Path:
    out = Path(out)
    file = Path(file) if file else out / "report.md"
    file.parent.mkdir(parents=True, exist_ok=True)
    lines = ["# DREAM-bench report", "",
             f"Generated {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} from the records under "
             f"`{out}`. Every number is a stored run's; paper values are quoted beside them. Tables never "
             "mix scale presets or data variants.", ""]
    waiting = []
    lines += ["## Tables", ""]
    for spec in specs.load_all("table"):
        shown = False
        for t in tables_for(spec, out):
            if any(e.status == "ok" for e in t.entries):
                lines += [render_markdown(t), ""]
                shown = True
        if not shown:
            waiting.append(f"{spec.id} ({spec.title}): no records yet")
    lines += ["## Figures", ""]
    folder = out / "figures"
    for spec in specs.load_all("figure"):
        if draw:
            results = plots.draw(spec, out, data_root=data_root)
            drawn = [(r.scale, r.paths[0], r.description) for r in results if r.paths]
            missing = sum(len(r.missing) for r in results)
        else:
            drawn = [(p.stem.rsplit("-", 1)[-1], p, (p.with_suffix(".txt").read_text().split("Shows: ", 1)[-1].strip()
                                                     if p.with_suffix(".txt").exists() else ""))
                     for p in sorted(folder.glob(f"{spec.id}-*.png"))]
            missing = 0
        if not drawn:
            waiting.append(f"{spec.id} ({spec.title}): nothing to draw yet")
            continue
        for scale, png, description in drawn:
            pdf = Path(png).with_suffix(".pdf")
            lines += [f"### {spec.title} — scale `{scale}`", "", f"![{spec.id} {scale}]({_rel(Path(png), file.parent)})", "",
                      spec.caption, ""]
            if description:
                lines += [f"Shows: {description}", ""]
            lines += [f"PDF: [{pdf.name}]({_rel(pdf, file.parent)})" + (f"; {missing} grid cell(s) still missing."
                                                                        if missing else ""), ""]
    if waiting:
        lines += ["## Not generated yet", ""] + [f"- {w}" for w in waiting] + [""]
    file.write_text("\n".join(lines))
    return file
