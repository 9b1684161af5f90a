"""Layer 0: what every other layer uses (errors, registries, seeding, atomic writes)."""
