"""The harness's package version (kept apart from ``bench/__init__``, which imports the API)."""

__version__ = "0.1.0"
