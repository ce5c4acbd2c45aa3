"""The failure policy and contract check every configured reward runs under.

A reward that raises must never turn into a silent 0.0. With ``on_error: raise`` (default) the run stops with a
message naming the reward, the sample index and the exception. With ``on_error: none`` the failing samples get
``None`` (no opinion) and their count is logged as ``<name>/errors``. Either way the returned list is checked:
one value per completion, each a finite number or None.
"""

from __future__ import annotations

import math
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Literal

# TRL passes these to every reward; they are per-batch objects, not per-sample columns.
_BATCH_KEYWORDS = ("trainer_state", "log_extra", "log_metric", "environments")


def _discard(*args: Any, **kwargs: Any) -> None:
    """``log_extra`` / ``log_metric`` outside training: accepted, kept nowhere."""


def trl_keywords(row: dict[str, Any], completion_ids: list[list[int]], trainer_state: Any = None) -> dict[str, Any]:
    """The keyword arguments TRL's GRPOTrainer passes a reward for one group of completions of ``row`` (its
    ``_calculate_rewards``): every dataset column except prompt/completion/completion_ids, repeated per completion;
    ``prompts``; ``completion_ids``; and the per-batch ``trainer_state``, ``log_extra`` and ``log_metric``.
    Evaluation and the preflight call rewards through this, so a reward sees outside training what it sees in it."""
    if trainer_state is None:
        from transformers import TrainerState

        trainer_state = TrainerState()
    size = len(completion_ids)
    skipped = ("prompt", "completion", "completion_ids")
    columns = {key: [value] * size for key, value in row.items() if key not in skipped}
    return columns | {"prompts": [row["prompt"]] * size, "completion_ids": completion_ids,
                      "trainer_state": trainer_state, "log_extra": _discard, "log_metric": _discard}


class RewardError(RuntimeError):
    """A reward raised on a sample, or broke the contract."""


class RewardContractError(RewardError):
    """A reward returned the wrong number of values, or a value that is neither a finite number nor None."""


def check_output(name: str, output: Any, expected: int) -> list[float | None]:
    if not isinstance(output, (list, tuple)):
        raise RewardContractError(f"reward {name!r} returned {type(output).__name__}, expected a list")
    if len(output) != expected:
        raise RewardContractError(f"reward {name!r} returned {len(output)} values for {expected} completions")
    for index, value in enumerate(output):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise RewardContractError(
                f"reward {name!r} returned {value!r} for sample {index}; expected a finite float or None"
            )
    return [None if value is None else float(value) for value in output]


def _raising_frame(err: BaseException) -> str:
    """``file:line in function`` where the reward raised: the line its author has to look at."""
    frame = traceback.extract_tb(err.__traceback__)[-1]
    return f"{frame.filename}:{frame.lineno} in {frame.name}"


def _sample_kwargs(kwargs: dict, index: int, size: int) -> dict:
    """The keyword arguments of one sample: per-sample lists sliced, batch objects passed through."""
    sliced = {}
    for key, value in kwargs.items():
        if key not in _BATCH_KEYWORDS and isinstance(value, list) and len(value) == size:
            sliced[key] = value[index : index + 1]
        else:
            sliced[key] = value
    return sliced


@dataclass(frozen=True)
class GuardedReward:
    """Wraps a reward with the failure policy; keeps the reward's name for TRL's logs."""

    reward: Callable
    name: str
    on_error: Literal["raise", "none"] = "raise"

    @property
    def __name__(self) -> str:
        return self.name

    def __call__(self, completions: list, **kwargs: Any) -> list[float | None]:
        try:
            output = self.reward(completions=completions, **kwargs)
        except Exception:  # noqa: BLE001 - re-run per sample below to name the failing one, never swallowed
            return self._per_sample(completions, kwargs)
        return check_output(self.name, output, len(completions))

    def _per_sample(self, completions: list, kwargs: dict) -> list[float | None]:
        size = len(completions)
        scores: list[float | None] = []
        errors = 0
        for index in range(size):
            try:
                value = self.reward(completions=completions[index : index + 1], **_sample_kwargs(kwargs, index, size))
            except Exception as err:
                if self.on_error == "raise":
                    raise RewardError(
                        f"reward {self.name!r} raised on sample {index} at {_raising_frame(err)}: "
                        f"{type(err).__name__}: {err}"
                    ) from err
                errors += 1
                scores.append(None)
                continue
            scores.extend(check_output(self.name, value, 1))
        log_metric = kwargs.get("log_metric")
        if callable(log_metric):
            log_metric(f"{self.name}/errors", float(errors))
        if errors == 0 and self.on_error == "raise":
            raise RewardError(f"reward {self.name!r} raised on the batch but on no single sample")
        return scores
