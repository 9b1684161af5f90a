"""Layer 4: what is composed with a method: real-batch samplers, initialisers, DREAM's clustering,
and the diagnostics. Importing the package registers every sampler and initialiser."""

from bench.dream.compose import DREAM_INITIALISER, DREAM_SAMPLER  # noqa: F401 (registers all)
