"""Tidy frame of records -> summaries. Never averages across scale presets or data variants."""

from __future__ import annotations

GROUP = ["label", "dataset", "data_variant", "ipc", "scale", "eval_model"]


def summarise(frame):
    """Mean and std (population, ddof=0, so one seed gives 0) over seeds of each run's mean accuracy."""
    grouped = frame.groupby(GROUP, dropna=False)
    out = grouped["accuracy"].agg(mean="mean", std=lambda s: s.std(ddof=0), seeds="count")
    if "at_chance" in frame:
        out["at_chance"] = grouped["at_chance"].sum().astype(int)
    return out.reset_index().sort_values(GROUP).reset_index(drop=True)


def mean_spread(mean: float, std: float, n: int) -> str:
    """"m ± s" over seeds; one seed has no spread to show, so it says n=1 instead of a ± 0.00."""
    return f"{mean:.2f} (n=1)" if n == 1 else f"{mean:.2f} ± {std:.2f}"
