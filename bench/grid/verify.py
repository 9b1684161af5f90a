"""Reproduction checks: small-scale expected results and the paper's claims as orderings.

The expectations live in one TOML file (``tests/repro/expected.toml`` by default)::

    [defaults]            # shared by every cell: dataset, ipc, scale, seeds, threads, data, eval, params
    [[cell]]              # one small run per seed: id, method, dream / sampler / initialiser, params,
                          # expected (mean over the seeds), tolerance, spread and provenance
    [[order]]             # a claim of the paper between two cells, at an equal budget:
                          #   kind = "at_least":   mean(left) >= mean(right) + margin
                          #   kind = "faster":     left's accuracy curve reaches right's final
                          #                        accuracy at an earlier checkpoint than right's last
                          #   kind = "lower":      mean of a stored metric (a dotted path into
                          #                        record["metrics"], e.g. diagnostics.mmd.mmd)
                          #                        is lower for left than for right, by margin

``bench verify`` runs every cell (records land in a results folder, so a second call reuses them),
then prints one row per check. ``bench verify --measure 0-4`` runs the cells over more seeds and
rewrites each cell's expected mean, tolerance and provenance from what it measured: the expected
value is the mean over the check's own seeds, the tolerance 3 standard errors of that mean from the
seed-to-seed spread measured over all the seeds (at least ``min_tolerance``).

Threads: the runs use a fixed number of intra-op threads (``threads`` in the file, 1 by default),
because the thread count changes CPU results; with it fixed, the same seed gives the same number on
any machine with the same torch build, and the tolerance covers the rest.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import platform
import statistics
from dataclasses import dataclass
from pathlib import Path

import torch

from bench.data.datasets import load_dataset
from bench.dream.diagnostics import efficiency
from bench.grid.expectations import Expectations, ExpectedCell, OrderCheck
from bench.grid.workers import KillableWorkers
from bench.run.config import RunConfig, resolve
from bench.run.runner import execute
from bench.run.store import RunStore


@contextlib.contextmanager
def fixed_threads(n: int):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass
class CellResult:
    cell: ExpectedCell
    per_seed: list[float]
    curves: list[list[tuple[int, float]]]
    records: list[dict]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.per_seed)

    def mean_curve(self) -> list[tuple[int, float]]:
        """The seeds' curves averaged per checkpoint (checkpoints every seed has)."""
        if not self.curves or not all(self.curves):
            return []
        common = sorted(set.intersection(*(set(it for it, _ in c) for c in self.curves)))
        return [(it, statistics.fmean(dict(c)[it] for c in self.curves)) for it in common]


def _execute_config(config: RunConfig, out: Path, data_root: Path | None, device: str, force: bool,
                    threads: int) -> dict:
    """One run in a worker process (top level, so it pickles)."""

    torch.set_num_threads(threads)
    record, _ = execute(resolve(config), out, data_root, device, force)
    return record


def _run_in_pool(todo: list[RunConfig], workers: int, args: tuple, progress) -> None:
    """The runs in ``workers`` spawned processes, reported as each finishes. On Ctrl-C (or any
    error) the workers are killed, not awaited: a rerun skips the finished runs and resumes the
    rest from their checkpoints."""
    with KillableWorkers(workers) as pool:
        for config, record in pool.map_unordered(_execute_config, ((c, (c, *args)) for c in todo)):
            if progress:
                progress(config, record)


def run_configs(configs: list[RunConfig], out: Path, data_root: Path | None, device: str = "cpu",
                force: bool = False, threads: int = 1, jobs: int = 1, progress=None) -> list[dict]:
    """Every config's record, in order. ``jobs > 1`` runs them in that many spawned processes of
    ``threads`` threads each: the results do not depend on it (each run is seeded and single-threaded
    the same way), only the wall time does."""

    store = RunStore(out)
    resolved = {id(c): resolve(c) for c in configs}  # once each (configs hold lists: keyed by identity)
    todo = [c for c in configs if force or not store.has_record(resolved[id(c)].run_id)]
    for dataset, data in dict.fromkeys((c.dataset, resolved[id(c)].data) for c in todo):
        load_dataset(dataset, data_root, data)  # decode/extract caches once, before workers race for them
    if jobs > 1 and len(todo) > 1:
        _run_in_pool(todo, min(jobs, len(todo)), (out, data_root, device, force, threads), progress)
    else:
        with fixed_threads(threads):
            for c in todo:
                record = _execute_config(c, out, data_root, device, force, threads)
                if progress:
                    progress(c, record)
    return [store.read_record(resolved[id(c)].run_id) for c in configs]


