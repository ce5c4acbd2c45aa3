"""Config-driven GRPO reasoning fine-tuning: YAML config -> model + LoRA -> TRL GRPO -> run directory."""

__version__ = "0.1.0"
