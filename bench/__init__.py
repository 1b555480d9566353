"""Benchmarks: what the BFF costs per request, against a minimal upstream and the fastest bare proxy."""