def cell_result(cell: ExpectedCell, records: list[dict]) -> CellResult:
    per_seed = [float(r["accuracy"]["mean"]) for r in records]
    curves = [[(int(p["iteration"]), float(p["accuracy"])) for p in r.get("metrics", {}).get("curve", [])]
              for r in records]
    return CellResult(cell, per_seed, curves, records)


def run_cells(cells: list[ExpectedCell], out: Path, data_root: Path | None, seeds: dict[str, tuple[int, ...]],
              device: str = "cpu", force: bool = False, threads: int = 1, jobs: int = 1,
              progress=None) -> dict[str, CellResult]:
    """Each cell over its seeds (``seeds[cell.id]``), all runs in one pool."""
    plan = [(cell, cell.configs(seeds[cell.id])) for cell in cells]
    flat = [c for _, configs in plan for c in configs]
    records = run_configs(flat, out, data_root, device, force, threads, jobs, progress)
    results, k = {}, 0
    for cell, configs in plan:
        results[cell.id] = cell_result(cell, records[k:k + len(configs)])
        k += len(configs)
    return results


@dataclass(frozen=True)
class CheckRow:
    check: str
    kind: str
    measured: str
    expected: str
    passed: bool
    detail: str = ""
    known_failure: str = ""

    @property
    def verdict(self) -> str:
        if self.known_failure:
            return "PASS (known failure now holds)" if self.passed else "known failure"
        return "PASS" if self.passed else "FAIL"

    @property
    def ok(self) -> bool:
        """Counts as a failure of the suite: a check that fails, or a known failure that passes
        (the expectation file is then out of date, like a strict xfail)."""
        return self.passed != bool(self.known_failure)


def cell_row(result: CellResult) -> CheckRow | None:
    c = result.cell
    if c.expected is None or c.tolerance is None:
        return None
    diff = result.mean - c.expected
    return CheckRow(c.id, "value", f"{result.mean:.2f}", f"{c.expected:.2f} ± {c.tolerance:.2f}",
                    abs(diff) <= c.tolerance + 1e-9, f"Δ {diff:+.2f}; seeds {list(c.seeds)}: "
                    + ", ".join(f"{a:.2f}" for a in result.per_seed))


def metric_values(record: dict, path: str) -> list[float]:
    """Every number at a dotted path into ``record["metrics"]``; lists are mapped over, so
    ``diagnostics.mmd.mmd`` is the ``mmd`` of every MMD observation."""
    values = [record.get("metrics", {})]
    for key in path.split("."):
        nxt = []
        for v in values:
            for item in (v if isinstance(v, list) else [v]):
                if isinstance(item, dict) and key in item:
                    nxt.append(item[key])
        values = nxt
    flat = [x for v in values for x in (v if isinstance(v, list) else [v])]
    return [float(x) for x in flat if isinstance(x, (int, float))]


