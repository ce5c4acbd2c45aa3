"""One short console line per logged step instead of the raw metrics dict (~830 characters a step) that
transformers' progress bar prints: what a reader watches in GRPO is the total reward, each reward's mean, the
completion length, the entropy and the time per step. Everything else stays in metrics.jsonl and TensorBoard."""

from __future__ import annotations

import logging
import warnings
from contextlib import contextmanager
from typing import Any

from transformers.trainer_callback import ProgressCallback

# Known harmless, matched by message so that any other warning still shows: DataLoader's pin_memory default on a
# machine without an accelerator (nothing is pinned; training is unaffected).
HARMLESS_WARNINGS = ("'pin_memory' argument is set as true but no accelerator is found",)


def filter_harmless_warnings() -> None:
    for message in HARMLESS_WARNINGS:
        warnings.filterwarnings("ignore", message=f".*{message}")


def config_summary(config) -> str:
    """A few lines instead of the whole resolved YAML (which is saved in the run directory as config.yaml)."""
    rewards = ", ".join(f"{spec.name.rsplit('/', 1)[-1]} x{spec.weight:g}" for spec in config.rewards)
    train = config.train
    data = f"{config.data.source}" + (f" {config.data.path}" if config.data.path else "")
    return "\n".join([
        f"run {config.run_dir}  model {config.model.name} ({config.model.backend}, LoRA r={config.model.lora.r})",
        f"data {data}  rewards {rewards}",
        f"{train.max_steps} steps x {train.per_device_train_batch_size * train.gradient_accumulation_steps} "
        f"completions ({train.num_generations} per prompt, up to {train.max_completion_length} tokens), "
        f"lr {train.learning_rate:g}, beta {train.beta:g}",
    ])


def _number(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def step_line(step: int, max_steps: int, logs: dict[str, Any]) -> str:
    """``step 3/100 | reward 0.750 | math_correctness 0.50 answer_line 0.50 | len 41 | entropy 1.92 | 6.1 s/step
    (rollouts 4.2)`` (the rollouts' part when :mod:`grpo.train.step_phases` logged it);
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
        rollouts = logs.get("time/rollouts_s")
        parts.append(f"{logs['step_time']:.1f} s/step" + (f" (rollouts {rollouts:.1f})" if rollouts is not None
                                                            else ""))
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


class UnscoredCompletionWarnings(logging.Filter):
    """Lets TRL's first "All reward functions returned None" warning through, with a note, and counts the rest.

    Why: TRL warns once per rollout batch in which some completion got no reward from any function, printing that
    row's whole prompt, reference and completion (about 2 KB). With rewards that answer None when unsure (an
    answer ``math_correctness`` cannot read, a gated reward on a wrong answer) a weak policy does that in most
    batches: 139 times in 42 GSM8K steps (two processes) on 2026-12-01, most of train.log. TRL (1.15 and 1.16)
    leaves such a completion out of its group's baseline and gives it no advantage; one example shows what the
    rewards could not read, the count says how often.
    """

    MESSAGE = "All reward functions returned None"
    LOGGER = "trl.trainer.grpo_trainer"

    def __init__(self):
        super().__init__()
        self.count = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if self.MESSAGE not in str(record.msg):
            return True
        self.count += 1
        if self.count > 1:
            return False
        record.msg = (f"{record.msg}\n(TRL leaves such a completion out of its group's baseline, with no advantage. "
                      "Further batches with one are counted, not printed; the count is said when training ends.)")
        return True

    @contextmanager
    def installed(self):
        logger = logging.getLogger(self.LOGGER)
        logger.addFilter(self)
        try:
            yield self
        finally:
            logger.removeFilter(self)
