"""Phase timing of `grpo bench train` (grpo.bench.phases): steps close with 'other' as the remainder, medians per
phase, and the table marks phases a backend could not be timed in."""

from __future__ import annotations

import pytest

from grpo.bench.phases import PhaseTimes, median_phases, phase_table


def test_a_step_closes_with_the_remainder_as_other():
    times = PhaseTimes()
    times.add("generation", 2.0)
    times.add("generate", 1.5)  # nested in generation: not subtracted again
    times.add("backward", 0.5)
    times.close_step(3.0)
    assert times.steps == [{"generation": 2.0, "generate": 1.5, "backward": 0.5, "other": 0.5, "step": 3.0}]
    times.close_step(1.0)  # a new step starts from zero
    assert times.steps[1] == {"other": 1.0, "step": 1.0}


def test_measured_names_the_phases_whose_hooks_ran_and_a_new_step_forgets_time_between_steps():
    times = PhaseTimes()
    times.timed("forward", lambda: None)  # wrapped, never called: not measured
    times.add("backward", 0.25)
    times.add("generate", 0.5)
    times.add("generation", 1.0)
    assert times.measured == ["generation", "generate", "backward"]
    times.open_step()  # what ran before the step (an evaluation between steps) is not the step's
    times.add("reward", 0.5)
    times.close_step(2.0)
    assert times.steps == [{"reward": 0.5, "other": 1.5, "step": 2.0}]


def test_timed_functions_add_their_time_and_return_their_result():
    times = PhaseTimes()
    assert times.timed("reward", lambda x: x * 2)(21) == 42
    with pytest.raises(ZeroDivisionError):
        times.timed("reward", lambda: 1 / 0)()
    times.close_step(10.0)
    assert 0 < times.steps[0]["reward"] < 1 and times.steps[0]["other"] > 9


def test_median_phases_counts_a_missing_phase_as_zero():
    assert median_phases([{"a": 1.0, "b": 4.0}, {"a": 3.0}, {"a": 2.0, "b": 2.0}]) == {"a": 2.0, "b": 2.0}


def test_phase_table_marks_phases_not_measured():
    rows = [{"label": "x hf loop", "seconds_per_step": 2.0, "phases_measured": ["generation", "generate", "backward"],
             "phase_seconds": {"generation": 1.0, "generate": 0.8, "backward": 0.5, "other": 0.5}},
            {"label": "failed", "error": "boom"}]
    table = phase_table(rows).splitlines()
    assert len(table) == 3  # the failed row has no phases
    assert table[2] == ("| x hf loop | 1.00 s (50%) [generate 0.80 s] | - | - | 0.50 s (25%) | - | 0.50 s (25%) |")
