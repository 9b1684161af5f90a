"""Run-level parity's summaries (issue #13, item 2): the table rows ``run_level.py --summary`` prints
from a folder of cell logs, their extra evaluations, starts and paired evaluations. Reads JSONL
files only: no torch, no authors' code."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np


def print_summary(out: Path) -> None:
    """Every table row the logs under ``out`` support."""
    summary(out)
    multi_evaluation_summary(out)
    paired_summary(out)


def summary(out: Path) -> None:
    for log in sorted(out.glob("*.jsonl")):
        rows, label, _ = with_our_runs(log)
        acc = {s: np.array([r["authors_eval_acc"] for r in rows if r["side"] == s]) for s in ("ours", "authors")}
        spi = {s: np.array([r["s_per_it"] for r in rows if r["side"] == s and r["s_per_it"]]) for s in acc}
        if min(len(a) for a in acc.values()) < 2:
            print(f"{label}: too few runs ({ {s: len(a) for s, a in acc.items()} })")
            continue
        ours_own = [r["our_eval_acc"] for r in rows if r["side"] == "ours"]
        print(f"| {label} | {welch_row(acc['ours'], acc['authors'])} | {spi['ours'].mean():.2f} | {spi['authors'].mean():.2f} "
              f"| {np.mean(ours_own):.2f} |")
        if start := start_scores(out, log.name):  # each run's one network, over the runs whose start was scored
            kept = [r for r in rows if (r["side"], r["run"]) in start]
            print(start_adjusted_row(f"{log.stem}, one network a set, start as covariate",
                                     np.array([r["authors_eval_acc"] for r in kept]),
                                     np.array([r["side"] == "ours" for r in kept], dtype=float),
                                     np.array([start[(r["side"], r["run"])] for r in kept])))


def with_our_runs(log: Path) -> tuple[list[dict], str, Path | None]:
    """A log's rows, its label and the log our runs were borrowed from (None: its own). A cell whose
    authors' side alone ran on another fast-pytorch-kmeans (``<cell>_kmeans<version>.jsonl``,
    ``run_level.py --authors-kmeans``) holds their runs only: ours are the cell's own (our code pins
    its k-means and draws its own initial centres), read from the log without the suffix and named in
    the label."""
    rows = read_rows(log)
    base = our_runs_log(log, rows)
    if base is None:
        return rows, log.stem, None
    return rows + [r for r in read_rows(base) if r["side"] == "ours"], f"{log.stem} (ours: {base.stem}'s runs)", base


def our_runs_log(log: Path, rows: list[dict]) -> Path | None:
    """The log our runs come from for a ``_kmeans<version>`` log without runs of ours; else None."""
    base = log.with_name(re.sub(r"_kmeans[^_]+$", "", log.stem) + log.suffix)
    if base == log or any(r["side"] == "ours" for r in rows) or not base.exists():
        return None
    return base


def welch_row(a: np.ndarray, b: np.ndarray) -> str:
    """'ours | authors | difference [95 % CI]' cells of a table row, Welch's t interval."""
    from scipy import stats
    diff = a.mean() - b.mean()
    ci = stats.ttest_ind(a, b, equal_var=False).confidence_interval()
    return (f"{a.mean():.2f} ± {a.std(ddof=1):.2f} (n={len(a)}) | {b.mean():.2f} ± {b.std(ddof=1):.2f} (n={len(b)}) "
            f"| {diff:+.2f} [{ci.low:+.2f}, {ci.high:+.2f}]")


