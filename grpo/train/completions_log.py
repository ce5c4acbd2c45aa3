"""Sampled prompts, completions and each reward written to ``completions.jsonl`` every N steps: reading samples is
how people debug GRPO (a reward that never fires, a format the model never learns), and TRL's own completion
logging only reaches wandb/trackio tables or a rich console print."""

from __future__ import annotations

import json
from pathlib import Path

from transformers import TrainerCallback

from rewards.text import completion_text


class CompletionsJsonl(TrainerCallback):
    """At every ``every``-th logged step, append the latest generation batch, one JSON line per completion."""

    def __init__(self, path: Path, every: int):
        self.path, self.every = path, every
        self.trainer = None
        self.written_step = None  # the end-of-training summary is logged at the last step again: write it once

    def attach(self, trainer) -> None:
        """The batch lives in the GRPOTrainer (``_logs``, filled whatever ``log_completions`` says)."""
        self.trainer = trainer

    def on_log(self, args, state, control, logs=None, **kwargs):
        if (self.trainer is None or not state.is_world_process_zero or state.global_step % self.every
                or state.global_step == self.written_step):
            return
        self.written_step = state.global_step
        batch = self.trainer._logs
        rewards = {name: list(values) for name, values in batch["rewards"].items()}
        advantages = list(batch["advantages"])
        with open(self.path, "a") as stream:
            for index, (prompt, completion) in enumerate(zip(batch["prompt"], batch["completion"])):
                record = {"step": state.global_step, "prompt": prompt, "completion": completion_text(completion),
                          "rewards": {name: values[index] for name, values in rewards.items()},
                          "advantage": advantages[index] if index < len(advantages) else None}
                stream.write(json.dumps(record) + "\n")
