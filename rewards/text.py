"""Helpers shared by every reward: getting the text out of a completion in either of TRL's formats."""

from __future__ import annotations

from typing import Any


def completion_text(completion: Any) -> str:
    """Plain string, or TRL's conversational form ``[{"role": "assistant", "content": ...}]``."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list):
        return "".join(_content_text(message.get("content")) for message in completion if isinstance(message, dict))
    if isinstance(completion, dict):
        return _content_text(completion.get("content"))
    raise TypeError(f"a completion must be a string or a list of messages, got {type(completion).__name__}")


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    # Multimodal content: a list of {"type": "text", "text": ...} parts.
    return "".join(part.get("text", "") for part in content if isinstance(part, dict))
