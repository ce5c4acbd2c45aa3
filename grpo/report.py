"""Markdown tables of evaluation summaries."""

from __future__ import annotations

from typing import Any

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


def before_after_table(before: dict[str, Any], after: dict[str, Any]) -> str:
    """Before/after on the same held-out problems; the change column is in percentage points for rates."""
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
        lines.append(f"| {label} | {_cell(old, style)} | {_cell(new, style)} | {change} |")
    return "\n".join(lines)
