"""Rate-limit counters shared across processes."""
