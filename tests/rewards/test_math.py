"""Answer extraction, numeric comparison and the correctness reward: table-driven, one comment per case."""

from __future__ import annotations

import pickle

import pytest

from rewards.math import (
    MathCorrectness, answer_key, answers_match, extract_answer, judge, parse_number, parse_reference,
)

EXTRACTION = [
    # (completion, expected extracted answer) -- what each case guards
    ("The answer is 72.", "72"),  # the plain answer phrase; trailing period dropped
    ("The final answer is 72", "72"),  # "final" variant
    ("<answer>72</answer>", "72"),  # the tag our prompts ask for
    ("<think>\n3 + 4 = 7\n</think>\n<answer>\n7\n</answer>", "7"),  # multi-line tags
    ("<answer>1,000</answer>", "1,000"),  # thousands separator kept for the comparison to parse
    ("<answer>x = 5</answer>", "5"),  # assignment inside the tag: the right-hand side
    ("<answer>The answer is 12</answer>", "12"),  # phrase inside the tag
    ("<answer>\\boxed{9}</answer>", "9"),  # boxed inside the tag
    ("<answer>42", "42"),  # unclosed tag at the end of a truncated completion
    ("so \\boxed{\\frac{3}{4}}", "\\frac{3}{4}"),  # boxed with nested braces
    ("\\boxed{\\text{18}}", "18"),  # \text{} unwrapped
    ("first \\boxed{3} then \\boxed{4}", "4"),  # the last boxed wins
    ("\\boxed{5} ... \\boxed{", "5"),  # a truncated last boxed falls back to the previous one
    ("\\fbox{12}", "12"),  # \fbox like \boxed
    ("Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n#### 72", "72"),  # GSM8K style with annotations
    ("#### 1,234", "1,234"),  # hashes with separator
    ("Answer: 15", "15"),  # Answer: line
    ("**Answer:** 15", "15"),  # markdown bold answer line
    ("Answer:\n$18.00", "18.00"),  # answer on the line after the marker, currency
    ("A: 50%", "50%"),  # A: line with percent
    ("The answer is $1,000.", "1,000"),  # currency and sentence period
    ("The answer is \\$25.50.", "25.50"),  # LaTeX dollar
    ("The answer is -3.5.", "-3.5"),  # negative decimal
    ("The answer is −7", "-7"),  # unicode minus
    ("The answer is 72 dollars", "72"),  # unit word after the number
    ("The answer is 5 + 3 = 8.", "8"),  # a computation: the result after '='
    ("The answer is eighteen.", "18"),  # a number word
    ("The answer is yes", "yes"),  # non-numeric answer
    ("The answer is 3/4 of a cup", "3/4"),  # plain fraction
    ("The answer is 90^\\circ", "90"),  # degrees
    ("The answer is 1 1/2", "1 1/2"),  # mixed number kept as one (issue 11: it used to read as 11/2)
    ("Final Answer: The final answer is $\\boxed{72}$. I hope it is correct.", "72"),  # Minerva format
    ("The answer is 10. Wait, the answer is 12.", "12"),  # a corrected answer: the last statement wins
    ("The answer to the question is 6.", "6"),  # "answer to ... is"
    ("To answer this, we add 5 and 6 to get 11", "11"),  # "answer" as a verb is not a marker: last number
    ("So 5 + 3 = 8 apples.", "8"),  # no marker: last number
    ("She has <<48/2=24>>24 clips", "24"),  # calculator annotations removed before the fallback
    ("There are 2,500 people.", "2,500"),  # fallback keeps separators
    ("no numbers here", None),  # nothing to extract
    ("", None),  # empty completion
    ("The answer is 72 \\boxed{70}", "70"),  # boxed outranks the phrase
    ("\\boxed{70}\n#### 72", "72"),  # the marker stated last wins (issue 11: a box in the working is not final)
    ("<answer>72</answer> \\boxed{70}", "72"),  # the tag outranks boxed
]


@pytest.mark.parametrize(("completion", "expected"), EXTRACTION)
def test_extract_answer(completion, expected):
    assert extract_answer(completion) == expected


def test_fallback_can_be_disabled():
    assert extract_answer("So 5 + 3 = 8 apples.", fallback_last_number=False) is None
    assert extract_answer("The answer is 8", fallback_last_number=False) == "8"


