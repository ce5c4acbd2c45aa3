"""Format rewards: does the completion use the layout the prompt asked for?

Two layouts are supported: reasoning and answer tags (``<think>…</think><answer>…</answer>``) and a final
answer line ("The answer is N."). Content may span lines. Every check is a sequence of ``str.find`` calls or
an anchored regex on one line, so the time is linear in the completion length whatever it contains.
"""

from __future__ import annotations

import re
from typing import Any

from rewards.registry import register
from rewards.text import completion_text

TAGS = ("<think>", "</think>", "<answer>", "</answer>")
# Each optional piece starts with a distinct literal, so a failing match backtracks linearly (no \s*\s* pairs).
_ANSWER_LINE = re.compile(
    r"[*_#>\s]*(?:(?:so|therefore|thus),?\s+)?the\s+(?:final\s+)?answer\s+is\s*(?::\s*)?[*_$\\]*"
    r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\s*/\s*\d+)?(?:\s*%)?[.*_$\s]*",
    re.IGNORECASE,
)


def _no_tags(text: str) -> bool:
    return not any(tag in text for tag in TAGS)


def strict_layout(text: str) -> bool:
    """Exactly ``<think>\\n…\\n</think>\\n<answer>\\n…\\n</answer>`` (outer whitespace ignored), both non-empty."""
    body = text.strip()
    opening, middle, closing = "<think>\n", "\n</think>\n<answer>\n", "\n</answer>"
    if not (body.startswith(opening) and body.endswith(closing)):
        return False
    split = body.find(middle)
    if split < 0:
        return False
    think = body[len(opening) : split]
    answer = body[split + len(middle) : len(body) - len(closing)]
    return bool(think.strip()) and bool(answer.strip()) and _no_tags(think) and _no_tags(answer)


def soft_layout(text: str) -> bool:
    """``<think>…</think>`` followed (after optional whitespace) by ``<answer>…</answer>``, anywhere."""
    think_open = text.find("<think>")
    think_close = text.find("</think>", think_open + 1) if think_open >= 0 else -1
    if think_close < 0:
        return False
    after = text[think_close + len("</think>") :].lstrip()
    if not after.startswith("<answer>"):
        return False
    return after.find("</answer>") > len("<answer>") - 1


@register("think_answer_strict", kind="format")
def think_answer_strict(completions: list, **kwargs: Any) -> list[float]:
    """1.0 when the completion is exactly ``<think>\\n…\\n</think>\\n<answer>\\n…\\n</answer>``, else 0.0."""
    return [1.0 if strict_layout(completion_text(c)) else 0.0 for c in completions]


@register("think_answer_soft", kind="format")
def think_answer_soft(completions: list, **kwargs: Any) -> list[float]:
    """1.0 when ``<think>…</think>`` is followed by ``<answer>…</answer>`` (any spacing, text around), else 0.0."""
    return [1.0 if soft_layout(completion_text(c)) else 0.0 for c in completions]


@register("tag_count", kind="format")
def tag_count(completions: list, **kwargs: Any) -> list[float]:
    """Partial credit: 0.25 for each of ``<think>``, ``</think>``, ``<answer>``, ``</answer>`` present exactly once."""
    scores = []
    for completion in completions:
        text = completion_text(completion)
        scores.append(sum(0.25 for tag in TAGS if text.count(tag) == 1))
    return scores


def last_line(text: str) -> str:
    stripped = text.rstrip()
    return stripped[stripped.rfind("\n") + 1 :]


@register("answer_line", kind="format")
def answer_line(completions: list, **kwargs: Any) -> list[float]:
    """1.0 when the last non-empty line is "The answer is N." (N a number; "final", "**", "$" allowed), else 0.0."""
    return [1.0 if _ANSWER_LINE.fullmatch(last_line(completion_text(c))) else 0.0 for c in completions]
