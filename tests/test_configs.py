"""Every shipped config validates (the reward specs resolve, batches divide, keys are known)."""

from __future__ import annotations

from pathlib import Path

import pytest

from grpo.config import load_config

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").rglob("*.yaml"))


def test_configs_exist():
    assert {p.name for p in CONFIGS} >= {"quickstart.yaml", "smollm2-135m.yaml", "smollm2-135m-4bit.yaml",
                                         "qwen2.5-0.5b.yaml", "qwen2.5-1.5b-4bit.yaml"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_validates(path):
    config = load_config(path)
    assert config.rewards and config.train.num_generations >= 2
    if "4bit" in path.name:
        assert config.model.load_in_4bit and config.model.backend == "unsloth"
