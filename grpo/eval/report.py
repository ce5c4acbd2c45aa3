"""Markdown tables of evaluation summaries."""

from __future__ import annotations

from typing import Any


ROWS = (
    ("accuracy", "greedy accuracy", "percent"),
    ("format_compliance", "format compliance", "percent"),
    ("mean_completion_tokens", "mean completion tokens", "number"),
    ("truncation_rate", "truncated at the token limit", "percent"),
)


def _cell(value: Any, style: str, ci: list[float] | None = None) -> str:
    if value is None:
        return "n/a"
    if style != "percent":
        return f"{value:.1f}"
    return f"{100 * value:.1f}%" + (f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]" if ci else "")


def before_after_table(before: dict[str, Any], after: dict[str, Any]) -> str:
    """Before/after on the same held-out problems (summaries of :func:`grpo.eval.evaluate.summarize`): rates with their
    95% intervals, the change in percentage points."""
    lines = [f"held-out problems: {before['samples']}; 95% intervals in brackets", "",
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
        cells = [_cell(summary.get(key), style, summary.get(f"{key}_ci95")) for summary in (before, after)]
        lines.append(f"| {label} | {cells[0]} | {cells[1]} | {change} |")
    return "\n".join(lines)
