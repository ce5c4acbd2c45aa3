"""Where a resume starts: the newest *complete* checkpoint, and the metrics file cut back to it.

transformers writes ``trainer_state.json`` last when it saves a checkpoint (after weights, optimizer, scheduler
and RNG state), so a checkpoint whose ``trainer_state.json`` is missing or unreadable was cut mid-write (the
process was killed while saving). Such a torn checkpoint is skipped with a message and the previous one is used;
it stays on disk until training reaches its step again and saves over it.
"""

from __future__ import annotations

import json
from pathlib import Path

from transformers.trainer import TRAINER_STATE_NAME
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR


def checkpoint_step(path: Path) -> int | None:
    name = path.name.removeprefix(f"{PREFIX_CHECKPOINT_DIR}-")
    return int(name) if path.is_dir() and path.name.startswith(f"{PREFIX_CHECKPOINT_DIR}-") and name.isdigit() else None


def is_complete(path: Path) -> bool:
    """The trainer state, written last, is there, parses and names this checkpoint's step."""
    try:
        state = json.loads((path / TRAINER_STATE_NAME).read_text())
    except (OSError, ValueError):
        return False
    return state.get("global_step") == checkpoint_step(path)


def newest_complete(run_dir: Path, say=print) -> Path | None:
    """The newest complete checkpoint; says which newer torn ones it skipped."""
    found = sorted((step, path) for path in run_dir.iterdir() if (step := checkpoint_step(path)) is not None)
    for _, path in reversed(found):
        if is_complete(path):
            return path
        say(f"skipping {path.name}: it was cut mid-write (no complete {TRAINER_STATE_NAME})")
    return None


def cut_metrics(path: Path, step: int, write) -> int:
    """Drop metrics records after ``step`` (and a torn last line), so a resumed run logs no step twice.
    Returns how many lines were dropped; ``write(path, text)`` is the atomic writer."""
    if not path.is_file():
        return 0
    kept, dropped = [], 0
    for line in path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            dropped += 1
            continue
        if isinstance(record, dict) and record.get("step", 0) > step:
            dropped += 1
            continue
        kept.append(line)
    if dropped:
        write(path, "".join(line + "\n" for line in kept))
    return dropped
