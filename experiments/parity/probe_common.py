"""Shared by the parity probes (run as scripts beside the authors' code, never imported by the
package): the summary a golden value is stored as, float64 runs, and the CPU's name."""
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


def cpu_name() -> str:
    return next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
                "unknown")
