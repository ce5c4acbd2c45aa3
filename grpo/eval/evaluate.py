"""Score generated completions with the run's own rewards and verifier, and summarise them.

Accuracy comes from the same :mod:`rewards.math` extraction and comparison that training rewards with (using the
run's ``math_correctness`` params when it has one), so training and evaluation judge answers identically.
Format compliance is the share of completions that get full marks (1.0) from every format reward of the run.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable

import rewards
from rewards.math import MathCorrectness, answer_key, extract_answer, judge, parse_reference
from grpo.eval import metrics
from grpo.eval.generation import Completion, SamplingParams, generate


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
# pass@1 per value of each one a dataset has (summarize).
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
    reference_parsed: bool = True  # False: the problem is left out of correctness (a data problem, not the model's)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def score(rows: list[dict[str, Any]], completions: list[list[Completion]], scorer: Scorer) -> list[SampleResult]:
    results: list[SampleResult] = []
    for row, samples in zip(rows, completions, strict=True):
        reference = parse_reference(row["answer"])
        texts = [c.text for c in samples]
        # Rewards that need token ids only count them (overlong_penalty); the lengths here are the real ones.
        keywords = rewards.trl_keywords(row, [[0] * c.num_tokens for c in samples])
        per_reward = {name: function(completions=texts, **keywords)
                      for name, function in scorer.reward_functions.items()}
        for index, completion in enumerate(samples):
            extracted = extract_answer(completion.text, scorer.verifier.fallback_last_number)
            results.append(SampleResult(
                id=str(row["id"]), sample=index, completion=completion.text, extracted=extracted,
                correct=None if reference is None else judge(extracted, reference, scorer.verifier.symbolic_timeout_s,
                                                             scorer.verifier.symbolic),
                num_tokens=completion.num_tokens, truncated=completion.truncated, reference_parsed=reference is not None,
                rewards={name: values[index] for name, values in per_reward.items()},
                groups={c: str(row[c]) for c in GROUP_COLUMNS if row.get(c) is not None},
            ))
    return results


def has_parsed_reference(record: dict[str, Any]) -> bool:
    """Records written before ``reference_parsed`` existed: a None verdict then meant either cause; read it as an
    unparseable reference, as those records' summaries did."""
    return record.get("reference_parsed", record["correct"] is not None)


def _pass1_by_group(judged: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """``pass@1[level=Level 5]`` (with its CI) for each value of each group column the problems carry."""
    parts: dict[tuple[str, str], list[float]] = defaultdict(list)
    for records in judged.values():
        for column, value in records[0].get("groups", {}).items():
            parts[(column, value)].append(sum(r["correct"] is True for r in records) / len(records))
    found: dict[str, Any] = {}
    for (column, value), values in sorted(parts.items()):
        found[f"pass@1[{column}={value}]"] = sum(values) / len(values)
        found[f"pass@1[{column}={value}]_ci95"] = list(metrics.bootstrap_interval(values))
    return found


def summarize(records: list[dict[str, Any]], format_names: tuple[str, ...], ks: tuple[int, ...] = (1,),
              greedy: bool = True) -> dict[str, Any]:
    """The one summary of scored samples (``SampleResult.to_json()`` records, several per problem when sampled),
    each rate with its 95% interval: the before/after table, the periodic evals and ``grpo eval`` all report this.

    Accuracy (greedy) and maj@k use Wilson intervals; pass@k, averaged over problems, a bootstrap over problems.
    Problems whose reference cannot be parsed are left out of correctness and counted. An answer the verifier
    could not decide (``correct`` None with a parsed reference) counts as not right and is counted too: leaving its
    problem out instead would let undecidable output raise the accuracy.
    """
    by_problem: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        by_problem[record["id"]].append(record)
    judged = {pid: rs for pid, rs in by_problem.items() if all(has_parsed_reference(r) for r in rs)}
    n = min((len(rs) for rs in judged.values()), default=0)
    summary: dict[str, Any] = {"problems": len(by_problem), "judged_problems": len(judged),
                               "unparseable_references": len(by_problem) - len(judged),
                               "undecided_answers": sum(r["correct"] is None for rs in judged.values() for r in rs),
                               "samples": len(records), "samples_per_problem": n, "greedy": greedy}
    pass1 = [sum(r["correct"] is True for r in rs) / len(rs) for rs in judged.values()]
    if greedy:
        correct = sum(pass1)
        summary["accuracy"] = correct / len(pass1) if pass1 else None
        summary["accuracy_ci95"] = list(metrics.wilson_interval(correct, len(pass1)))
    summary["pass@1"] = sum(pass1) / len(pass1) if pass1 else None
    summary["pass@1_ci95"] = list(metrics.bootstrap_interval(pass1))
    summary |= _pass1_by_group(judged)
    for k in (k for k in ks if 1 < k <= n):
        values = [metrics.pass_at_k(len(rs), sum(r["correct"] is True for r in rs), k) for rs in judged.values()]
        summary[f"pass@{k}"] = sum(values) / len(values)
        summary[f"pass@{k}_ci95"] = list(metrics.bootstrap_interval(values))
        majority = [metrics.maj_at_k([answer_key(r["extracted"]) for r in rs], [r["correct"] is True for r in rs], k)
                    for rs in judged.values()]
        summary[f"maj@{k}"] = sum(majority) / len(majority)
        summary[f"maj@{k}_ci95"] = list(metrics.wilson_interval(sum(majority), len(majority)))
    total = len(records)
    if format_names and total:
        compliant = sum(all(r["rewards"].get(name) == 1.0 for name in format_names) for r in records)
        summary["format_compliance"] = compliant / total
        summary["format_compliance_ci95"] = list(metrics.wilson_interval(compliant, total))
    if total:
        truncated = sum(r["truncated"] for r in records)
        summary["mean_completion_tokens"] = sum(r["num_tokens"] for r in records) / total
        summary["truncation_rate"] = truncated / total
        summary["truncation_rate_ci95"] = list(metrics.wilson_interval(truncated, total))
    for name in sorted({name for r in records for name in r["rewards"]}):
        values = [r["rewards"][name] for r in records if r["rewards"].get(name) is not None]
        summary[f"reward/{name}"] = sum(values) / len(values) if values else None
    return summary


def greedy_eval(model, tokenizer, rows: list[dict[str, Any]], scorer: Scorer, max_new_tokens: int,
                batch_size: int, description: str = "eval", progress: bool = True,
                decoder: str = "generate") -> tuple[dict[str, Any], list[SampleResult]]:
    """Greedy accuracy, format compliance and lengths on ``rows`` (one completion per problem)."""
    params = SamplingParams(max_new_tokens=max_new_tokens, decoder=decoder)
    completions = generate(model, tokenizer, [row["prompt"] for row in rows], params, batch_size, description,
                           progress)
    results = score(rows, completions, scorer)
    return summarize([r.to_json() for r in results], scorer.format_names), results
