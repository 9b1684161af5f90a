"""Layer 1: datasets (each with every fact about it in its spec) and the synthetic set."""
