"""Greedy and sampled evaluation with the KV cache, metrics with intervals, reports and plots."""
