"""DREAM-bench: a harness for reproducing and comparing dataset-distillation methods."""

__version__ = "0.1.0"
