"""Ogem's benchmark: `make bench` (`python -m bench`). See docs/benchmark.md."""
