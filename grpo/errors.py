"""Runtime failures as one line a user can act on; the full traceback only with ``--debug`` or ``GRPO_DEBUG=1``.

Config mistakes are :class:`grpo.config.ConfigError` (exit 2). Everything that goes wrong while running (a reward
that raises, memory, the file system, a library refusing a setting) exits 1 with what happened, where, and what to
do; a 20-90 line traceback hides the one line that matters.
"""

from __future__ import annotations

import os
import traceback

DEBUG_VARIABLE = "GRPO_DEBUG"


class RunError(RuntimeError):
    """A runtime failure whose message already says what happened and what to do (exit 1)."""


def debug_requested(flag: bool) -> bool:
    return flag or os.environ.get(DEBUG_VARIABLE, "") not in ("", "0")


def origin(err: BaseException) -> str:
    """``file:line in function`` of the frame that raised, the place a user looks first."""
    frames = traceback.extract_tb(err.__traceback__)
    if not frames:
        return "unknown place"
    frame = frames[-1]
    return f"{frame.filename}:{frame.lineno} in {frame.name}"


def describe(err: BaseException) -> str:
    """One line for an exception that reached the command line."""
    import torch

    from rewards.policy import RewardError

    if isinstance(err, (RunError, RewardError)):
        return str(err).splitlines()[0] if str(err) else type(err).__name__
    if isinstance(err, torch.OutOfMemoryError):
        return ("out of memory on the accelerator; lower train.per_device_train_batch_size (with "
                "gradient_accumulation_steps to keep the batch), train.max_completion_length or "
                "data.max_prompt_tokens, or set model.load_in_4bit")
    if isinstance(err, MemoryError):
        return "out of host memory; lower the batch size, completion length or model size"
    if isinstance(err, OSError) and err.filename:
        return f"{err.strerror or type(err).__name__}: {err.filename}; check the path and its permissions"
    first_line = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"{type(err).__name__}: {first_line} (raised at {origin(err)})"
