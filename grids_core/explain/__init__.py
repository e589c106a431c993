"""Explainers over two-stage models: the GRIDS search and its baselines."""
