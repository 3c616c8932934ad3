"""Benchmarks, one command each (see bench/README.md):
``python -m bench.bench_import`` and ``python -m bench.bench_dispatch``."""
