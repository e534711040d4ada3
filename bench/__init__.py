"""Benchmarks: ingestion, end-to-end latency, API economy, reconciliation at scale and memory.

`python -m bench` runs them all and prints one table; `python -m bench NAME --help` runs one.
They print figures beside their physical floors and the project's targets; they are not tests.
"""
