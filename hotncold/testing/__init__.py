"""Helpers for tests, benchmarks and the doctor command; never used by a run."""
