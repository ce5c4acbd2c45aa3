"""Curriculum order for training prompts: easiest first, ramping to the hardest over the planned run.

A weak policy gets no gradient from a group whose completions are all wrong (GRPO's advantage is the reward minus
the group mean), so starting on problems it can sometimes solve gives it signal early. Sorting the whole dataset
would spend a short run on the easiest slice only; instead, when the run will see fewer prompts than the dataset
holds, the prompts it will see are spread evenly over the sorted list, so the ramp covers every difficulty level
within the run. The rest follow (in order), for a run that is extended later.
"""

from __future__ import annotations

from typing import Sequence

SOLUTION_END = "####"  # GSM8K solutions end in "#### <answer>"


def solution_steps(answer: str) -> tuple[int, int]:
    """Difficulty of a reference solution: its non-empty lines before the final answer, then its length.

    GSM8K solutions have one line per calculation, so the line count is the number of reasoning steps; a bare
    final answer counts as one step.
    """
    body = answer.split(SOLUTION_END, 1)[0]
    return (max(1, sum(1 for line in body.splitlines() if line.strip())), len(body))


def ramp_order(difficulties: Sequence, planned: int | None) -> list[int]:
    """Row indices easiest first; with ``planned`` < rows, an evenly spaced ramp of ``planned`` rows comes first."""
    ranked = sorted(range(len(difficulties)), key=lambda index: (difficulties[index], index))
    if planned is None or planned >= len(ranked):
        return ranked
    stride = len(ranked) / planned
    picks = sorted({int(i * stride) for i in range(planned)})
    chosen = set(picks)
    return [ranked[i] for i in picks] + [index for i, index in enumerate(ranked) if i not in chosen]
