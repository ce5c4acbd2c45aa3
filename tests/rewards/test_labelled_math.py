"""Issue 11's labelled set (tests/rewards/labelled_math.py, 477 hand-labelled cases): the reward never accepts a
wrong answer, and agrees with the hand label on every case it decides; and Math-Verify's own test triples
(tests/fixtures/math_verify) pass at the issue's bar of 95%."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rewards.math import MathCorrectness
from labelled_math import all_cases, latex_cases  # beside this file (pytest puts its folder on sys.path)

pytest.importorskip("math_verify")  # symbolic answers need the [math] extra; plain numbers are tested elsewhere

CASES = all_cases()
# Labels are about what is judged, not how fast: a generous bound keeps a busy CI machine from turning a slow
# comparison into an undecided one (the time bound itself is tested in test_hostile.py).
REWARD = MathCorrectness(symbolic_timeout_s=60.0)
# Undecided (None) by design: a huge exponent is refused before parsing.
UNDECIDED = {("exponent", "The answer is 1e999999999", "1")}


def test_labelled_set_is_large_enough():
    assert len(CASES) >= 300 and len(latex_cases()) >= 300


@pytest.mark.parametrize(("category", "completion", "gold", "label"), CASES,
                         ids=[f"{i}-{c[0]}" for i, c in enumerate(CASES)])
def test_labelled_case(category, completion, gold, label):
    verdict = REWARD.judge(completion, gold)
    if (category, completion, gold) in UNDECIDED:
        assert verdict is None
    else:
        assert verdict is not None and int(verdict) == label


def test_math_verify_own_cases_pass_at_95_percent():
    lines = (Path(__file__).parents[1] / "fixtures" / "math_verify" / "cases.jsonl").read_text().splitlines()
    cases = [json.loads(line) for line in lines]
    failed = [c for c in cases if REWARD.judge(c["pred"], c["gold"]) != bool(c["expected"])]
    assert len(cases) >= 240
    assert 1 - len(failed) / len(cases) >= 0.95, failed
