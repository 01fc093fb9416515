"""Tests of Earworm Studio (pytest); tests/benchmarks/ holds the benchmarks (`make bench`)."""
