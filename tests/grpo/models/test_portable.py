"""Settings normalised at load: `~` expanded in every path setting, relative reward files made absolute, so the
saved config.yaml of a run works from any directory."""

from __future__ import annotations

from pathlib import Path

from grpo.config import load_config, to_yaml


def test_home_is_expanded_in_every_path_setting(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "rows.jsonl").write_text('{"question": "1+1?", "answer": "2"}\n')
    (tmp_path / "model").mkdir()
    config = load_config(None, ["run.output_dir=~/runs", "model.name=~/model", "data.source=file",
                                "data.path=~/rows.jsonl", "data.eval_path=~/rows.jsonl"])
    assert config.run.output_dir == tmp_path / "runs"
    assert config.model.name == str(tmp_path / "model")
    assert config.data.path == config.data.eval_path == str(tmp_path / "rows.jsonl")


def test_hub_ids_and_embedded_names_are_unchanged():
    config = load_config(None, ["model.name=HuggingFaceTB/SmolLM2-135M-Instruct", "data.source=hub",
                                "data.path=openai/gsm8k"])
    assert config.model.name == "HuggingFaceTB/SmolLM2-135M-Instruct" and config.data.path == "openai/gsm8k"


def test_relative_reward_file_is_saved_absolute_and_reloads_from_elsewhere(tmp_path, monkeypatch):
    repo = Path(__file__).resolve().parents[3]
    monkeypatch.chdir(repo)
    config = load_config(None, ["rewards=[{name: tests/grpo/plugin_rewards.py:length_reward}, "
                                "{name: rewards.shaping:RepetitionPenalty}]"])
    assert config.rewards[0].name == f"{repo / 'tests/grpo/plugin_rewards.py'}:length_reward"
    assert config.rewards[1].name == "rewards.shaping:RepetitionPenalty"  # importable paths stay importable
    saved = tmp_path / "config.yaml"
    saved.write_text(to_yaml(config))
    monkeypatch.chdir(tmp_path)
    assert load_config(saved).rewards[0].name == config.rewards[0].name


def test_adapter_configs_name_the_base_model_as_configured(tmp_path):
    import json

    from grpo.models.portable import name_base_model

    for folder in ("adapter", "checkpoint-2"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "adapter_config.json").write_text(
            json.dumps({"base_model_name_or_path": "/root/.cache/grpo/models/smollm2-abc", "r": 4}))
    name_base_model(tmp_path, "smollm2-135m-instruct")
    for folder in ("adapter", "checkpoint-2"):
        saved = json.loads((tmp_path / folder / "adapter_config.json").read_text())
        assert saved == {"base_model_name_or_path": "smollm2-135m-instruct", "r": 4}
