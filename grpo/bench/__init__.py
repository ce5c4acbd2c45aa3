"""Benchmarks behind `grpo bench`: decoding and GRPO step time."""
