"""The collapse guard: each failure mode warns once, with its numbers; a healthy run stays quiet."""

from __future__ import annotations

from types import SimpleNamespace

from grpo.train.collapse_guard import CollapseGuard
from grpo.config import CollapseGuardSection

HEALTHY = {"loss": 0.1, "reward": 0.5, "entropy": 1.2, "frac_reward_zero_std": 0.3,
           "rewards/math_correctness/mean": 0.3, "rewards/answer_line/mean": 0.6}


def run_guard(logs_per_step: list[dict], window: int = 3) -> tuple[list[str], list[dict]]:
    said: list[str] = []
    guard = CollapseGuard(CollapseGuardSection(window=window), ["math_correctness"], ["answer_line"], said.append)
    logged = []
    for step, logs in enumerate(logs_per_step, start=1):
        logs = dict(logs)
        guard.on_log(None, SimpleNamespace(global_step=step), None, logs=logs)
        logged.append(logs)
    return said, logged


def test_healthy_run_is_quiet():
    said, logged = run_guard([HEALTHY] * 8)
    assert said == [] and logged[-1]["guard/warnings"] == 0.0


def test_entropy_collapse_warns_once_with_the_number():
    said, logged = run_guard([HEALTHY] * 3 + [HEALTHY | {"entropy": 0.05}] * 6)
    assert len(said) == 1 and "entropy" in said[0] and "0.05" in said[0]
    assert logged[-1]["guard/warnings"] == 1.0


def test_flat_groups_warn():
    said, _ = run_guard([HEALTHY | {"frac_reward_zero_std": 0.9}] * 4)
    assert len(said) == 1 and "90% of groups" in said[0]
    assert said[0].endswith("train.dynamic_sampling.enabled")


def test_flat_groups_with_dynamic_sampling_on_suggest_more_rounds_not_switching_it_on():
    said, _ = run_guard([HEALTHY | {"frac_reward_zero_std": 0.9, "dynamic_sampling/kept_fraction": 0.1}] * 4)
    assert len(said) == 1 and "train.dynamic_sampling.max_rounds (dynamic sampling is on)" in said[0]
    assert not said[0].endswith("train.dynamic_sampling.enabled")


def test_saturated_shaping_reward_with_flat_correctness_warns():
    said, _ = run_guard([HEALTHY | {"rewards/math_correctness/mean": 0.02, "rewards/answer_line/mean": a}
                         for a in (0.1, 0.2, 0.3, 0.98, 0.99, 0.99, 0.99)])
    assert len(said) == 1 and "'answer_line' saturated" in said[0]


def test_saturation_with_rising_correctness_is_learning_not_hacking():
    said, _ = run_guard([HEALTHY | {"rewards/math_correctness/mean": c, "rewards/answer_line/mean": 0.99}
                         for c in (0.1, 0.1, 0.1, 0.3, 0.4, 0.5)])
    assert said == []


def test_a_condition_that_clears_and_returns_warns_again():
    flat = HEALTHY | {"frac_reward_zero_std": 0.95}
    said, _ = run_guard([flat] * 3 + [HEALTHY] * 3 + [flat] * 3)
    assert len(said) == 2


def test_non_training_logs_are_ignored():
    said, logged = run_guard([{"eval/accuracy": 0.5}] * 5)
    assert said == [] and "guard/warnings" not in logged[-1]
