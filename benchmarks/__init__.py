"""Benchmarks of the harness and the reference service on the machine they run on.

``python benchmarks/run.py`` measures every figure in one run and writes
``docs/benchmarks.md``. Nothing here asserts a figure: a missed target is
reported on the page with the measured value and the likely reason.
"""