def read_rows(path: Path) -> list[dict]:
    """A JSONL log's rows (empty when the log does not exist yet)."""
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def multi_evaluation_summary(out: Path) -> None:
    """Per VICO cell with extra evaluations: each set's mean over its networks (the logged one and
    the extra ones), over the sets that have the most networks any set has, side against side."""
    for extra in sorted((out / "evals").glob("*.jsonl")):
        log = out / extra.name
        accs: dict[tuple, list[float]] = {(r["side"], r["run"]): [r["authors_eval_acc"]]
                                          for r in read_rows(log)}
        for r in read_rows(extra):
            accs[(r["side"], r["run"])].append(r["authors_eval_acc"])
        most = max(map(len, accs.values()))
        means = {s: np.array([np.mean(v) for (side, _), v in sorted(accs.items()) if side == s and len(v) == most])
                 for s in ("ours", "authors")}
        if min(map(len, means.values())) < 2:
            print(f"{log.stem}, {most} networks a set: too few sets ({ {s: len(m) for s, m in means.items()} })")
            continue
        spread = np.mean([np.std(v, ddof=1) for v in accs.values() if len(v) == most])
        print(f"| {log.stem}, mean of {most} of their networks a set | {welch_row(means['ours'], means['authors'])} "
              f"| sd between one set's networks {spread:.2f} |")
        if start := start_scores(out, extra.name):
            keys = [key for key, v in sorted(accs.items()) if len(v) == most and key in start]
            print(start_adjusted_row(f"{log.stem}, mean of {most} networks, start as covariate",
                                     np.array([np.mean(accs[key]) for key in keys]),
                                     np.array([key[0] == "ours" for key in keys], dtype=float),
                                     np.array([start[key] for key in keys])))


def start_scores(out: Path, log_name: str) -> dict[tuple, float]:
    """A cell's scored starts, (side, run) -> the mean of the start's networks (empty if none)."""
    return {(r["side"], r["run"]): float(np.mean(r["start_accs"])) for r in read_rows(out / "starts" / log_name)}


def start_adjusted_row(label: str, final: np.ndarray, ours: np.ndarray, start: np.ndarray) -> str:
    """Least squares final = a + d * ours + b * start: d, the difference at an equal start, with its
    95 % t interval (n - 3 dof); the start's score is the seed's draw of real images, the one input
    the two programs draw differently and cannot share."""
    from scipy import stats
    if min(ours.sum(), (1 - ours).sum()) < 2:
        return f"| {label} | too few starts evaluated ({int(ours.sum())} ours, {int((1 - ours).sum())} authors) |"
    design = np.column_stack([np.ones_like(final), ours, start])
    coef, *_ = np.linalg.lstsq(design, final, rcond=None)
    dof = len(final) - 3
    sigma2 = float(((final - design @ coef) ** 2).sum()) / dof
    se = np.sqrt(sigma2 * np.linalg.inv(design.T @ design)[1, 1])
    half = stats.t.ppf(0.975, dof) * se
    return (f"| {label} | n={int(ours.sum())} ours, {int((1 - ours).sum())} authors | slope on the start {coef[2]:.2f} "
            f"| {coef[1]:+.2f} [{coef[1] - half:+.2f}, {coef[1] + half:+.2f}] |")


def paired_summary(out: Path) -> None:
    """Per cell with paired rows: mean of (ours - authors) over runs and its t interval (n - 1 dof).
    VICO cells' rows carry several draws a run: their count goes in the label. A cell whose authors'
    side ran on another k-means release (``with_our_runs``) is paired from the cell's own paired rows
    (our set k under evaluation seed k + 1) and its own authors' run k (the same evaluation seed)."""
    from scipy import stats
    # a row without authors_acc: our run k had no run k of theirs in its own log (only in a variant's)
    logs = [(log, [r for r in read_rows(log) if r.get("authors_acc") is not None], log.stem)
            for log in sorted((out / "paired").glob("*.jsonl"))]
    for variant in sorted(out.glob("*_kmeans*.jsonl")):
        rows, label, base = with_our_runs(variant)
        if base is None or not (out / "paired" / base.name).exists():
            continue
        authors = {r["run"]: r["authors_eval_acc"] for r in rows if r["side"] == "authors"}
        logs.append((variant, [dict(r, authors_acc=authors[r["run"]]) for r in read_rows(out / "paired" / base.name)
                               if r["run"] in authors], label))
    for log, rows, name in logs:
        d = np.array([r["ours_acc"] - r["authors_acc"] for r in rows])
        if len(d) < 2:
            continue
        ci = stats.ttest_1samp(d, 0.0).confidence_interval()
        draws = {len(r.get("eval_seeds", [0])) for r in rows}
        label = f", {'/'.join(map(str, sorted(draws)))} draws a run" if draws != {1} else ""
        print(f"| {name}, paired by evaluation seed{label} | {np.mean([r['ours_acc'] for r in rows]):.2f} "
              f"| {np.mean([r['authors_acc'] for r in rows]):.2f} | {d.mean():+.2f} [{ci.low:+.2f}, {ci.high:+.2f}] "
              f"(n={len(d)}, sd of differences {d.std(ddof=1):.2f}) |")
