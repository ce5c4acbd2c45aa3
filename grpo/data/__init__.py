"""Training and held-out problems: files, GSM8K, synthetic arithmetic, prompts, curriculum order."""
