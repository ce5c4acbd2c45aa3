"""Markdown tables of evaluation summaries."""

from __future__ import annotations

from typing import Any

from grpo.metrics import wilson_interval

ROWS = (
    ("accuracy", "greedy accuracy", "percent"),
    ("format_compliance", "format compliance", "percent"),
    ("mean_completion_tokens", "mean completion tokens", "number"),
    ("truncation_rate", "truncated at the token limit", "percent"),
)


def _cell(value: Any, style: str) -> str:
    if value is None:
        return "n/a"
    return f"{100 * value:.1f}%" if style == "percent" else f"{value:.1f}"


def _accuracy_cell(summary: dict[str, Any]) -> str:
    """Accuracy with its Wilson 95% interval: whether before and after differ is read from the intervals."""
    accuracy, samples = summary.get("accuracy"), summary.get("samples")
    if accuracy is None or not samples:
        return _cell(accuracy, "percent")
    low, high = wilson_interval(round(accuracy * samples), samples)
    return f"{100 * accuracy:.1f}% [{100 * low:.1f}, {100 * high:.1f}]"


def before_after_table(before: dict[str, Any], after: dict[str, Any]) -> str:
    """Before/after on the same held-out problems; accuracy with its 95% interval, changes in percentage points."""
    lines = [f"held-out problems: {before['samples']}", "",
             "| metric | before | after | change |", "|---|---:|---:|---:|"]
    for key, label, style in ROWS:
        old, new = before.get(key), after.get(key)
        if old is None and new is None:
            continue
        if old is None or new is None:
            change = "n/a"
        elif style == "percent":
            change = f"{100 * (new - old):+.1f} pp"
        else:
            change = f"{new - old:+.1f}"
        if key == "accuracy":
            cells = _accuracy_cell(before), _accuracy_cell(after)
        else:
            cells = _cell(old, style), _cell(new, style)
        lines.append(f"| {label} | {cells[0]} | {cells[1]} | {change} |")
    return "\n".join(lines)
