"""Whether long loops show a progress bar: on a terminal, or when ``BENCH_PROGRESS`` says so."""

from __future__ import annotations

import os
import sys


def progress_enabled() -> bool:
    flag = os.environ.get("BENCH_PROGRESS")
    if flag is not None:
        return flag not in ("0", "false", "no")
    return sys.stderr.isatty()
