"""Every built-in reward inside a real GRPOTrainer step on a tiny model (TRL calls them with its own keywords)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import rewards
from grpo.cli import main


def test_all_builtins_run_inside_a_grpo_step(tmp_path, tiny_model_dir):
    names = rewards.available()
    reward_yaml = "\n".join(f"  - name: {name}" for name in names)
    config = tmp_path / "all-rewards.yaml"
    config.write_text(f"""
run: {{name: all, output_dir: {tmp_path / 'runs'}, seed: 0}}
model: {{name: {tiny_model_dir}, backend: hf, lora: {{r: 4, alpha: 8, target_modules: [q_proj]}}}}
data: {{system_prompt: "", max_prompt_tokens: 64, synthetic: {{train_size: 8, eval_size: 2}}}}
rewards:
{reward_yaml}
train: {{max_steps: 1, per_device_train_batch_size: 4, num_generations: 2, max_completion_length: 8, save_steps: 1}}
""")
    assert main(["train", str(config)]) == 0
    record = next(json.loads(line) for line in (tmp_path / "runs" / "all" / "metrics.jsonl").read_text().splitlines()
                  if "reward" in json.loads(line))
    for name in names:
        assert f"rewards/{name}/mean" in record, name


def test_trl_rewards_and_a_factory_with_kwargs_run_inside_a_grpo_step(tmp_path, tiny_model_dir):
    """TRL's own rewards read the dataset's `solution` column; open-r1-style factories get `kwargs:`; every other
    column (`level`, a renamed `source_id`) reaches the rewards by name."""
    pytest.importorskip("math_verify", reason="trl.rewards.accuracy_reward needs math-verify (the dev extra has it)")
    problems = tmp_path / "problems.jsonl"
    problems.write_text("".join(json.dumps({"problem": f"What is {i} + 1?", "solution": f"${i + 1}$",
                                            "level": "easy" if i % 2 else "hard", "uid": i}) + "\n"
                                for i in range(8)))
    plugin = Path(__file__).resolve().parents[1] / "grpo" / "plugin_rewards.py"
    config = tmp_path / "trl-rewards.yaml"
    config.write_text(f"""
run: {{name: trl, output_dir: {tmp_path / 'runs'}, seed: 0}}
model: {{name: {tiny_model_dir}, backend: hf, lora: {{r: 4, alpha: 8, target_modules: [q_proj]}}}}
data: {{source: file, path: {problems}, eval_path: {problems}, question_column: problem, answer_column: solution,
        columns: {{uid: source_id}}, system_prompt: "", max_prompt_tokens: 64}}
rewards:
  - name: trl.rewards:accuracy_reward
  - name: trl.rewards:think_format_reward
  - name: trl.rewards:get_soft_overlong_punishment
    kwargs: {{max_completion_len: 8, soft_punish_cache: 4}}
  - name: {plugin}:column_probe
train: {{max_steps: 1, per_device_train_batch_size: 4, num_generations: 2, max_completion_length: 8, save_steps: 1}}
eval: {{before_after: false}}
""")
    assert main(["train", str(config)]) == 0
    record = next(json.loads(line) for line in (tmp_path / "runs" / "trl" / "metrics.jsonl").read_text().splitlines()
                  if "reward" in json.loads(line))
    for name in ("accuracy_reward", "think_format_reward", "get_soft_overlong_punishment"):
        assert f"rewards/{name}/mean" in record, name
    assert record["rewards/column_probe/mean"] == 1.0
    # the factory's kwargs set the punishment: 0 up to 8 - 4 tokens, then linear down to -1 at 8 tokens
    length = record["completions/mean_length"]
    assert record["completions/min_length"] == record["completions/max_length"] == length  # random model: all capped
    assert record["rewards/get_soft_overlong_punishment/mean"] == pytest.approx(min(0.0, (8 - 4 - length) / 4))
