"""One short console line per logged step instead of the raw metrics dict (~830 characters a step) that
transformers' progress bar prints: what a reader watches in GRPO is the total reward, each reward's mean, the
completion length, the entropy and the time per step. Everything else stays in metrics.jsonl and TensorBoard."""

from __future__ import annotations

from typing import Any

from transformers.trainer_callback import ProgressCallback


def _number(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def step_line(step: int, max_steps: int, logs: dict[str, Any]) -> str:
    """``step 3/100 | reward 0.750 | math_correctness 0.50 answer_line 0.50 | len 41 | entropy 1.92 | 6.1 s/step``;
    logs without a reward (evaluations, the end-of-training summary) as ``name value`` pairs."""
    if "reward" not in logs:
        pairs = " ".join(f"{key} {_number(value)}" for key, value in logs.items() if key != "total_flos")
        return f"step {step}/{max_steps} | {pairs}"
    rewards = " ".join(f"{key[len('rewards/'):-len('/mean')]} {value:.2f}" for key, value in logs.items()
                       if key.startswith("rewards/") and key.endswith("/mean") and value is not None)
    parts = [f"step {step}/{max_steps}", f"reward {logs['reward']:.3f}", rewards]
    if logs.get("completions/mean_length") is not None:
        parts.append(f"len {logs['completions/mean_length']:.0f}")
    if logs.get("entropy") is not None:
        parts.append(f"entropy {logs['entropy']:.2f}")
    if logs.get("step_time") is not None:
        parts.append(f"{logs['step_time']:.1f} s/step")
    return " | ".join(part for part in parts if part)


class CompactProgress(ProgressCallback):
    """transformers' progress bar, writing :func:`step_line` above it at each log."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and self.training_bar is not None and logs:
            self.training_bar.write(step_line(state.global_step, state.max_steps, logs))


def use_compact_progress(trainer) -> None:
    """Swap the trainer's progress bar for :class:`CompactProgress` (none is added when tqdm is disabled)."""
    if trainer.pop_callback(ProgressCallback) is not None:
        trainer.add_callback(CompactProgress)
