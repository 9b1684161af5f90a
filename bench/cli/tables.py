"""``bench tables``, ``bench figures`` and ``bench report``: parse the arguments, call the report
layer, print."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.cli.common import command, split_list
from bench.grid import specs
from bench.report import plots
from bench.report.markdown import write_report
from bench.report.table_render import RENDERERS, write_tables
from bench.run.config import parse_overrides


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="results", type=Path, help="results folder (default ./results)")
    p.add_argument("--scale", help="only this scale preset (default: every preset with records)",
                   choices=["smoke", "reduced", "paper"])
    p.add_argument("--datasets", help="only these datasets (default: those with records)")
    p.add_argument("--list", action="store_true", help="list the available specs and exit")
    p.add_argument("--set", dest="params", action="append", default=[], metavar="KEY=VALUE",
                   help="the same method overrides the runs were made with (bench run --table ... --set)")
    p.add_argument("--eval-set", dest="eval", action="append", default=[], metavar="KEY=VALUE",
                   help="the same evaluation overrides the runs were made with")


def _expand_kwargs(args) -> dict:
    return {"params": parse_overrides(args.params, "--set"), "eval": parse_overrides(args.eval, "--eval-set")}


def _tables_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--table", help="table id (1, table1...); default: every table")
    p.add_argument("--format", default="md", choices=sorted(RENDERERS), help="md (default), latex or csv")
    _common(p)


@command("tables", "render tables/*.toml from stored records beside the paper's numbers", _tables_args)
def cmd_tables(args) -> int:
    if args.list:
        for s in specs.load_all("table"):
            print(f"{s.id}: {s.title}")
        return 0
    chosen = [specs.load("table", args.table)] if args.table else specs.load_all("table")
    for spec in chosen:
        for _, path, text in write_tables(spec, args.out, args.format, [args.scale] if args.scale else None,
                                          split_list(args.datasets) or None, **_expand_kwargs(args)):
            print(text)
            print(f"[wrote {path}]\n")
    return 0


def _figures_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--fig", help="figure id (4b, fig4b...); default: every figure")
    p.add_argument("--data-root", type=Path, help="data root for figures that embed real images (default $BENCH_DATA_ROOT)")
    _common(p)


@command("figures", "draw figures/*.toml (PNG and PDF) from stored records", _figures_args)
def cmd_figures(args) -> int:
    if args.list:
        for s in specs.load_all("figure"):
            print(f"{s.id}: {s.title}")
        return 0
    chosen = [specs.load("figure", args.fig)] if args.fig else specs.load_all("figure")
    for spec in chosen:
        for result in plots.draw(spec, args.out, [args.scale] if args.scale else None, split_list(args.datasets) or None,
                                 data_root=args.data_root, **_expand_kwargs(args)):
            print(result.summary())
    return 0


def _report_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="results", type=Path, help="results folder (default ./results)")
    p.add_argument("--file", type=Path, help="report path (default <out>/report.md)")
    p.add_argument("--no-draw", action="store_true", help="link the figures already drawn; do not redraw")
    p.add_argument("--data-root", type=Path, help="data root for figures that embed real images (default $BENCH_DATA_ROOT)")


@command("report", "one Markdown file with every table and figure generated so far", _report_args)
def cmd_report(args) -> int:
    path = write_report(args.out, args.file, draw=not args.no_draw, data_root=args.data_root)
    print(f"wrote {path}")
    return 0
