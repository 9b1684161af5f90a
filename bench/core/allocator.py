"""Keep freed memory in the process instead of handing it back to the kernel (glibc malloc).

Why: torch's CPU tensors come from malloc. glibc serves every block above its mmap threshold (at most
32 MB) with a fresh ``mmap`` and unmaps it on free, and trims the heap top when more than 128 KB is
free. A matching step allocates and frees the same activations (``batch_real`` x 128 channels x
28 x 28 floats is 100 MB) every iteration, so every iteration faults every page of them in again:
measured on the 2-core development CPU (DC and DM, MNIST, IPC 1, ``batch_real`` 256, 3 iterations
each, ``bench speed --methods dm,dc --datasets mnist --ipc 1 --set batch_real=256 --iterations 3
--mode per-class``): 14.0 M minor page faults and 22.1 s system time for the whole command with
glibc's defaults, 0.44 M and 1.1 s with mmap off and trimming off, DM 2.89 -> 1.89 s and DC 7.27 ->
5.14 s per iteration. This is the page-fault cost issue #14 found (ours 1.4-2x the authors' faults).

The arithmetic is untouched (same kernels, same order), so results are bit-identical either way;
the price is that the process keeps its peak heap until it exits. ``BENCH_MALLOC=system`` leaves
glibc's defaults alone. Other C libraries (macOS, musl) are left alone.
"""

from __future__ import annotations

import ctypes
import os
import sys

# mallopt parameters (glibc malloc.h)
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_MAX = -4

_SETTINGS = (
    (_M_MMAP_MAX, 0),  # every block from the heap: nothing is unmapped on free
    (_M_TRIM_THRESHOLD, 2**31 - 1),  # never give the heap top back (largest value mallopt takes)
    (_M_TOP_PAD, 64 << 20),  # grow the heap 64 MB at a time: fewer brk calls
)
OPT_OUT = "BENCH_MALLOC"

_state: str | None = None


def keep_freed_memory() -> str:
    """Apply the settings once per process; returns what this process's allocator does, for records:
    ``"glibc: keep freed memory"``, ``"system default (BENCH_MALLOC=system)"`` or ``"system default (not glibc)"``."""
    global _state
    if _state is None:
        _state = _apply()
    return _state


def _apply() -> str:
    if os.environ.get(OPT_OUT, "").lower() == "system":
        return f"system default ({OPT_OUT}=system)"
    if not sys.platform.startswith("linux"):
        return "system default (not glibc)"
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # musl and friends have no mallopt
        return "system default (not glibc)"
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    if not all(mallopt(param, value) == 1 for param, value in _SETTINGS):
        return "system default (mallopt refused)"
    return "glibc: keep freed memory"
