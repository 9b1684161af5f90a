"""Comma-separated command-line lists."""

from __future__ import annotations

from bench.core.errors import BenchError


def split_list(text: str | None) -> list[str]:
    return [t.strip() for t in (text or "").split(",") if t.strip()]


def int_list(text: str, what: str) -> list[int]:
    try:
        return [int(t) for t in split_list(text)]
    except ValueError:
        raise BenchError(f"malformed {what} {text!r}: use integers separated by commas") from None


SUBSET_OPTIONS = ("classes", "max_train_per_class", "max_test_per_class")


def check_subset_options(args) -> None:
    """``--classes 0`` would be read as "not given" further down: refuse it here."""
    for name in SUBSET_OPTIONS:
        value = getattr(args, name, None)
        if value is not None and value < 1:
            raise BenchError(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
