"""Deterministic workload generators: seed in, signed blocks out."""
