"""``python -m grpo`` of this checkout in a process of its own, for tests that need what only a real process shows:
its console and exit status, or a run whose imports must not reach the test process (Unsloth replaces transformers'
forwards for the whole process it runs in)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_grpo(cwd: Path, *argv: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m grpo ARGV`` of this checkout (not whichever one is installed in the environment, e.g. from a git
    worktree), run in ``cwd``, without ``GRPO_DEBUG`` unless ``env`` sets it."""
    environment = {key: value for key, value in os.environ.items() if key != "GRPO_DEBUG"} | (env or {})
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), environment.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "grpo", *argv], cwd=cwd, capture_output=True, text=True,
                          env=environment, timeout=timeout)
