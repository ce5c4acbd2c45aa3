"""Trainer callbacks: the metrics JSONL file, the periodic held-out evaluation, the time limit and the stall report."""

from __future__ import annotations

import json
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from grpo.train import distributed
from grpo.eval.evaluate import Scorer, greedy_eval
from grpo.rundir import write_atomic


class MetricsJsonl(TrainerCallback):
    """Appends every logged step (TRL's rewards per function, KL, lengths, clip ratios, step_time) to a JSONL file."""

    def __init__(self, path: Path):
        self.path = path

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        with open(self.path, "a") as stream:
            stream.write(json.dumps({"step": state.global_step, "time": time.time(), **logs}) + "\n")


class HeldOutEval(TrainerCallback):
    """Greedy eval on held-out problems at step 0 and every ``every`` steps, logged as ``eval/<metric>``.

    Under ``accelerate launch`` it runs on the main process only; the other processes wait for it.
    The metrics go through the trainer's callback handler (TensorBoard, metrics.jsonl, console), not through
    ``trainer.log``, which would also flush TRL's pending training metrics at the wrong step.
    """

    def __init__(self, rows: list[dict[str, Any]], scorer: Scorer, max_new_tokens: int, batch_size: int, every: int,
                 samples_dir: Path | None = None, decoder: str = "generate"):
        self.rows, self.scorer, self.every, self.decoder = rows, scorer, every, decoder
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size
        self.samples_dir = samples_dir  # per-problem outputs of each eval: step-000025.jsonl, ...
        self.trainer = None

    def attach(self, trainer) -> None:
        self.trainer = trainer

    def _evaluate(self, args, state, control, processing_class) -> None:
        """Once, on the main process (the others wait), on the policy as TRL's rollouts see it (ZeRO-3 gathered)."""
        result = distributed.on_main_process(self.trainer, lambda model: greedy_eval(
            model, processing_class, self.rows, self.scorer, self.max_new_tokens, self.batch_size,
            f"eval step {state.global_step}", decoder=self.decoder))
        if result is None:
            return
        summary, samples = result
        if self.samples_dir is not None:
            self.samples_dir.mkdir(parents=True, exist_ok=True)
            write_atomic(self.samples_dir / f"step-{state.global_step:06d}.jsonl",
                         "".join(json.dumps(sample.to_json()) + "\n" for sample in samples))
        logs = {f"eval/{key}": value for key, value in summary.items()
                if isinstance(value, (int, float)) and not isinstance(value, bool)}
        # CallbackHandler.on_log clears control.should_log; keep the trainer's own logging of this step.
        should_log = control.should_log
        self.trainer.callback_handler.on_log(args, state, control, logs=logs)
        control.should_log = should_log

    def on_train_begin(self, args, state, control, processing_class=None, **kwargs):
        if state.global_step == 0:
            self._evaluate(args, state, control, processing_class)

    def on_step_end(self, args, state, control, processing_class=None, **kwargs):
        if state.global_step % self.every == 0:
            self._evaluate(args, state, control, processing_class)


class TimeLimit(TrainerCallback):
    """Stop training, with a checkpoint, once ``minutes`` of wall time have passed since the trainer was built.

    For runs cut into fixed-length sessions (a GPU lent for ten minutes at a time): the run ends cleanly at a step
    boundary with everything saved, and ``--resume`` continues it; killing the process instead could cut a
    checkpoint in half. The clock starts when the callback is made (with the trainer, after the model is loaded),
    not when the first step starts, so a warm start and the evaluations before step 1 use up the same budget as
    the steps do: a session's wall time is what the limit has to fit.

    Under several processes the main process's clock decides for all (``agree``), at every step end, so they all
    stop after the same step.
    """

    def __init__(self, minutes: float, say=print, clock=time.monotonic, agree=None):
        self.seconds, self.say, self.clock = 60 * minutes, say, clock
        self.agree = agree if agree is not None else distributed.main_process_says
        self.started = clock()

    def on_step_end(self, args, state, control, **kwargs):
        if self.agree(self.clock() - self.started >= self.seconds):
            control.should_training_stop = True
            control.should_save = True
            if distributed.is_main_process():
                self.say(f"[grpo] time limit of {self.seconds / 60:g} min reached at step {state.global_step}; "
                         "checkpoint saved, continue with --resume")


class StallReport(TrainerCallback):
    """Print every thread's Python stack to ``file`` (stderr) when no training step has ended for ``minutes``, and
    again every ``minutes`` while none does; the run itself goes on.

    Why: a run that stops making progress (a hung rollout, a deadlock in a compile worker) otherwise says nothing,
    and whatever kills it later (a scheduler's limit, a device call's) leaves no trace of where it was. On
    2026-12-01 two GSM8K runs on an H200 stopped logging mid-step and were killed minutes later with no clue
    (docs/learning.md). A daemon thread watches the clock and reads the other threads' frames with
    ``sys._current_frames`` while holding the GIL. Not ``faulthandler.dump_traceback_later``: its C watchdog walks
    the frames without the GIL, and on the H200 (Python 3.12, torch 2.11) its dump during the first step's
    compilation crashed the run with a segmentation fault. The clock restarts when training begins and at every
    step end (after the held-out evaluation when that callback comes first), so a long first step (compilation) or
    an evaluation counts only while it runs. A thread stuck in C code while holding the GIL also stops this one,
    and then nothing is printed.
    """

    def __init__(self, minutes: float, file=None, clock=time.monotonic):
        self.seconds, self.file, self.clock = 60 * minutes, file, clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_step_end = (clock(), 0)  # (when, which step): one tuple, replaced whole by the training thread

    def on_train_begin(self, args, state, control, **kwargs):
        self._last_step_end = (self.clock(), state.global_step)
        if self._thread is None or not self._thread.is_alive():  # (a second train() of the same trainer)
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._watch, args=(self._stop,), name="grpo-stall-report",
                                            daemon=True)
            self._thread.start()

    def on_step_end(self, args, state, control, **kwargs):
        self._last_step_end = (self.clock(), state.global_step)

    def on_train_end(self, args, state, control, **kwargs):
        self.close()

    def close(self) -> None:
        """Stop watching (also when training ended with an exception, which skips ``on_train_end``)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _watch(self, stop: threading.Event) -> None:
        """Report once ``seconds`` pass after a step end, and again every ``seconds`` until the next one. Only this
        thread counts its reports, per step end seen, so the training thread never writes what it reads."""
        seen, reports = None, 0
        while not stop.wait(min(self.seconds / 10, 30.0)):
            when, step = self._last_step_end
            if (when, step) != seen:
                seen, reports = (when, step), 0
            idle = self.clock() - when
            if idle >= self.seconds * (reports + 1):
                reports += 1
                try:
                    self._report(idle, step)
                except (OSError, ValueError):  # the stream was closed (a finished notebook cell): stop watching
                    return

    def _report(self, idle: float, step: int) -> None:
        names = {thread.ident: thread.name for thread in threading.enumerate()}
        lines = [f"[grpo] no training step has ended for {idle / 60:.1f} min (the last was step {step}); "
                 "every thread's stack follows, most recent call last (the run goes on)"]
        for ident, frame in sys._current_frames().items():
            if ident == threading.get_ident():
                continue  # this watcher
            lines.append(f"Thread {names.get(ident, '?')} ({ident}):")
            lines.append("".join(traceback.format_stack(frame)).rstrip())
        stream = self.file or sys.stderr
        stream.write("\n".join(lines) + "\n")
        stream.flush()
