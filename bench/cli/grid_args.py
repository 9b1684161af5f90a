"""``--table`` / ``--fig`` arguments: a spec's cells from the command line, and ``bench run --dry-run``'s
listing of them."""

from __future__ import annotations

from tabulate import tabulate

from bench.cli.parsing import check_subset_options, split_list
from bench.core.errors import BenchError
from bench.grid import specs
from bench.grid.cells import Cell, expand, notes
from bench.grid.specs import Spec
from bench.run.config import RunConfig, parse_overrides
from bench.run.store import RunStore


def spec_from_args(args) -> Spec:
    table, fig = getattr(args, "table", None), getattr(args, "fig", None)
    if table and fig:
        raise BenchError("give --table or --fig, not both")
    return specs.load("table", table) if table else specs.load("figure", fig)


def cells_from_args(args, spec: Spec | None = None) -> list[Cell]:
    check_subset_options(args)
    spec = spec or spec_from_args(args)
    datasets = split_list(getattr(args, "datasets", None) or getattr(args, "dataset", None))
    ipcs = [int(i) for i in split_list(getattr(args, "ipc", None))] if getattr(args, "ipc", None) else None
    return expand(
        spec, args.scale, datasets=datasets or None, ipcs=ipcs, seeds=getattr(args, "seeds", None),
        methods=split_list(getattr(args, "method", None)) or None,
        params=parse_overrides(getattr(args, "params", []) or [], "--set"),
        eval=parse_overrides(getattr(args, "eval", []) or [], "--eval-set"),
        classes=getattr(args, "classes", None), max_train=getattr(args, "max_train_per_class", None),
        max_test=getattr(args, "max_test_per_class", None),
    )


def configs_from_spec_args(args) -> list[RunConfig]:
    """``bench run --table N`` / ``--fig X``: the runnable cells' configs; a line for each skip reason."""
    spec = spec_from_args(args)
    cells = cells_from_args(args, spec)
    for line in notes(cells):
        print(line, flush=True)
    runnable = [c.config for c in cells if c.runnable]
    print(f"{spec.id} at scale {args.scale}: {len(runnable)} runnable cell(s) of {len(cells)}", flush=True)
    return runnable


def print_dry_run(cells: list[Cell], out) -> None:
    store = RunStore(out)
    rows = []
    for i, c in enumerate(cells, 1):
        if c.note:
            status = f"missing: {c.note}"
        elif store.has_record(c.run_id):
            status = "done"
        else:
            status = "to run"
        rows.append([i, c.method.key, c.label or c.method.method, c.dataset, c.ipc, c.model,
                     ",".join(f"{k}={v}" for k, v in c.param_set) or "-", c.seed, c.run_id or "-",
                     c.cell_id or "-", status])
    print(tabulate(rows, headers=["#", "key", "label", "dataset", "IPC", "model", "params", "seed", "run id",
                                  "cell id", "status"]))
    done = sum(r[-1] == "done" for r in rows)
    todo = sum(r[-1] == "to run" for r in rows)
    print(f"\n{len(rows)} cells: {done} done, {todo} to run, {len(rows) - done - todo} missing (not runnable yet)")


def spec_run_hook(args) -> bool:
    """``bench run --table/--fig ... --dry-run``: list the spec's cells and their status. Returns
    True when it handled the command."""
    if not getattr(args, "dry_run", False):
        return False
    spec = spec_from_args(args)
    cells = cells_from_args(args, spec)
    print(f"{spec.id} ({spec.title}) at scale {args.scale}")
    print_dry_run(cells, args.out)
    return True
