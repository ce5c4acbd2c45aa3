"""Shaping rewards: integer answers, the soft overlong penalty, the n-gram repetition penalty."""

from __future__ import annotations

import pickle

import pytest

from rewards.shaping import IntegerAnswer, OverlongPenalty, RepetitionPenalty


@pytest.mark.parametrize(
    ("completion", "score"),
    [
        ("The answer is 72.", 1.0),  # integer
        ("The answer is 72.00", 1.0),  # integer written as a decimal
        ("The answer is 3/4", 0.0),  # fraction
        ("The answer is 2.5", 0.0),  # decimal
        ("The answer is yes", 0.0),  # text
        ("nothing", 0.0),  # no answer
    ],
)
def test_integer_answer(completion, score):
    assert IntegerAnswer()([completion]) == [score]


@pytest.mark.parametrize(
    ("length", "score"),
    [
        (10, 0.0),  # far below the limit
        (75, 0.0),  # exactly at the start of the buffer zone (100 - 25)
        (80, -0.2),  # 5 of 25 tokens into the buffer
        (100, -1.0),  # at the limit
        (130, -1.0),  # beyond the limit: capped
    ],
)
def test_overlong_penalty_ramp(length, score):
    reward = OverlongPenalty(max_completion_length=100, buffer=25)
    assert reward(["x"], completion_ids=[[0] * length]) == [pytest.approx(score)]


def test_overlong_penalty_default_buffer_and_errors():
    assert OverlongPenalty(max_completion_length=100)(["x"], completion_ids=[[0] * 80]) == [pytest.approx(-0.2)]
    with pytest.raises(KeyError, match="completion_ids"):
        OverlongPenalty(max_completion_length=100)(["x"])
    with pytest.raises(ValueError, match="max_completion_length"):
        OverlongPenalty()(["x"], completion_ids=[[0]])
    with pytest.raises(ValueError, match="buffer"):
        OverlongPenalty(max_completion_length=10, buffer=20)


@pytest.mark.parametrize(
    ("completion", "score"),
    [
        ("one two three four five", 0.0),  # no repeated trigram
        ("a b c a b c a b c", pytest.approx(-(1 - 3 / 7))),  # 7 trigrams, 3 unique
        ("same same same same same", pytest.approx(-(1 - 1 / 3))),  # one trigram repeated
        ("too short", 0.0),  # fewer words than n
    ],
)
def test_repetition_penalty(completion, score):
    assert RepetitionPenalty()([completion]) == [score]


def test_repetition_penalty_params_and_pickling():
    reward = RepetitionPenalty(ngram_size=1, max_penalty=-0.5)
    assert reward(["a a a a"]) == [pytest.approx(-0.5 * 0.75)]
    assert pickle.loads(pickle.dumps(reward)) == reward
    with pytest.raises(ValueError, match="max_penalty"):
        RepetitionPenalty(max_penalty=1.0)
