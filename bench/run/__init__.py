"""Layer 6: one run from config to record: config resolution, context, tasks, runner, store."""
