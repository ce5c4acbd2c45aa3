"""PNG plots of evaluation results (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def accuracy_plot(summaries: dict[str, dict[str, Any]], steps: dict[str, int | None], path: Path,
                  metric: str = "accuracy") -> Path:
    """Accuracy (or pass@1) with its 95% CI per target, against the training step when every target has one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(summaries)
    key = metric if all(summaries[label].get(metric) is not None for label in labels) else "pass@1"
    values = [100 * summaries[label][key] for label in labels]
    intervals = [summaries[label][f"{key}_ci95"] for label in labels]
    errors = [[v - 100 * ci[0] for v, ci in zip(values, intervals)], [100 * ci[1] - v for v, ci in zip(values, intervals)]]
    use_steps = all(steps.get(label) is not None for label in labels)
    x = [steps[label] for label in labels] if use_steps else list(range(len(labels)))
    figure, axes = plt.subplots(figsize=(max(4.0, 1.2 * len(labels) + 2), 3.5))
    axes.errorbar(x, values, yerr=errors, fmt="o-", capsize=4)
    axes.set_ylabel(f"{key} (%) with 95% CI")
    if use_steps:
        axes.set_xlabel("training step")
    else:
        axes.set_xticks(x, labels, rotation=20, ha="right")
    axes.set_ylim(0, max(100.0, max(100 * ci[1] for ci in intervals)))
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
