"""A GRPO run: TRL's GRPOTrainer with this project's callbacks, rollouts, checks and run directory."""
