"""A labelled table built from the real GSM8K test set (all 1,319 problems where ../shared holds it, else the
50-row sample in tests/fixtures): every reference solution's reasoning, finished in each
final-answer convention seen in the wild, once with the right answer and once with a wrong one. The correctness
reward must agree with the true verdict on at least 99.9% of them (the issue's bar); we expect all."""

from __future__ import annotations

import json
import re

from rewards.math import MathCorrectness

CONVENTIONS = [
    "{reasoning}\nThe answer is {answer}.",
    "{reasoning}\nThe final answer is {answer}",
    "{reasoning}\n#### {answer}",
    "{reasoning}\nTherefore, the answer is $\\boxed{{{answer}}}$.",
    "<think>\n{reasoning}\n</think>\n<answer>\n{answer}\n</answer>",
    "<think>{reasoning}</think><answer>The answer is {answer}</answer>",
    "{reasoning}\nAnswer: {answer}",
    "{reasoning}\n**Answer:** ${answer}",
    "{reasoning}\nFinal Answer: The final answer is {answer}. I hope it is correct.",
    "{reasoning}\nSo the total is {answer} dollars.",  # no marker: the last-number fallback
    "{reasoning}\nA: {answer}",
    "{reasoning}\nThe answer is: **{answer}**",
]


def with_separators(value: str) -> str:
    return f"{int(value):,}" if re.fullmatch(r"-?\d+", value) else value


def test_correctness_agrees_with_labels_on_gsm8k(gsm8k_dir):
    reward = MathCorrectness()
    rows = [json.loads(line) for line in (gsm8k_dir / "test.jsonl").read_text().splitlines()]
    completions, references, labels = [], [], []
    for row in rows:
        reasoning, reference = row["answer"].rsplit("####", 1)
        reference = reference.strip().replace(",", "")
        wrong = str(int(float(reference)) + 7)
        for index, template in enumerate(CONVENTIONS):
            # alternate plain and thousands-separated renderings of the same value
            shown = with_separators(reference) if index % 2 else reference
            completions += [template.format(reasoning=reasoning.strip(), answer=shown),
                            template.format(reasoning=reasoning.strip(), answer=wrong)]
            references += [row["answer"], row["answer"]]
            labels += [1.0, 0.0]
    scores = reward(completions, answer=references)
    disagreements = [(c[-120:], r[-12:], l) for c, r, l, s in zip(completions, references, labels, scores) if s != l]
    agreement = 1 - len(disagreements) / len(labels)
    assert len(rows) >= 50 and len(labels) == len(rows) * len(CONVENTIONS) * 2
    assert agreement >= 0.999, disagreements[:5]
    assert not disagreements, disagreements[:5]
