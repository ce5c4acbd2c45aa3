"""Score generated completions with the run's own rewards and verifier, and summarise them.

Accuracy comes from the same :mod:`rewards.math` extraction and comparison that training rewards with (using the
run's ``math_correctness`` params when it has one), so training and evaluation judge answers identically.
Format compliance is the share of completions that get full marks (1.0) from every format reward of the run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable

import rewards
from rewards.math import MathCorrectness, extract_answer, judge, parse_reference
from grpo.generation import Completion, SamplingParams, generate


@dataclass(frozen=True)
class Scorer:
    """The run's verifier and rewards, by name; ``format_names`` are the rewards that define compliance."""

    verifier: MathCorrectness
    reward_functions: dict[str, Callable]
    format_names: tuple[str, ...]

    @classmethod
    def from_specs(cls, specs: list[Any], context: dict[str, Any] | None = None) -> "Scorer":
        functions, _ = rewards.resolve(specs, context)
        return cls.from_functions(functions, specs)

    @classmethod
    def from_functions(cls, functions: list[rewards.GuardedReward], specs: list[Any]) -> "Scorer":
        """From rewards already resolved (by ``rewards.resolve``) for the same specs, in the same order.

        Correctness gates are taken off: evaluation reports what each reward measures (format compliance is
        about the format, right or wrong), while training pays the gated value.
        """
        functions = [replace(f, reward=f.reward.reward) if isinstance(f.reward, rewards.GatedOnCorrect) else f
                     for f in functions]
        verifier = next((f.reward for f in functions if isinstance(f.reward, MathCorrectness)), MathCorrectness())
        format_names = tuple(f.name for f, spec in zip(functions, specs) if rewards.kind_of(spec.name) == "format")
        return cls(verifier, {f.name: f for f in functions}, format_names)


# Dataset columns that split a benchmark into parts (MATH's level and type/subject); evaluation summaries report
# pass@1 per value of each one a dataset has (grpo.eval_run.summarize_samples).
GROUP_COLUMNS = ("level", "type", "subject", "difficulty")


@dataclass
class SampleResult:
    id: str
    sample: int
    completion: str
    extracted: str | None
    correct: bool | None  # None when the reference cannot be parsed or the verifier cannot decide
    num_tokens: int
    truncated: bool
    rewards: dict[str, float | None] = field(default_factory=dict)
    groups: dict[str, str] = field(default_factory=dict)  # the row's GROUP_COLUMNS values

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def score(rows: list[dict[str, Any]], completions: list[list[Completion]], scorer: Scorer) -> list[SampleResult]:
    results: list[SampleResult] = []
    for row, samples in zip(rows, completions, strict=True):
        reference = parse_reference(row["answer"])
        texts = [c.text for c in samples]
        columns = {key: [value] * len(samples) for key, value in row.items() if key not in ("prompt", "completion")}
        # Rewards that need token ids only count them (overlong_penalty); the lengths here are the real ones.
        per_reward = {
            name: function(completions=texts, prompts=[row["prompt"]] * len(samples),
                           completion_ids=[[0] * c.num_tokens for c in samples], **columns)
            for name, function in scorer.reward_functions.items()
        }
        for index, completion in enumerate(samples):
            extracted = extract_answer(completion.text, scorer.verifier.fallback_last_number)
            results.append(SampleResult(
                id=str(row["id"]), sample=index, completion=completion.text, extracted=extracted,
                correct=None if reference is None else judge(extracted, reference, scorer.verifier.symbolic_timeout_s,
                                                             scorer.verifier.symbolic),
                num_tokens=completion.num_tokens, truncated=completion.truncated,
                rewards={name: values[index] for name, values in per_reward.items()},
                groups={c: str(row[c]) for c in GROUP_COLUMNS if row.get(c) is not None},
            ))
    return results


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def summarize(results: list[SampleResult], format_names: tuple[str, ...]) -> dict[str, Any]:
    judged = [r for r in results if r.correct is not None]
    summary: dict[str, Any] = {
        "samples": len(results),
        "accuracy": _mean([float(r.correct) for r in judged]),
        # references that cannot be parsed, and answers the verifier could not decide (rewards.math.judge)
        "unparseable_references": len(results) - len(judged),
        "format_compliance": _mean([
            float(all(r.rewards.get(name) == 1.0 for name in format_names)) for r in results
        ]) if format_names else None,
        "mean_completion_tokens": _mean([float(r.num_tokens) for r in results]),
        "truncation_rate": _mean([float(r.truncated) for r in results]),
    }
    names = sorted({name for r in results for name in r.rewards})
    for name in names:
        values = [r.rewards[name] for r in results if r.rewards.get(name) is not None]
        summary[f"reward/{name}"] = _mean(values)
    return summary


def greedy_eval(model, tokenizer, rows: list[dict[str, Any]], scorer: Scorer, max_new_tokens: int,
                batch_size: int, description: str = "eval",
                progress: bool = True) -> tuple[dict[str, Any], list[SampleResult]]:
    """Greedy accuracy, format compliance and lengths on ``rows`` (one completion per problem)."""
    params = SamplingParams(max_new_tokens=max_new_tokens)
    completions = generate(model, tokenizer, [row["prompt"] for row in rows], params, batch_size, description,
                           progress)
    results = score(rows, completions, scorer)
    return summarize(results, scorer.format_names), results
