"""Benchmarks behind `make bench`: throughput and server memory, side by side with peers where present."""
