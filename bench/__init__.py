"""Benchmarks (`make bench`): print a table per part and write bench-output/<part>.json."""
