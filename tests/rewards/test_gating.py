"""Correctness gating: a shaping reward pays only on right answers, and evaluation still sees the ungated value."""

from __future__ import annotations

import rewards
from grpo.config import RewardSpec
from grpo.eval.evaluate import Scorer


def test_gated_format_reward_pays_only_when_correct():
    functions, _ = rewards.resolve([RewardSpec(name="math_correctness"),
                                    RewardSpec(name="answer_line", gate="correct")])
    completions = ["The answer is 7.", "The answer is 8.", "seven", "The answer is 7"]
    values = functions[1](completions, answer=["7"] * 4)
    ungated = rewards.build("answer_line")(completions, answer=["7"] * 4)
    assert ungated[1] == 1.0 and values[1] == 0.0  # well formatted but wrong: earns nothing
    assert values[0] == ungated[0] == 1.0
    assert values[2] == 0.0


def test_wrong_formatted_answer_never_outearns_a_correct_one():
    specs = [RewardSpec(name="math_correctness"), RewardSpec(name="answer_line", weight=2.0, gate="correct")]
    functions, weights = rewards.resolve(specs)
    completions = ["The answer is 8.", "I think 7"]
    totals = [sum(w * f(completions, answer=["7", "7"])[i] for f, w in zip(functions, weights)) for i in range(2)]
    assert totals[1] > totals[0]


def test_unparseable_reference_gives_no_opinion():
    functions, _ = rewards.resolve([RewardSpec(name="answer_line", gate="correct")])
    assert functions[0](["The answer is 7."], answer=["#### "]) == [None]


def test_gate_uses_the_runs_own_verifier_settings():
    # with the last-number fallback off, "I think 7" has no stated answer, so the gated reward pays nothing
    specs = [RewardSpec(name="math_correctness", params={"fallback_last_number": False}),
             RewardSpec(name="integer_answer", gate="correct")]
    functions, _ = rewards.resolve(specs)
    assert functions[1](["I think 7"], answer=["7"]) == [0.0]


def test_scorer_reports_format_compliance_ungated():
    specs = [RewardSpec(name="math_correctness"), RewardSpec(name="answer_line", gate="correct")]
    scorer = Scorer.from_specs(specs)
    assert scorer.reward_functions["answer_line"](["The answer is 8."], answer=["7"]) == [1.0]
