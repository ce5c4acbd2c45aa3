"""Correctness gating: a shaping reward (format, length, ...) that is paid only when the answer is right.

Why: with a weak policy almost every group is all wrong, so correctness has no variance there and GRPO's
group-relative advantage comes from the format reward alone. Measured on an H100 (issue 10): SmolLM2-135M on
GSM8K learned the answer line (0.03 -> 0.99) while correctness stayed at 1-2%. Gated, a wrong answer earns nothing
however well it is formatted, so a well-formatted wrong answer can never out-earn a correct one, and all-wrong
groups carry no signal at all (dynamic sampling then replaces them: grpo.train.dynamic_sampling).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class GatedOnCorrect:
    """``reward``'s value where ``verifier`` says the answer is correct (1.0), 0.0 where it is wrong, else None."""

    reward: Callable
    verifier: Callable

    @property
    def __name__(self) -> str:
        return getattr(self.reward, "__name__", type(self.reward).__name__)

    def __call__(self, completions: list, **kwargs: Any) -> list[float | None]:
        values = self.reward(completions=completions, **kwargs)
        # The verifier's own metrics (unparseable references) are logged by the correctness reward itself.
        verdicts = self.verifier(completions=completions, **{k: v for k, v in kwargs.items() if k != "log_metric"})
        return [None if value is None or verdict is None else (value if verdict == 1.0 else 0.0)
                for value, verdict in zip(values, verdicts, strict=True)]
