"""`python -m grpo` runs the CLI (users without the `grpo` script on PATH reach for it)."""

import subprocess
import sys


def test_python_dash_m_grpo_prints_help():
    result = subprocess.run([sys.executable, "-m", "grpo", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "usage: grpo" in result.stdout and "train" in result.stdout
