"""Symbolic answer equivalence through math-verify, with a hard time bound that holds on any thread.

Why a subprocess: math-verify (what TRL's ``accuracy_reward`` and open-r1 use) bounds its own work with
``signal.alarm``, which only exists on the main thread; called from a worker thread with a timeout it raises
``ValueError``, and with the timeout disabled nothing bounds sympy on hostile input (a ``\\frac`` chain, a
huge power). A thread cannot be killed in Python. So the parse and compare run in a child process
(``python -m rewards._symbolic_worker``, one per calling thread and process, started on first use), which the caller
waits on with ``select`` and kills when the deadline passes: the bound holds on the main thread, in worker threads
and inside dataloader worker processes (which are daemonic and may not use ``multiprocessing`` children, but may
start a plain subprocess). The child's stdin/stdout carry one JSON line per request and reply; model output is
only ever parsed as LaTeX/expressions by math-verify, never evaluated.

Cheap pre-filters (:func:`too_hostile`) refuse inputs that no dataset answer looks like (long, deeply nested, huge
exponents or digit runs) before any process is involved, so hostile text costs microseconds, not a kill and a
restart. Anything undecided - math-verify missing, a parse failure, a timeout, a crash - is ``None``: no opinion.
"""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
import threading
import time
import weakref
from importlib.util import find_spec

# Per comparison, after the worker is up. Dataset answers take milliseconds (docs/rewards.md); the margin is for a
# busy machine. Hostile text never waits this long: too_hostile() refuses it before any process is involved.
DEFAULT_TIMEOUT_S = 3.0
STARTUP_TIMEOUT_S = 60.0  # importing sympy and math-verify on a busy 2-core machine
MAX_ANSWER_CHARS = 400  # MATH's longest boxed answers are ~150 characters
MAX_BRACE_DEPTH = 12
MAX_COMMANDS = 40  # backslash commands in one answer (\frac chains)
# exponents of 4+ digits, power towers (an exponent that has its own exponent), big factorials, 1e9999
_HUGE_EXPONENT = re.compile(r"(?:\^|\*\*)\s*\{?\s*[-+]?\s*\d{4,}|\^\s*\{[^{}]*\^|\^\s*\w+\s*\^|\d[eE][-+]?\d{4,}"
                            r"|\d{4,}\s*!|!\s*!")
_LONG_DIGITS = re.compile(r"\d{61,}")

WORKER_ARGV = [sys.executable, "-m", "rewards._symbolic_worker"]


def available() -> bool:
    """Whether math-verify is installed (the ``[math]`` extra); without it symbolic answers get no opinion."""
    return find_spec("math_verify") is not None


def too_hostile(answer: str) -> str | None:
    """Why ``answer`` is refused before parsing (a short reason), or None when it may be parsed."""
    if len(answer) > MAX_ANSWER_CHARS:
        return "too long"
    depth = deepest = 0
    for char in answer:
        if char == "{" or char == "(" or char == "[":
            depth += 1
            deepest = max(deepest, depth)
        elif char == "}" or char == ")" or char == "]":
            depth -= 1
    if deepest > MAX_BRACE_DEPTH:
        return "nested too deep"
    if answer.count("\\") > MAX_COMMANDS:
        return "too many commands"
    if _HUGE_EXPONENT.search(answer) or _LONG_DIGITS.search(answer):
        return "huge number"
    return None


class Worker:
    """One child process running math-verify; :meth:`equal` answers True/False, or None (undecided)."""

    def __init__(self, argv: list[str] | None = None) -> None:
        self.argv = list(argv or WORKER_ARGV)
        self.process: subprocess.Popen | None = None
        self._buffer = b""
        self._finalizer: weakref.finalize | None = None

    def _start(self) -> bool:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [_project_root(), os.environ.get("PYTHONPATH")])))
        self.process = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, env=env)
        self._buffer = b""
        self._finalizer = weakref.finalize(self, _kill, self.process)
        ready = self._read_line(time.monotonic() + STARTUP_TIMEOUT_S)
        if ready is None or json.loads(ready).get("ready") is not True:
            self.close()
            return False
        return True

    def equal(self, gold: str, prediction: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> bool | None:
        if self.process is None or self.process.poll() is not None:
            if not self._start():
                return None
        request = json.dumps({"gold": gold, "pred": prediction}).encode() + b"\n"
        try:
            self.process.stdin.write(request)
            self.process.stdin.flush()
        except OSError:
            self.close()
            return None
        line = self._read_line(time.monotonic() + timeout_s)
        if line is None:  # past the deadline or the child died: kill it, the next call starts a fresh one
            self.close()
            return None
        verdict = json.loads(line).get("equal")
        return verdict if isinstance(verdict, bool) else None

    def _read_line(self, deadline: float) -> bytes | None:
        stdout = self.process.stdout
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            readable, _, _ = select.select([stdout], [], [], remaining)
            if not readable:
                return None
            chunk = os.read(stdout.fileno(), 65536)
            if not chunk:  # the child exited
                return None
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line

    def close(self) -> None:
        if self.process is not None:
            _kill(self.process)
            self.process = None
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None


def _kill(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.kill()
    process.wait()
    for stream in (process.stdin, process.stdout):
        try:
            stream.close()
        except OSError:
            pass


def _project_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


_local = threading.local()


def _worker() -> Worker:
    """This thread's worker; a forked process (a dataloader worker) gets its own rather than sharing the parent's."""
    worker = getattr(_local, "worker", None)
    if worker is None or getattr(_local, "pid", None) != os.getpid():
        worker = Worker()
        _local.worker, _local.pid = worker, os.getpid()
    return worker


def equal(gold: str, prediction: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> bool | None:
    """math-verify's verdict on two extracted answers, bounded by ``timeout_s``; None when undecided."""
    if not available() or too_hostile(gold) or too_hostile(prediction):
        return None
    return _worker().equal(gold, prediction, timeout_s)
