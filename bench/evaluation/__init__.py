"""Layer 3: the training loop and the evaluation protocols (train fresh networks on a set, test them)."""
