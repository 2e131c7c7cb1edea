"""Operational tools: benchmarks, load generator, trace tools.

Not part of the installed packages; run them from a checkout (python -m tools.NAME).
"""
