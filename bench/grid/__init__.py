"""Layer 7: table and figure specs, their grids of runs, the executors (local, SLURM) and the reproduction suite."""
