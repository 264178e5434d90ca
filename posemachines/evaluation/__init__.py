"""Benchmark metrics, visibility, official file formats and multi-view inference."""