def order_row(order: OrderCheck, results: dict[str, CellResult]) -> CheckRow:
    left, right = results[order.left], results[order.right]
    if order.kind == "lower":
        lv = [x for r in left.records for x in metric_values(r, order.metric)]
        rv = [x for r in right.records for x in metric_values(r, order.metric)]
        if not lv or not rv:
            return CheckRow(order.name, "lower", "no values", f"{order.metric} in both cells", False,
                            "the cells' params must switch the diagnostic on")
        lm, rm = statistics.fmean(lv), statistics.fmean(rv)
        by = f" - {order.margin:g}" if order.margin else ""
        return CheckRow(order.name, "lower", f"{lm:.4g} vs {rm:.4g}", f"< {order.right}'s {order.metric}{by}",
                        lm < rm - order.margin, order.claim)
    if order.kind == "at_least":
        need = right.mean + order.margin
        sign = "+" if order.margin > 0 else "-"
        relation = f"≥ {order.right} {sign + ' ' + format(abs(order.margin), 'g') if order.margin else ''}".rstrip()
        return CheckRow(order.name, "order", f"{left.mean:.2f} vs {right.mean:.2f}", relation,
                        left.mean >= need - 1e-9, order.claim)
    base, fast = right.mean_curve(), left.mean_curve()
    if not base or not fast:
        return CheckRow(order.name, "faster", "no curve", f"{order.left} has curve points", False,
                        "both cells need curve_points > 0")
    eff = efficiency(base, fast)
    first, last = eff["first_iteration"], eff["base_final_iteration"]
    # like with like: the target is the baseline's last *curve* point, evaluated as every curve point
    measured = (f"reaches {eff['target']:.2f} (its last curve point) at it {first}" if first is not None
                else f"never reaches {eff['target']:.2f} (its last curve point)")
    ratio = eff["ratio"]
    detail = f"{order.claim} (ratio {ratio:.1f}x)" if ratio not in (None, float('inf')) else order.claim
    return CheckRow(order.name, "faster", measured, f"before it {last}", first is not None and first < last, detail)


def verify(exp: Expectations, out: Path, data_root: Path | None, only: set[str] | None = None,
           device: str = "cpu", force: bool = False, jobs: int = 1,
           progress=None) -> tuple[list[CheckRow], dict[str, CellResult]]:
    """Run (or reuse) every cell the selected checks need; return one row per check."""
    needed = {c.id for c in exp.cells if not only or c.id in only}
    orders = [o for o in exp.orders if not only or o.name in only or {o.left, o.right} <= needed]
    needed |= {o.left for o in orders} | {o.right for o in orders}
    cells = [c for c in exp.cells if c.id in needed]
    results = run_cells(cells, out, data_root, {c.id: c.seeds for c in cells}, device, force, exp.threads,
                        jobs, progress)
    rows = [row for cid, r in results.items() if (row := cell_row(r)) is not None]
    rows += [dataclasses.replace(order_row(o, results), known_failure=o.known_failure) for o in orders]
    return rows, results


def record_versions(records: list[dict]) -> str:
    """The commits that produced the records (a reused record keeps the commit that made it)."""
    versions = dict.fromkeys(f"{r['code_version'].get('git', '?')[:12]}{' dirty' if r['code_version'].get('dirty') else ''}"
                             for r in records)
    return ", ".join(versions)


def measure(exp: Expectations, out: Path, data_root: Path | None, seeds: tuple[int, ...], command: str,
            device: str = "cpu", jobs: int = 1, progress=None, only: set[str] | None = None) -> dict[str, dict]:
    """Each cell over ``seeds`` (a superset of its own): new expected values with their provenance.
    ``only``: the cells named, and the cells of the orderings named (default: every cell)."""
    machine = f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {exp.threads} thread(s)"
    named = {side for o in exp.orders if o.name in (only or ()) for side in (o.left, o.right)}
    cells = [c for c in exp.cells if not only or c.id in only or c.id in named]
    every = {c.id: tuple(dict.fromkeys(c.seeds + seeds)) for c in cells}
    results = run_cells(cells, out, data_root, every, device, False, exp.threads, jobs, progress)
    updates = {}
    for cell in cells:
        res = results[cell.id]
        by_seed = dict(zip(every[cell.id], res.per_seed))
        own = [by_seed[s] for s in cell.seeds]
        spread = statistics.stdev(res.per_seed) if len(res.per_seed) > 1 else 0.0
        tolerance = max(exp.min_tolerance, 3 * spread / math.sqrt(len(own)))
        updates[cell.id] = {
            "expected": round(statistics.fmean(own), 2), "tolerance": round(tolerance, 2), "spread": round(spread, 2),
            "provenance": {"command": command, "code_version": record_versions(res.records), "machine": machine,
                           "per_seed": {str(s): round(a, 2) for s, a in by_seed.items()}},
        }
    return updates
