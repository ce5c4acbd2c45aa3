"""pass@k, maj@k and confidence intervals against hand-computed values."""

from __future__ import annotations

import pytest

from grpo.eval.metrics import (
    bootstrap_interval, maj_at_k, majority_answer, paired_difference, pass_at_k, wilson_interval,
)


@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [
        (5, 0, 1, 0.0),  # nothing correct
        (5, 5, 1, 1.0),  # everything correct
        (5, 2, 1, 0.4),  # pass@1 is the fraction correct
        (5, 2, 2, 0.7),  # 1 - C(3,2)/C(5,2) = 1 - 3/10
        (10, 3, 5, 1 - 21 / 252),  # 1 - C(7,5)/C(10,5)
        (4, 1, 4, 1.0),  # fewer wrong samples than k: some draw must contain the correct one
        (100, 1, 10, 0.1),  # 1 - C(99,10)/C(100,10) = 10/100
    ],
)
def test_pass_at_k(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected)


@pytest.mark.parametrize(("n", "c", "k"), [(5, 1, 0), (5, 1, 6), (5, 6, 1)])
def test_pass_at_k_rejects_impossible_arguments(n, c, k):
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


@pytest.mark.parametrize(
    ("answers", "correct", "k", "expected"),
    [
        ([5, 5, 6], [True, True, False], 3, 1.0),  # majority is right
        ([6, 6, 5], [False, False, True], 3, 0.0),  # majority is wrong although one sample is right
        ([5, 6], [False, True], 2, 0.0),  # a tie goes to the answer seen first
        ([6, 5, 5], [False, True, True], 1, 0.0),  # only the first k samples vote
        ([None, None, 7], [False, False, True], 3, 1.0),  # samples without an answer do not vote
        ([None, None], [False, False], 2, 0.0),  # nobody answered
    ],
)
def test_maj_at_k(answers, correct, k, expected):
    assert maj_at_k(answers, correct, k) == expected


def test_majority_answer_is_deterministic_on_ties():
    assert majority_answer(["b", "a", "a", "b"]) == "b"


@pytest.mark.parametrize(
    ("successes", "total", "low", "high"),
    [
        (0, 10, 0.0, 0.27753),  # Wilson stays informative at 0%
        (5, 10, 0.23659, 0.76341),  # symmetric around 50%
        (10, 10, 0.72247, 1.0),  # and at 100%
        (81, 100, 0.72227, 0.87481),  # a typical accuracy
    ],
)
def test_wilson_interval(successes, total, low, high):
    assert wilson_interval(successes, total) == (pytest.approx(low, abs=1e-4), pytest.approx(high, abs=1e-4))


def test_bootstrap_interval():
    assert bootstrap_interval([0.5] * 20) == (0.5, 0.5)  # no spread, no width
    low, high = bootstrap_interval([0.0] * 50 + [1.0] * 50)
    assert 0.38 < low < 0.5 < high < 0.62  # about +-1.96 * sqrt(0.25 / 100) = +-0.098
    assert bootstrap_interval([0.0, 1.0] * 10, seed=3) == bootstrap_interval([0.0, 1.0] * 10, seed=3)


def test_bootstrap_interval_in_chunks_equals_one_draw_and_the_normal_approximation():
    """5,000 problems: the resamples are drawn in several chunks; the bounds are those of one draw of all of them,
    and within a bootstrap's noise of mean +- 1.96 standard errors."""
    import numpy as np

    values = [1.0] * 1000 + [0.0] * 4000
    low, high = bootstrap_interval(values, resamples=2000, seed=1)
    rng = np.random.default_rng(1)
    means = np.sort(np.asarray(values)[rng.integers(0, 5000, size=(2000, 5000))].mean(axis=1))
    assert (low, high) == (means[50], means[1950])
    half = 1.96 * (0.2 * 0.8 / 5000) ** 0.5
    assert low == pytest.approx(0.2 - half, abs=0.003) and high == pytest.approx(0.2 + half, abs=0.003)


def test_paired_difference():
    result = paired_difference([0, 0, 1, 1], [1, 0, 1, 1])
    assert result["difference"] == 0.25 and result["problems"] == 4
    assert result["ci95"][0] <= 0.25 <= result["ci95"][1]
    with pytest.raises(ValueError, match="same problems"):
        paired_difference([1], [1, 0])
