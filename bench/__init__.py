"""DREAM-bench: a harness for reproducing and comparing dataset-distillation methods.

The package's top is the notebook API (:mod:`bench.api`); the layers below it are described in
the README's Layout section."""

from bench.api import distill, evaluate, load_results, run_cell  # noqa: F401
from bench.core.version import __version__  # noqa: F401
