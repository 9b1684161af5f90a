"""DREAM-bench: a harness for reproducing and comparing dataset-distillation methods."""

from bench.core.version import __version__  # noqa: F401
