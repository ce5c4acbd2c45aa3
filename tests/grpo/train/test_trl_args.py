"""`train.trl`: any GRPOConfig field reaches TRL; a mistake is one line naming `train.trl.<key>`."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from grpo.cli import main
from grpo.config import ConfigError, load_config
from grpo.train.trl_args import build_grpo_args, rollout_sequences


def _args(tmp_path, *overrides: str):
    config = load_config(None, ["train.per_device_train_batch_size=4", "train.num_generations=4", *overrides])
    return build_grpo_args(config, tmp_path, [1.0, 0.5])


def test_settings_without_a_typed_key_reach_grpo_config(tmp_path):
    args = _args(tmp_path, "train.trl.steps_per_generation=2", "train.trl.importance_sampling_level=sequence",
                 "train.trl.log_completions=true", "train.trl.chat_template_kwargs={enable_thinking: false}")
    assert args.steps_per_generation == 2 and args.generation_batch_size == 8 and rollout_sequences(args) == 8
    assert args.importance_sampling_level == "sequence" and args.log_completions is True
    assert args.chat_template_kwargs == {"enable_thinking": False}


@pytest.mark.parametrize("override, message", [
    ("train.trl.steps_per_generaton=2", "train.trl.steps_per_generaton: not a GRPOConfig field of the installed "
     "trl; did you mean 'steps_per_generation'?"),
    ("train.trl.steps_per_generation=two", "train.trl.steps_per_generation: Input should be a valid integer"),
    ("train.trl.learning_rate=0.1", "train.trl.learning_rate: has a typed key; set train.learning_rate instead"),
    ("train.trl.output_dir=/tmp/x", "train.trl.output_dir: set by the pipeline from run.output_dir and run.name"),
    ("train.trl.log_completions_hub_repo=me/logs",
     "train.trl (log_completions_hub_repo): trl's GRPOConfig refused it: log_completions_hub_repo is set, but "
     "log_completions is False"),
])
def test_mistakes_name_the_key(tmp_path, override, message):
    with pytest.raises(ConfigError) as raised:
        _args(tmp_path, override)
    assert str(raised.value).startswith(message) and len(str(raised.value).splitlines()) == 1


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed here")
def test_vllm_rollouts_need_vllm_installed(tmp_path):
    with pytest.raises(ConfigError, match=r"train.trl.use_vllm: vllm is not installed \(pip install 'grpo-pipeline"):
        _args(tmp_path, "train.trl.use_vllm=true", "train.trl.vllm_mode=colocate")


def test_train_exits_2_with_one_line_before_writing(tmp_path, tiny_model_dir, capsys):
    quickstart = Path(__file__).resolve().parents[3] / "configs" / "quickstart.yaml"
    code = main(["train", str(quickstart), f"model.name={tiny_model_dir}", "train.trl.bogus_setting=1",
                 f"run.output_dir={tmp_path / 'runs'}"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("grpo: error: train.trl.bogus_setting: not a GRPOConfig field")
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "runs").exists()
