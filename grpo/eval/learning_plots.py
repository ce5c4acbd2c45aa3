"""Learning curves of one or several runs, from their ``metrics.jsonl``: what docs/learning.md shows.

One PNG with a panel per signal, every run overlaid: held-out greedy accuracy with its Wilson 95% band (the
``eval/*`` records of ``eval.every_n_steps``), each reward's mean, token entropy, completion length, and the share
of groups with no learning signal (TRL's ``frac_reward_zero_std``; with dynamic sampling, the share kept).
Training signals are noisy per step, so they are drawn as a centred moving average over ``smooth`` steps.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from grpo.eval.metrics import wilson_interval
from grpo.rundir import BEFORE_AFTER_JSON, METRICS_FILE

PANELS = (
    ("held-out greedy accuracy (%)", None),
    ("reward means", "rewards/"),
    ("token entropy", "entropy"),
    ("completion length (tokens)", "completions/mean_length"),
    ("groups with zero reward variance", "frac_reward_zero_std"),
)


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Records of a run's metrics file (``path`` is the file or its run directory); a torn last line is skipped.

    A run without periodic evals but with ``eval.before_after`` (the quickstart) gets its before and after greedy
    evals as accuracy points at step 0 and at its last step, so that the accuracy panel is not empty.
    """
    folder = path if path.is_dir() else path.parent
    path = path / METRICS_FILE if path.is_dir() else path
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    if not any("eval/accuracy" in r for r in records) and (folder / BEFORE_AFTER_JSON).is_file():
        records.extend(_before_after_records(folder / BEFORE_AFTER_JSON, records))
    return records


def _before_after_records(path: Path, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    summary = json.loads(path.read_text())
    last_step = max((r["step"] for r in records if isinstance(r.get("step"), int)), default=0)
    return [{"step": step, "eval/accuracy": summary[key]["accuracy"], "eval/samples": summary[key]["samples"]}
            for step, key in ((0, "before"), (last_step, "after"))
            if summary.get(key, {}).get("accuracy") is not None and summary[key].get("samples")]


def accuracy_points(records: list[dict[str, Any]]) -> list[tuple[int, float, float, float]]:
    """(step, accuracy %, low %, high %) per held-out eval; the interval is Wilson's on the problems evaluated."""
    points = {}
    for record in records:
        if "eval/accuracy" in record and record.get("eval/samples"):
            n = int(record["eval/samples"])
            low, high = wilson_interval(record["eval/accuracy"] * n, n)
            points[record["step"]] = (100 * record["eval/accuracy"], 100 * low, 100 * high)
    return [(step, *values) for step, values in sorted(points.items())]


def series(records: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    pairs = sorted({r["step"]: float(r[key]) for r in records if isinstance(r.get(key), (int, float))}.items())
    return [p[0] for p in pairs], [p[1] for p in pairs]


def smoothed(values: list[float], window: int) -> list[float]:
    half = window // 2
    return [sum(values[max(0, i - half):i + half + 1]) / len(values[max(0, i - half):i + half + 1])
            for i in range(len(values))]


def learning_plot(runs: dict[str, list[dict[str, Any]]], path: Path, smooth: int = 5) -> Path:
    """Write the multi-panel PNG for ``runs`` (label -> metrics records) to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, 3, figsize=(15, 8))
    axes = axes.ravel()
    for index, (label, records) in enumerate(runs.items()):
        colour = f"C{index}"
        points = accuracy_points(records)
        if points:
            steps, accuracy, low, high = zip(*points)
            axes[0].plot(steps, accuracy, "o-", color=colour, label=label)
            axes[0].fill_between(steps, low, high, color=colour, alpha=0.2)
        reward_keys = sorted({k for r in records for k in r if k.startswith("rewards/") and k.endswith("/mean")})
        for style, key in zip(("-", "--", ":", "-."), reward_keys):
            steps, values = series(records, key)
            axes[1].plot(steps, smoothed(values, smooth), style, color=colour,
                         label=f"{label}: {key.split('/')[1]}")
        for axis, (_, key) in zip(axes[2:5], PANELS[2:]):
            steps, values = series(records, key)
            axis.plot(steps, smoothed(values, smooth), color=colour, label=label)
        steps, kept = series(records, "dynamic_sampling/filled_fraction")
        if steps:
            axes[4].plot(steps, [1 - v for v in smoothed(kept, smooth)], "--", color=colour,
                         label=f"{label}: in the trained batch (dynamic sampling)")
    for axis, (title, _) in zip(axes, PANELS):
        axis.set_title(title)
        axis.set_xlabel("training step")
        axis.grid(alpha=0.3)
        if axis.lines:
            axis.legend(fontsize=7)
    axes[5].axis("off")
    axes[5].text(0, 0.5, f"training signals: moving average over {smooth} steps\n"
                 "accuracy band: Wilson 95% interval", fontsize=9)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
