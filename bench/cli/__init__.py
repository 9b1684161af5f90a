"""Layer 8: argument parsing and the commands, nothing else."""
