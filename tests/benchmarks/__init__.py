"""Benchmarks (not collected by `make test`): `python -m tests.benchmarks.run_all`."""
