"""train.report_to: a tracker that is not installed is a one-line config error naming the extra to install."""

import pytest

from grpo.train import trackers
from grpo.config import ConfigError


def test_installed_and_none_pass(monkeypatch):
    monkeypatch.setitem(trackers.AVAILABLE, "tensorboard", lambda: True)
    trackers.check_installed(["tensorboard", "none"])
    trackers.check_installed(["none"])


def test_missing_trackers_named_in_one_line(monkeypatch):
    monkeypatch.setitem(trackers.AVAILABLE, "wandb", lambda: False)
    monkeypatch.setitem(trackers.AVAILABLE, "trackio", lambda: False)
    with pytest.raises(ConfigError) as err:
        trackers.check_installed(["wandb", "trackio"])
    message = str(err.value)
    assert "\n" not in message
    assert "wandb, trackio not installed" in message and "grpo-pipeline[wandb]" in message
    assert "grpo-pipeline[trackio]" in message


def test_train_refuses_a_missing_tracker_before_writing(monkeypatch, tmp_path):
    from grpo.train import trainer as train
    from grpo.config import load_config

    monkeypatch.setitem(trackers.AVAILABLE, "wandb", lambda: False)
    config = load_config(None, [f"run.output_dir={tmp_path / 'run'}", "train.report_to=[wandb]"])
    with pytest.raises(ConfigError, match="wandb not installed"):
        train.train(config)
    assert not (tmp_path / "run").exists()
