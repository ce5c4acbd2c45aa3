"""Every shipped config validates (the reward specs resolve, batches divide, keys are known)."""

from __future__ import annotations

from pathlib import Path

import pytest

from grpo.config import load_config

ROOT = Path(__file__).resolve().parents[1] / "configs"
LAUNCHER_CONFIGS = sorted((ROOT / "accelerate").glob("*.yaml"))  # accelerate launch's, not run configs
CONFIGS = sorted(set(ROOT.rglob("*.yaml")) - set(LAUNCHER_CONFIGS))


def test_configs_exist():
    assert {p.name for p in CONFIGS} >= {"quickstart.yaml", "smollm2-135m.yaml", "smollm2-135m-4bit.yaml",
                                         "qwen2.5-0.5b.yaml", "qwen2.5-1.5b-4bit.yaml"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_validates(path):
    config = load_config(path)
    assert config.rewards and config.train.num_generations >= 2
    if "4bit" in path.name:
        assert config.model.load_in_4bit and config.model.backend == "unsloth"


@pytest.mark.parametrize("path", LAUNCHER_CONFIGS, ids=lambda p: p.name)
def test_accelerate_configs_load_and_leave_precision_to_the_run(path):
    """accelerate reads them; mixed precision stays 'no' because grpo sets bf16/fp16 from model.dtype."""
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(path))
    assert config.mixed_precision == "no" and config.num_machines == 1
    assert {p.name for p in LAUNCHER_CONFIGS} == {"ddp.yaml", "zero2.yaml", "zero3.yaml"}
    if path.name.startswith("zero"):
        assert config.deepspeed_config["zero_stage"] == int(path.name[4])
