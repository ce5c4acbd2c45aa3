"""Learning curves from metrics.jsonl: accuracy intervals, series extraction, the PNG and `grpo plot`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from grpo.cli import main
from grpo.eval.learning_plots import accuracy_points, read_metrics, series, smoothed
from grpo.eval.metrics import wilson_interval

RECORDS = [
    {"step": 0, "eval/accuracy": 0.25, "eval/samples": 200},
    {"step": 1, "loss": 0.1, "reward": 0.3, "rewards/math_correctness/mean": 0.3, "entropy": 1.0,
     "completions/mean_length": 20.0, "frac_reward_zero_std": 0.5, "dynamic_sampling/filled_fraction": 1.0},
    {"step": 2, "loss": 0.1, "reward": 0.5, "rewards/math_correctness/mean": 0.5, "entropy": 0.8,
     "completions/mean_length": 18.0, "frac_reward_zero_std": 0.25, "dynamic_sampling/filled_fraction": 0.75},
    {"step": 2, "eval/accuracy": 0.5, "eval/samples": 200},
]


def write_run(folder: Path, records=RECORDS, torn: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(r) + "\n" for r in records) + ('{"step": 3, "lo' if torn else "")
    (folder / "metrics.jsonl").write_text(text)
    return folder


def test_accuracy_points_carry_wilson_intervals_in_percent():
    points = accuracy_points(RECORDS)
    assert [p[0] for p in points] == [0, 2]
    low, high = wilson_interval(50, 200)
    assert points[0][1] == 25.0 and points[0][2] == pytest.approx(100 * low) and points[0][3] == pytest.approx(100 * high)


def test_series_and_smoothing():
    assert series(RECORDS, "entropy") == ([1, 2], [1.0, 0.8])
    assert smoothed([0.0, 3.0, 6.0], 3) == [1.5, 3.0, 4.5]  # centred window, shrunk at the ends


def test_torn_last_line_is_skipped(tmp_path):
    assert len(read_metrics(write_run(tmp_path / "run", torn=True))) == len(RECORDS)


def test_before_after_evals_become_accuracy_points_when_no_periodic_evals(tmp_path):
    folder = write_run(tmp_path / "run", records=[r for r in RECORDS if "eval/accuracy" not in r])
    (folder / "before_after.json").write_text(json.dumps(
        {"before": {"samples": 200, "accuracy": 0.315}, "after": {"samples": 200, "accuracy": 0.57}}))
    points = accuracy_points(read_metrics(folder))
    assert [(p[0], round(p[1], 6)) for p in points] == [(0, 31.5), (2, 57.0)]
    assert accuracy_points(read_metrics(write_run(tmp_path / "periodic"))) == accuracy_points(RECORDS)


def test_grpo_plot_writes_one_png_for_several_runs(tmp_path):
    a, b = write_run(tmp_path / "a"), write_run(tmp_path / "b")
    out = tmp_path / "curves.png"
    assert main(["plot", str(a), str(b), "--labels", "on,off", "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000


def test_grpo_plot_errors_are_one_line(tmp_path, capsys):
    assert main(["plot", str(tmp_path / "missing")]) == 2
    assert "neither a run directory" in capsys.readouterr().err
    assert main(["plot", str(write_run(tmp_path / "a")), "--labels", "x,y"]) == 2
