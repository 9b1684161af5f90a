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
