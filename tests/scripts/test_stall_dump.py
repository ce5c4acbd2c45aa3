"""scripts/stall_dump.sh, the outside watcher that scripts/gpu_learn.sh runs beside a device run, with a stand-in for
py-spy that only says whom it was asked to dump."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "stall_dump.sh"


def _fake_py_spy(folder: Path) -> Path:
    spy = folder / "py-spy"
    spy.write_text('#!/usr/bin/env bash\necho "FAKE DUMP $*"\n')
    spy.chmod(0o755)
    return spy


def _watch(tmp_path: Path, lives_s: float, limit_s: int, spy: Path | None, touch_every_s: float | None = None):
    """Run the watcher on a Python process that sleeps ``lives_s``; returns the dumps file's text, the watcher's
    stderr, the process's pid and the seconds the watcher ran."""
    watched, out = tmp_path / "metrics.jsonl", tmp_path / "stacks.log"
    target = subprocess.Popen([sys.executable, "-c", f"import time; time.sleep({lives_s})"])
    stop = threading.Event()

    def touch():
        while not stop.wait(touch_every_s):
            watched.write_text(str(time.time()))

    toucher = threading.Thread(target=touch) if touch_every_s else None
    if toucher:
        toucher.start()
    env = os.environ | {"STALL_DUMP_S": str(limit_s), "STALL_POLL_S": "0.1",
                        "PYSPY": str(spy) if spy else str(tmp_path / "absent")}
    started = time.monotonic()
    try:
        done = subprocess.run(["bash", str(SCRIPT), str(target.pid), str(watched), str(out)], env=env,
                              capture_output=True, text=True, timeout=60)
        watched_s = time.monotonic() - started
    finally:
        stop.set()
        if toucher:
            toucher.join()
        target.wait()
    assert done.returncode == 0
    return (out.read_text() if out.exists() else ""), done.stderr, target.pid, watched_s


def test_a_stall_is_dumped_three_times_at_most(tmp_path):
    text, stderr, pid, _ = _watch(tmp_path, lives_s=5.5, limit_s=1, spy=_fake_py_spy(tmp_path))
    assert text.count(f"FAKE DUMP dump --native --pid {pid}") == 3
    assert [f"(dump {n} of this stall)" in text for n in (1, 2, 3)] == [True] * 3
    assert stderr.count("stacks appended") == 3


def test_progress_keeps_it_quiet(tmp_path):
    text, _, _, _ = _watch(tmp_path, lives_s=4, limit_s=3, spy=_fake_py_spy(tmp_path), touch_every_s=0.2)
    assert text == ""


def test_without_py_spy_it_says_so_and_leaves(tmp_path):
    text, stderr, _, watched_s = _watch(tmp_path, lives_s=10, limit_s=1, spy=None)
    assert text == "" and "no py-spy" in stderr
    assert watched_s < 5  # it left at once, without waiting for the process (which lives 10 s) to end
