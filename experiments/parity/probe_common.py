"""Shared by the parity probes (run as scripts beside the authors' code, never imported by the
package): the summary a golden value is stored as, float64 runs, the CPU's name, and the uniform of
ours that reproduces one of the authors' integer DSA draws."""
import os
import re
import subprocess

import torch


def stats(t):
    t = t.detach().double()
    return {"sum": float(t.sum()), "norm": float(t.norm()), "slice": t.flatten()[:6].tolist()}


def in_float64(fn):
    """The same probe with float64 as the default dtype (weights, inputs, arithmetic): float32 sums
    differ between CPUs (their kernels reorder them), float64 ones agree to ~1e-12, so these are the
    values CI compares tightly on any machine."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        return fn()
    finally:
        torch.set_default_dtype(before)


def authors_commit(env: str, repo: str) -> str:
    """The authors' commit a fixture is recorded from: ``$env`` (an export made with ``git archive`` has
    no .git), else ``git rev-parse HEAD`` in ``repo``. Refuses to go on without one: a golden value
    whose provenance names no commit cannot be traced back to the code it came from."""
    commit = os.environ.get(env) or subprocess.run(["git", "-C", repo, "rev-parse", "HEAD"],
                                                   capture_output=True, text=True).stdout.strip()
    if not re.fullmatch(r"[0-9a-f]{40}", commit):
        raise SystemExit(f"{repo} is not a git checkout: set {env} to the 40-hex commit it was exported from")
    return commit


def cpu_name() -> str:
    return next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
                "unknown")


def bucket_uniform(op: str, side: int, param, randint):
    """Our u in [0, 1) for the authors' integer draw of DSA's ``crop`` (a shift in [-s, s]) or
    ``cutout`` (an offset in [0, span)) on ``side``-pixel images: the middle of the draw's bucket in
    our ``floor(u * span)``. ``randint(low, high)`` makes their draw (its shape is the caller's)."""
    if op == "crop":
        s = int(side * param.ratio_crop_pad + 0.5)
        return (randint(-s, s + 1) + s + 0.5) / (2 * s + 1)
    if op == "cutout":
        size = int(side * param.ratio_cutout + 0.5)
        span = side + (1 - size % 2)
        return (randint(0, span) + 0.5) / span
    raise ValueError(f"only crop and cutout draw integers, not {op!r}")
