"""Shaping rewards: small nudges on the answer's type, the completion's length and its repetitiveness."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rewards.math import extract_answer, parse_number
from rewards.registry import register
from rewards.text import completion_text


@register("integer_answer", kind="shaping")
@dataclass(frozen=True)
class IntegerAnswer:
    """1.0 when the extracted final answer is an integer (GSM8K answers always are), else 0.0."""

    fallback_last_number: bool = True
    __name__ = "integer_answer"

    def __call__(self, completions: list, **kwargs: Any) -> list[float]:
        scores = []
        for completion in completions:
            answer = extract_answer(completion_text(completion), self.fallback_last_number)
            number = parse_number(answer) if answer is not None else None
            scores.append(1.0 if number is not None and number.value.denominator == 1 else 0.0)
        return scores


@register("overlong_penalty", kind="shaping")
@dataclass(frozen=True)
class OverlongPenalty:
    """DAPO's soft overlong punishment, in tokens: 0 up to ``max_completion_length - buffer``, then a linear ramp
    down to -1 at ``max_completion_length`` (and -1 beyond). ``max_completion_length`` defaults to the run's
    ``train.max_completion_length``; ``buffer`` defaults to a quarter of it. Needs TRL's ``completion_ids``.
    """

    max_completion_length: int | None = None
    buffer: int | None = None
    __name__ = "overlong_penalty"

    def __post_init__(self) -> None:
        if self.max_completion_length is not None and self.max_completion_length <= 0:
            raise ValueError("max_completion_length must be positive")
        if self.buffer is not None and not 0 < self.buffer <= (self.max_completion_length or self.buffer):
            raise ValueError("buffer must be positive and at most max_completion_length")

    def __call__(self, completions: list, **kwargs: Any) -> list[float]:
        if self.max_completion_length is None:
            raise ValueError("overlong_penalty needs max_completion_length (param or train.max_completion_length)")
        if kwargs.get("completion_ids") is None:
            raise KeyError("overlong_penalty needs completion_ids (token ids of each completion)")
        limit = self.max_completion_length
        buffer = self.buffer or max(1, limit // 4)
        scores = []
        for ids in kwargs["completion_ids"]:
            excess = len(ids) - (limit - buffer)
            scores.append(0.0 if excess <= 0 else -min(1.0, excess / buffer))
        return scores


@register("repetition_penalty", kind="shaping")
@dataclass(frozen=True)
class RepetitionPenalty:
    """Penalty for repeated word n-grams: ``max_penalty * (1 - unique_ngrams / total_ngrams)``, in
    ``[max_penalty, 0]``. Words are whitespace-separated; texts shorter than ``ngram_size`` words score 0.
    """

    ngram_size: int = 3
    max_penalty: float = -1.0
    __name__ = "repetition_penalty"

    def __post_init__(self) -> None:
        if self.ngram_size < 1:
            raise ValueError("ngram_size must be at least 1")
        if self.max_penalty > 0:
            raise ValueError("max_penalty must be zero or negative")

    def __call__(self, completions: list, **kwargs: Any) -> list[float]:
        scores = []
        for completion in completions:
            words = completion_text(completion).lower().split()
            ngrams = [tuple(words[i : i + self.ngram_size]) for i in range(len(words) - self.ngram_size + 1)]
            if not ngrams:
                scores.append(0.0)
                continue
            scores.append(self.max_penalty * (1 - len(set(ngrams)) / len(ngrams)))
        return scores
