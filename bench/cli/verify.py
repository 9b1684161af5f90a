"""``bench verify``: the reproduction suite outside pytest. Runs the small-scale cells of
``tests/repro/expected.toml`` (or ``--expected FILE``) on this installation and device, checks each
against its expected mean and tolerance and the paper's orderings, and prints a pass/fail table.
Exit status 0 when every check passes, 1 when one fails."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from tabulate import tabulate

from bench.cli.common import command
from bench.core.errors import BenchError
from bench.grid.expectations import DEFAULT_EXPECTED, load_expectations, write_measurements
from bench.grid.verify import measure, verify
from bench.run.config import parse_seeds


def _verify_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--expected", type=Path, default=DEFAULT_EXPECTED,
                   help="expectations file (default: the repository's tests/repro/expected.toml)")
    p.add_argument("--out", type=Path, default=Path("results-verify"),
                   help="results folder for the suite's runs (default ./results-verify; reused on a rerun)")
    p.add_argument("--data-root", type=Path, help="data root (default $BENCH_DATA_ROOT or ./data)")
    p.add_argument("--only", help="check names or cell ids, comma separated (default: all)")
    p.add_argument("--device", default="cpu", help="cpu (default; the expectations were measured there) or cuda")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                   help="runs at once, each in its own single-threaded process (default: the CPU count)")
    p.add_argument("--force", action="store_true", help="rerun cells whose records exist")
    p.add_argument("--measure", metavar="SEEDS",
                   help="maintainers: run every cell over these seeds too (e.g. 0-4) and rewrite the "
                        "expected means, tolerances and provenance in the expectations file")


@command("verify", "run the reproduction suite and print a pass/fail table", _verify_args)
def cmd_verify(args) -> int:
    exp = load_expectations(args.expected)

    def progress(config, record):
        print(f"  done {record['config']['label']} {config.dataset} ipc={config.ipc} seed={config.seed}: "
              f"{record['accuracy']['mean']:.2f}% in {record['timings']['total_s']:.0f} s", flush=True)

    only = {s.strip() for s in args.only.split(",")} if args.only else None
    if only:
        known = {c.id for c in exp.cells} | {o.name for o in exp.orders}
        if unknown := sorted(only - known):
            raise BenchError(f"unknown check(s) {unknown}; known: {sorted(known)}")

    if args.measure:
        command_line = "bench " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        updates = measure(exp, args.out, args.data_root, tuple(parse_seeds(args.measure)), command_line, args.device,
                          args.jobs, progress, only)
        write_measurements(args.expected, updates)
        print(f"wrote {len(updates)} measured cell(s) to {args.expected}")
        exp = load_expectations(args.expected)

    rows, _ = verify(exp, args.out, args.data_root, only, args.device, args.force, args.jobs, progress)
    print()
    print(tabulate([[r.check, r.kind, r.measured, r.expected, r.verdict, r.known_failure or r.detail] for r in rows],
                   headers=["check", "kind", "measured", "expected", "result", "detail"]))
    failed = [r.check for r in rows if not r.ok]
    known = [r.check for r in rows if r.known_failure and not r.passed]
    print(f"\n{len(rows) - len(failed)} of {len(rows)} checks as expected"
          + (f" ({len(known)} known failure(s): {', '.join(known)})" if known else "")
          + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0
