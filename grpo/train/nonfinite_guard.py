"""Stop training when the loss, the grad norm, the weighted reward total or a trainable weight is no longer finite.

Each reward value is checked for finiteness by the reward contract (rewards.policy), but finite values can still
overflow once weighted and summed (1e308 x weight 2 = inf), and TRL then trains on meaningless advantages. One NaN step turns every later step, checkpoint and the final adapter into NaN while the run still "succeeds".
The guard runs after each optimizer step and before the trainer decides to save, so the step that went bad is
never checkpointed: the last checkpoint on disk is the last good one, and ``grpo train`` exits non-zero.
"""

from __future__ import annotations

import math

import torch
from transformers import TrainerCallback


class NonFiniteGuard(TrainerCallback):
    def __init__(self):
        self.problem: str | None = None

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if model is not None and not _weights_finite(model):
            self._stop(control, f"a trainable weight is NaN or inf after step {state.global_step}")

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        for key in ("loss", "grad_norm", "reward"):
            value = logs.get(key)
            if isinstance(value, (int, float)) and not math.isfinite(value):
                detail = f"; reward means: {_reward_means(logs)}" if key == "reward" else ""
                self._stop(control, f"{key} is {value} at step {state.global_step}{detail}")

    def _stop(self, control, problem: str) -> None:
        self.problem = self.problem or problem
        control.should_training_stop = True
        control.should_save = False  # keep the last good checkpoint the newest one


def _reward_means(logs: dict) -> str:
    """TRL logs each reward's mean as rewards/<name>/mean; the culprit is the one with a huge or non-finite mean."""
    means = {key.split("/")[1]: value for key, value in logs.items()
             if key.startswith("rewards/") and key.endswith("/mean")}
    return ", ".join(f"{name} {value:.3g}" for name, value in means.items())


def _weights_finite(model) -> bool:
    """One device sync: the sum of the trainable tensors' norms is finite only if every element is."""
    norms = [parameter.detach().float().norm() for parameter in model.parameters() if parameter.requires_grad]
    return not norms or bool(torch.isfinite(torch.stack(norms).sum()))
