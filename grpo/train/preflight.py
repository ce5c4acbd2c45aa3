"""Reward preflight: call every configured reward on synthetic completions of real dataset rows before training.

For each row we build one group of completions: the reference answer stated in every supported convention, wrong
answers, and empty or malformed text. A reward that returns the wrong number of values, a non-finite value, or
raises (under ``on_error: raise``) is a contract violation and stops ``grpo train`` before any generation. The table
also shows what would silently waste a run: a high None rate, or groups where every completion scores the same
(zero advantage, so no learning signal).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import rewards
from grpo.config import RunConfig
from grpo.data.splits import build_messages, load_raw
from rewards.math import parse_number, parse_reference
from rewards.policy import RewardError

RIGHT_TEMPLATES = (
    "The answer is {}.",
    "<think>\nI work it out.\n</think>\n<answer>\n{}\n</answer>",
    "So the result is \\boxed{{{}}}.",
    "Step one.\n#### {}",
    "Answer: {}",
)
BROKEN = ("", "<answer>", "\\boxed{", "The answer is", "lorem ipsum " * 20)


def wrong_answer(reference: str) -> str:
    number = parse_number(reference)
    if number is None:
        return f"not {reference}"
    value = number.value + 1
    return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"


def synthetic_group(reference: str) -> tuple[list[str], list[bool | None]]:
    """Completions for one row, with whether each states the right answer (None: no answer at all)."""
    right = [template.format(reference) for template in RIGHT_TEMPLATES]
    wrong = [template.format(wrong_answer(reference)) for template in RIGHT_TEMPLATES[:2]]
    return right + wrong + list(BROKEN), [True] * len(right) + [False] * len(wrong) + [None] * len(BROKEN)


@dataclass
class RewardStats:
    name: str
    kind: str
    values: list[float | None] = field(default_factory=list)
    flat_groups: int = 0
    groups: int = 0
    seconds: list[float] = field(default_factory=list)
    right_scored_high: list[bool] = field(default_factory=list)
    violation: str | None = None

    def row(self) -> list[str]:
        scored = [v for v in self.values if v is not None]
        none_rate = 1 - len(scored) / len(self.values) if self.values else 0.0
        right = (f"{100 * sum(self.right_scored_high) / len(self.right_scored_high):.0f}%"
                 if self.right_scored_high else "-")
        return [self.name, self.kind, "no: " + self.violation if self.violation else "ok",
                f"{100 * none_rate:.0f}%", f"{statistics.fmean(scored):.3f}" if scored else "-",
                f"{100 * self.flat_groups / self.groups:.0f}%" if self.groups else "-", right,
                f"{1000 * statistics.median(self.seconds):.2f}" if self.seconds else "-"]


HEADER = ["reward", "kind", "contract", "None", "mean", "flat groups", "right answers scored 1", "ms/call"]


def _stats(functions, specs) -> list[RewardStats]:
    return [RewardStats(f.name, rewards.kind_of(spec.name)) for f, spec in zip(functions, specs)]


def _score_group(functions, stats: list[RewardStats], row: dict[str, Any], texts: list[str],
                 token_counts: list[int], truths: list[bool | None] | None = None) -> None:
    """Call every reward on one group of completions of ``row``, as TRL would, and record the statistics."""
    keywords = rewards.trl_keywords(row, [[0] * count for count in token_counts])
    conversational = [[{"role": "assistant", "content": text}] for text in texts]  # TRL's form for chat prompts
    for function, stat in zip(functions, stats):
        if stat.violation:
            continue
        started = time.perf_counter()
        try:
            values = function(completions=conversational, **keywords)
        except RewardError as err:
            stat.violation = str(err)
            continue
        stat.seconds.append(time.perf_counter() - started)
        stat.values.extend(values)
        stat.groups += 1
        stat.flat_groups += len({v for v in values if v is not None}) <= 1
        if stat.kind == "correctness" and truths is not None:
            stat.right_scored_high.extend(v == 1.0 for v, truth in zip(values, truths) if truth)


def on_rows(functions, specs, rows: list[dict[str, Any]]) -> list[RewardStats]:
    """The rewards (resolved from ``specs``) on synthetic completions of ``rows``, which carry their ``prompt``.
    ``grpo train`` hands over the rewards and training rows it built, so the check is of what will train."""
    stats = _stats(functions, specs)
    for row in rows:
        reference = parse_reference(row["answer"])
        if reference is None:
            continue
        texts, truths = synthetic_group(reference)
        _score_group(functions, stats, row, texts, [len(t.split()) for t in texts], truths)
    return stats


def run(config: RunConfig, n: int = 64) -> list[RewardStats]:
    """``grpo rewards check``: every reward on synthetic completions of the first ``n`` training rows, read without
    a model (the prompt is the chat messages, untokenized)."""
    train, _ = load_raw(config.data)
    rows = [row | {"prompt": build_messages(config.data.system_prompt, row["question"])}
            for row in train.select(range(min(n, len(train)))).to_list()]
    functions, _ = rewards.resolve(config.rewards, config.reward_context())
    return on_rows(functions, config.rewards, rows)


def run_on_model(config: RunConfig, model, tokenizer, n: int, batch_size: int = 32) -> list[RewardStats]:
    """Every reward on real rollouts: ``train.num_generations`` samples per row for the first ``n`` training rows,
    drawn as training would draw them (temperature, top_p, max_completion_length). The "flat groups" column then
    is the share of groups that would give GRPO no learning signal."""
    from grpo.data.splits import load_splits
    from grpo.eval.generation import SamplingParams, generate

    train = load_splits(config.data, tokenizer).train
    rows = train.select(range(min(n, len(train)))).to_list()
    params = SamplingParams(max_new_tokens=config.train.max_completion_length, do_sample=True,
                            temperature=config.train.temperature, top_p=config.train.top_p,
                            num_samples=config.train.num_generations, seed=config.run.seed)
    groups = generate(model, tokenizer, [row["prompt"] for row in rows], params, batch_size, "rollouts")
    functions, _ = rewards.resolve(config.rewards, config.reward_context())
    stats = _stats(functions, config.rewards)
    for row, group in zip(rows, groups):
        _score_group(functions, stats, row, [c.text for c in group], [c.num_tokens for c in group])
    return stats


def table(stats: list[RewardStats]) -> str:
    rows = [HEADER] + [s.row() for s in stats]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(r, widths)) for r in rows]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths)] + lines[1:])


def violations(stats: list[RewardStats]) -> list[str]:
    return [f"{s.name}: {s.violation}" for s in stats if s.violation]


def summary_line(stats: list[RewardStats]) -> str:
    parts = []
    for s in stats:
        scored = [v for v in s.values if v is not None]
        parts.append(f"{s.name} mean {statistics.fmean(scored):.2f}" if scored else f"{s.name} all None")
    return "reward preflight ok: " + "; ".join(parts)
