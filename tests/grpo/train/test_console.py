"""The per-step console line: short, with each reward's mean, and the end-of-training summary readable."""

from __future__ import annotations

from grpo.train.console import step_line

TRL_LOGS = {"loss": 0.0123, "grad_norm": 0.5, "learning_rate": 5e-05, "num_tokens": 1234.0,
            "completions/mean_length": 41.25, "completions/clipped_ratio": 0.0, "reward": 0.75, "reward_std": 0.43,
            "rewards/math_correctness/mean": 0.5, "rewards/math_correctness/std": 0.5,
            "rewards/answer_line/mean": 0.5, "rewards/answer_line/std": 0.5, "entropy": 1.9234, "step_time": 6.08,
            "frac_reward_zero_std": 0.25, "clip_ratio/region_mean": 0.0, "epoch": 0.04}


def test_step_line_is_short_and_names_each_reward():
    line = step_line(3, 100, TRL_LOGS)
    assert line == ("step 3/100 | reward 0.750 | math_correctness 0.50 answer_line 0.50 | len 41 | entropy 1.92 | "
                    "6.1 s/step")
    assert len(line) < 120


def test_step_line_says_the_rollouts_part_of_the_step_when_logged():
    line = step_line(3, 100, TRL_LOGS | {"time/rollouts_s": 4.24})
    assert line.endswith("| 6.1 s/step (rollouts 4.2)") and len(line) < 120


def test_logs_without_a_reward_print_as_pairs():
    line = step_line(100, 100, {"train_runtime": 612.3456, "train_loss": 0.01234, "total_flos": 0.0})
    assert line == "step 100/100 | train_runtime 612 train_loss 0.0123"


def test_config_summary_is_a_few_lines_naming_model_data_and_rewards():
    from grpo.config import load_config
    from grpo.train.console import config_summary

    config = load_config(None, ["model.name=smollm2-135m-instruct", "train.max_steps=7"])
    lines = config_summary(config).splitlines()
    assert len(lines) == 3
    assert "smollm2-135m-instruct" in lines[0] and "math_correctness x1" in lines[1] and "answer_line x0.5" in lines[1]
    assert lines[2].startswith("7 steps x 8 completions (8 per prompt")


def test_only_the_known_harmless_warning_is_filtered():
    import warnings

    from grpo.train.console import filter_harmless_warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        filter_harmless_warnings()
        warnings.warn("'pin_memory' argument is set as true but no accelerator is found, then device pinned memory "
                      "won't be used.")
        warnings.warn("something else")
    assert [str(w.message) for w in caught] == ["something else"]


def test_trls_unscored_completion_warning_is_said_once_then_counted():
    import inspect
    import logging

    import trl.trainer.grpo_trainer

    from grpo.train.console import UnscoredCompletionWarnings

    # the text and the logger are TRL's own, as the installed version writes them
    assert UnscoredCompletionWarnings.MESSAGE in inspect.getsource(trl.trainer.grpo_trainer)
    assert trl.trainer.grpo_trainer.logger.name == UnscoredCompletionWarnings.LOGGER
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    logger, keep = logging.getLogger(UnscoredCompletionWarnings.LOGGER), Keep()
    logger.addHandler(keep)
    unscored = UnscoredCompletionWarnings()
    try:
        with unscored.installed():
            for batch in range(3):
                logger.warning(f"All reward functions returned None for the following kwargs:\n{{'row': {batch}}}\n"
                               "Please ensure that at least one reward function returns a valid reward.")
            logger.warning("another warning")
        logger.warning("All reward functions returned None (after training)")
    finally:
        logger.removeHandler(keep)
    assert unscored.count == 3
    assert len(records) == 3 and "{'row': 0}" in records[0] and "counted, not printed" in records[0]
    assert records[1:] == ["another warning", "All reward functions returned None (after training)"]