MATCHES = [
    # (predicted, reference, equal?) -- what each case guards
    ("72", "72", True),  # identical
    ("1,000", "1000", True),  # separators
    ("18.00", "18", True),  # trailing zeros
    ("18.", "18", True),  # trailing period
    ("0.75", "\\frac{3}{4}", True),  # decimal vs LaTeX fraction, exact
    ("3/4", "\\dfrac{3}{4}", True),  # slash vs \dfrac
    ("-\\frac{1}{2}", "-0.5", True),  # negative fraction
    ("0.33", "1/3", True),  # two decimals, rounded half up from 1/3
    ("0.67", "2/3", True),  # rounded up
    ("0.66", "2/3", False),  # truncated, not rounded: wrong
    ("0.3", "1/3", False),  # one decimal place is too coarse to count
    ("50", "50%", True),  # percent sign dropped
    ("0.5", "50%", True),  # exactly one side says percent: 0.5 == 50%
    ("50%", "50%", True),  # both percent
    ("0.5", "50", False),  # no percent sign anywhere: 0.5 is not 50
    ("-3.5", "-3.5", True),  # negative decimal
    ("3.5", "-3.5", False),  # sign matters
    ("72", "73", False),  # off by one
    ("1000", "100", False),  # separators are not wildcards
    ("Yes", "yes.", True),  # text answers: case and end punctuation ignored
    ("yes", "no", False),  # different text
    ("5", "five", False),  # a number is never equal to text
    (None, "5", False),  # nothing extracted
    ("1 1/2", "1.5", True),  # mixed number compares by value
    ("11/2", "1.5", False),  # ... and is not the fraction its digits spell without the space
    ("12", "12.0", True),  # integer vs decimal
]


@pytest.mark.parametrize(("predicted", "reference", "equal"), MATCHES)
def test_answers_match(predicted, reference, equal):
    assert answers_match(predicted, reference) is equal


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("72", "72"),  # bare answer
        ("Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs.\n#### 18", "18"),  # full GSM8K solution
        ("#### 1,000", "1,000"),  # GSM8K with separator
        ("\\frac{3}{4}", "\\frac{3}{4}"),  # LaTeX fraction
        ("\\boxed{12}", "12"),  # boxed reference
        ("50%", "50%"),  # percent
        ("", None),  # empty: unparseable
        ("####", None),  # marker without an answer: unparseable
        (None, None),  # missing
    ],
)
def test_parse_reference(reference, expected):
    assert parse_reference(reference) == expected


def test_parse_number_rejects_huge_digit_runs():
    assert parse_number("1" * 1001) is None
    assert parse_number("1" * 1000).value == int("1" * 1000)


def test_a_degenerate_long_numeral_is_judged_not_left_undecided():
    # a base-model answer on the GPU synthetic eval: "So, 196 / 198 = 0.000...", 180 zeros, cut off by the limit
    zeros = "0." + "0" * 180
    assert judge(zeros, "193") is False
    assert judge(zeros, "0") is True


@pytest.mark.parametrize(("answer", "reference", "right"), [
    ("15 + 5 + 57", "77", False),  # the question's arithmetic copied into the answer line: equal in value, no answer
    ("23 - 2", "21", False),
    ("3 \\times 4", "12", False),
    ("12 / 4 - 1", "2", False),
    ("(2 + 3)", "5", False),
    ("77", "77", True),
    ("3/4", "0.75", True),  # a fraction is a number
    ("\\frac{3}{4}", "0.75", True),
    ("1e3", "1000", True),  # scientific notation is a number
    ("2^{3}", "8", True),  # an exact power stays an answer
])
def test_a_numeric_reference_is_answered_by_a_number_not_by_arithmetic(answer, reference, right):
    assert MathCorrectness()([f"The answer is {answer}."], answer=[reference]) == [1.0 if right else 0.0]


def test_answer_key_groups_equal_values():
    assert answer_key("1,000") == answer_key("1000.00") == answer_key("1000")
    assert answer_key("Yes.") == answer_key("yes")
    assert answer_key(None) is None


class TestMathCorrectness:
    reward = MathCorrectness()

    def test_scores_plain_and_conversational_completions(self):
        completions = ["The answer is 18.", [{"role": "assistant", "content": "#### 17"}], "no idea"]
        assert self.reward(completions, answer=["#### 18", "17", "5"]) == [1.0, 1.0, 0.0]

    def test_unparseable_reference_is_none_and_counted(self):
        logged = {}
        scores = self.reward(["72", "72"], answer=["", "72"], log_metric=lambda name, value: logged.update({name: value}))
        assert scores == [None, 1.0]
        assert logged == {"math_correctness/unparseable_reference": 1.0, "math_correctness/undecided": 0.0}

    def test_ignores_unknown_keywords(self):
        assert self.reward(["The answer is 3"], answer=["3"], prompts=["p"], trainer_state=object(), foo=1) == [1.0]

    def test_missing_reference_column_is_an_error_not_a_zero(self):
        with pytest.raises(KeyError, match="answer"):
            self.reward(["The answer is 3"])

    def test_picklable_with_stable_name(self):
        restored = pickle.loads(pickle.dumps(MathCorrectness(fallback_last_number=False)))
        assert restored.__name__ == "math_correctness" and restored.fallback_last_number is False
