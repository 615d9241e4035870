"""Workflows: recipes that combine the library's layers (demo, ablation runner, distillation report).

Nothing in the library imports this package; the command line and the benchmarks do.
"""
