"""grpo.train.callbacks: TimeLimit (a session's wall time, warm start and evaluations included, ends the run) and
StallReport (a run that stops making progress prints its threads' stacks)."""

import io
import time

from transformers import TrainerControl, TrainerState

from grpo.train.callbacks import StallReport, TimeLimit


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def _step(limit, step):
    state, control = TrainerState(), TrainerControl()
    state.global_step = step
    limit.on_step_end(None, state, control)
    return control


def test_time_before_the_first_step_counts_towards_the_limit():
    clock, said = FakeClock(), []
    limit = TimeLimit(2, say=said.append, clock=clock)
    clock.now += 90  # a warm start or a step-0 evaluation
    limit.on_train_begin(None, TrainerState(), TrainerControl())
    assert not _step(limit, 1).should_training_stop
    clock.now += 31
    control = _step(limit, 2)
    assert control.should_training_stop and control.should_save
    assert said == ["[grpo] time limit of 2 min reached at step 2; checkpoint saved, continue with --resume"]


def test_no_stop_before_the_limit():
    clock = FakeClock()
    limit = TimeLimit(1, say=lambda _: None, clock=clock)
    clock.now += 59.9
    control = _step(limit, 5)
    assert not control.should_training_stop and not control.should_save


def test_the_main_process_decides_for_every_process():
    """Each process's clock started at its own moment: the decision that reaches every process is the main one's
    (``agree``), so none stops a step before the others."""
    clock = FakeClock()
    local_says_stop = TimeLimit(1, say=lambda _: None, clock=clock, agree=lambda flag: False)
    local_says_go_on = TimeLimit(1, say=lambda _: None, clock=clock, agree=lambda flag: True)
    clock.now += 30
    assert _step(local_says_go_on, 3).should_training_stop  # the main process's limit has passed
    clock.now += 60
    assert not _step(local_says_stop, 3).should_training_stop  # the main process's has not


# grpo.train.callbacks.StallReport: a run that stops making progress prints where every thread is.

def _watched(report, actions):
    """Run ``actions`` between the report's train begin and train end; what it printed."""
    report.on_train_begin(None, TrainerState(), TrainerControl())
    try:
        actions()
    finally:
        report.on_train_end(None, TrainerState(), TrainerControl())
    return report.file.getvalue()


def test_a_stall_prints_every_threads_stack_and_the_run_goes_on():
    report = StallReport(0.5 / 60, file=io.StringIO())
    printed = _watched(report, lambda: time.sleep(1.3))  # no step ends: reports at 0.5 s and 1.0 s
    assert 2 <= printed.count("no training step has ended for") <= 3  # again every 0.5 s, not at every look
    assert "the last was step 0" in printed
    assert "Thread MainThread" in printed and "test_a_stall_prints_every_threads_stack_and_the_run_goes_on" in printed


def test_steps_that_keep_ending_restart_the_clock_and_the_end_stops_the_watch():
    report = StallReport(1.0 / 60, file=io.StringIO())

    def steps():
        for step in range(1, 16):  # 3 s of steps 0.2 s apart: longer than the limit in all, never between two
            time.sleep(0.2)
            state = TrainerState()
            state.global_step = step
            report.on_step_end(None, state, TrainerControl())

    assert _watched(report, steps) == ""
    assert not report._thread.is_alive()


def test_a_second_training_of_the_same_trainer_is_watched_again():
    report = StallReport(0.3 / 60, file=io.StringIO())
    _watched(report, lambda: None)
    state = TrainerState()
    state.global_step = 7
    report.on_train_begin(None, state, TrainerControl())
    try:
        time.sleep(0.8)
    finally:
        report.on_train_end(None, state, TrainerControl())
    assert "the last was step 7" in report.file.getvalue()
