"""The failure policy: a failing reward stops the run naming itself and the sample, or yields None if asked."""

from __future__ import annotations

import math
import pickle

import pytest

from rewards.policy import GuardedReward, RewardContractError, RewardError


def fails_on_bad(completions, **kwargs):
    return [1 / 0 if c == "bad" else 1.0 for c in completions]


def wrong_length(completions, **kwargs):
    return [1.0]


def returns_nan(completions, **kwargs):
    return [math.nan for _ in completions]


def reads_answer(completions, answer, **kwargs):
    return [1.0 if a == "x" else 0.0 / (a != "boom") for a in answer]


def test_raise_names_reward_sample_and_exception():
    guarded = GuardedReward(fails_on_bad, "fails_on_bad")
    with pytest.raises(RewardError, match=r"reward 'fails_on_bad' raised on sample 2 at .*test_policy.py:\d+ in .*: ZeroDivisionError"):
        guarded(["ok", "ok", "bad", "ok"])


def test_on_error_none_gives_none_and_logs_count():
    logged = {}
    guarded = GuardedReward(fails_on_bad, "fails_on_bad", on_error="none")
    scores = guarded(["ok", "bad", "bad"], log_metric=lambda name, value: logged.update({name: value}))
    assert scores == [1.0, None, None]
    assert logged == {"fails_on_bad/errors": 2.0}


def test_per_sample_retry_slices_columns():
    guarded = GuardedReward(reads_answer, "reads_answer", on_error="none")
    assert guarded(["a", "b", "c"], answer=["x", "boom", "y"], trainer_state=object()) == [1.0, None, 0.0]


@pytest.mark.parametrize(
    ("reward", "message"),
    [
        (wrong_length, "returned 1 values for 3 completions"),  # length contract
        (returns_nan, "returned nan for sample 0"),  # finite values only
        (lambda completions, **kwargs: "1.0", "returned str, expected a list"),  # a list
        (lambda completions, **kwargs: [True] * 3, "returned True"),  # bools are not scores
    ],
)
def test_contract_violations_are_errors(reward, message):
    with pytest.raises(RewardContractError, match=message):
        GuardedReward(reward, "r")(["a", "b", "c"])


def test_none_passes_through_and_ints_become_floats():
    assert GuardedReward(lambda completions, **kwargs: [None, 1], "r")(["a", "b"]) == [None, 1.0]


def test_guarded_reward_is_picklable_and_keeps_its_name():
    guarded = pickle.loads(pickle.dumps(GuardedReward(fails_on_bad, "custom_name", "none")))
    assert guarded.__name__ == "custom_name"
    assert guarded(["ok"]) == [1.0]


def test_trl_keywords_are_what_grpo_trainer_passes():
    """GRPOTrainer._calculate_rewards: every column but prompt/completion/completion_ids, repeated per completion,
    plus prompts, completion_ids and the per-batch trainer_state, log_extra, log_metric."""
    from transformers import TrainerState

    from rewards.policy import trl_keywords

    row = {"prompt": [{"role": "user", "content": "1+1?"}], "answer": "2", "id": "a", "completion": "x"}
    keywords = trl_keywords(row, [[0, 0], [0]])
    assert keywords["answer"] == ["2", "2"] and keywords["id"] == ["a", "a"]
    assert keywords["prompts"] == [row["prompt"]] * 2 and keywords["completion_ids"] == [[0, 0], [0]]
    assert "prompt" not in keywords and "completion" not in keywords
    assert isinstance(keywords["trainer_state"], TrainerState)
    assert keywords["log_extra"]("column", [1, 2]) is None and keywords["log_metric"]("name", 1.0) is None
