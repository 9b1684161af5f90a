"""``bench status``: per run of a selection (the same arguments as ``bench run``): done / queued /
running / failed / missing, from the results store, the job index under ``<out>/jobs`` and
``squeue`` (no SLURM accounting needed). A job that squeue no longer lists and that left neither a
record nor a result is dead, and counts as failed. Failed runs show the last lines of their log.
``bench run`` with the same selection resubmits exactly the missing and failed ones."""

from __future__ import annotations

import argparse

from tabulate import tabulate

from bench.cli.common import add_run_selection, command, configs_from_args
from bench.grid.jobs import STATES, cell_statuses
from bench.run.config import resolve


def _status_args(p: argparse.ArgumentParser) -> None:
    add_run_selection(p)
    known = p._option_string_actions  # --table/--fig may live in add_run_selection or only in `bench run`
    if "--table" not in known:
        p.add_argument("--table", help="the cells of tables/tableN.toml (e.g. 1)")
    if "--fig" not in known:
        p.add_argument("--fig", help="the cells of figures/figX.toml (e.g. 4b)")
    if "--datasets" not in known:
        p.add_argument("--datasets", help="with --table/--fig: these datasets instead of the spec's")
    p.add_argument("--lines", type=int, default=5, help="log lines shown per failed run (default 5)")
    p.add_argument("--only", help="show only these states, comma separated (done,queued,running,failed,missing)")


@command("status", "done / queued / running / failed / missing per run of a selection (as `bench run`)", _status_args)
def cmd_status(args) -> int:
    resolved = list({r.run_id: r for r in (resolve(c) for c in configs_from_args(args))}.values())
    statuses = cell_statuses(resolved, args.out, log_lines=args.lines)
    only = {s.strip() for s in (args.only or "").split(",") if s.strip()}
    rows, failed = [], []
    for r, s in zip(resolved, statuses):
        if only and s.state not in only:
            continue
        c = r.config
        rows.append([r.label, c.dataset, c.ipc, c.seed, c.scale, s.state, s.job_id or "", s.detail, r.run_id])
        if s.state == "failed":
            failed.append((r, s))
    if rows:
        print(tabulate(rows, headers=["method", "dataset", "IPC", "seed", "scale", "state", "job", "detail", "run id"]))
    for r, s in failed:
        print(f"\n--- failed: {r.label} {r.config.dataset} ipc={r.config.ipc} seed={r.config.seed} ({r.run_id}), "
              f"job {s.job_id}: {s.detail}" + (f"\n    log: {s.log_file}" if s.log_file else ""))
        for line in s.log_tail or ["(the log is empty)"]:
            print(f"    | {line}")
    counts = {state: sum(s.state == state for s in statuses) for state in STATES}
    print("\n" + ", ".join(f"{n} {state}" for state, n in counts.items() if n or state != "unknown")
          + f" (of {len(statuses)})")
    return 0
