"""Tidy frame of records -> summaries. Never averages across scale presets or data variants."""

from __future__ import annotations

GROUP = ["label", "dataset", "data_variant", "ipc", "scale", "eval_model"]


def summarise(frame):
    """Mean and std (population, ddof=0, so one seed gives 0) over seeds of each run's mean accuracy."""
    grouped = frame.groupby(GROUP, dropna=False)
    out = grouped["accuracy"].agg(mean="mean", std=lambda s: s.std(ddof=0), seeds="count").reset_index()
    return out.sort_values(GROUP).reset_index(drop=True)
